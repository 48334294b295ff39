using System;
using System.Collections.Generic;
using System.Linq;
using FluentAssertions.Execution;
using static TorchSharp.torch;

namespace Optim.Tests.Support;

public static class Trajectories
{
    /// <summary>Every value of every step equal bit for bit (float32 values compared as float32).</summary>
    public static void ShouldBeBitwise(IReadOnlyList<double[][]> actual, IReadOnlyList<double[][]> expected, string because = "")
    {
        actual.Should().HaveSameCount(expected);
        for (var s = 0; s < expected.Count; s++)
        {
            for (var p = 0; p < expected[s].Length; p++)
            {
                for (var k = 0; k < expected[s][p].Length; k++)
                {
                    if (BitConverter.DoubleToInt64Bits(actual[s][p][k]) != BitConverter.DoubleToInt64Bits(expected[s][p][k]))
                        throw new AssertionFailedException(
                            $"step {s}, param {p}, element {k}: expected {expected[s][p][k]:R}, got {actual[s][p][k]:R} {because}");
                }
            }
        }
    }

    /// <summary>Every value within <paramref name="atol"/> + <paramref name="rtol"/>·|expected|; returns the max abs error.</summary>
    public static double ShouldBeClose(IReadOnlyList<double[][]> actual, IReadOnlyList<double[][]> expected, double atol, double rtol = 0, string because = "")
    {
        actual.Should().HaveSameCount(expected);
        var worst = 0.0;
        for (var s = 0; s < expected.Count; s++)
        {
            for (var p = 0; p < expected[s].Length; p++)
            {
                for (var k = 0; k < expected[s][p].Length; k++)
                {
                    var e = expected[s][p][k];
                    var a = actual[s][p][k];
                    var err = Math.Abs(a - e);
                    worst = Math.Max(worst, err);
                    if (!(err <= atol + rtol * Math.Abs(e)))
                        throw new AssertionFailedException(
                            $"step {s}, param {p}, element {k}: expected {e:R}, got {a:R} (|diff| {err:E3} > {atol:E1} + {rtol:E1}·|e|) {because}");
                }
            }
        }
        return worst;
    }

    /// <summary>Bitwise equality of two tensors (dtype, shape and bytes; sparse ones compared as their dense values).</summary>
    public static bool BitwiseEqual(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.is_sparse == b.is_sparse && Bytes(a).SequenceEqual(Bytes(b));

    private static IEnumerable<byte> Bytes(Tensor t) => (t.is_sparse ? t.to_dense() : t).detach().cpu().contiguous().bytes.ToArray();
}
