using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Amp;

/// <summary>What a scripted iteration's gradients hold.</summary>
public enum Grad
{
    Clean,
    Inf,
    NaN,
}

/// <summary>
/// Scripted mixed-precision runs: each iteration's true gradients are fixed (seeded, exact in the dtype), the scaled
/// gradients are the true ones times the scaler's current scale (a power of two, so unscaling is exact), and an Inf
/// or NaN iteration plants one non-finite element. A twin optimizer without a scaler steps on the true gradients of
/// the clean iterations only; with exact unscaling the two must stay bit for bit equal, and PyTorch's scale rule is
/// replayed in doubles alongside.
/// </summary>
public static class ScalerScript
{
    // Matrices, which every algorithm takes (Muon nothing else).
    public static readonly long[][] Shapes = { new long[] { 1, 5 }, new long[] { 3, 4 }, new long[] { 1, 2 } };

    public static List<Parameter> MakeParameters(ScalarType dtype, int seed = 11)
    {
        var gen = new Generator((ulong)seed);
        return Shapes.Select(s => new Parameter(torch.randn(s, generator: gen).to(dtype), requires_grad: true)).ToList();
    }

    public static List<Parameter> Clone(IEnumerable<Parameter> ps) =>
        ps.Select(p => new Parameter(p.detach().clone(), requires_grad: true)).ToList();

    /// <summary>The true gradients of iteration <paramref name="step"/>, exact in <paramref name="dtype"/>.</summary>
    public static Tensor[] TrueGrads(int step, ScalarType dtype)
    {
        var gen = new Generator((ulong)(1000 + step));
        return Shapes.Select(s => torch.randn(s, generator: gen).mul(0.5).to(dtype)).ToArray();
    }

    /// <summary>Sets the scaled (and possibly poisoned) gradients of one iteration.</summary>
    public static void SetScaledGrads(IReadOnlyList<Parameter> ps, int step, Grad kind, double scale)
    {
        var grads = TrueGrads(step, ps[0].dtype);
        for (var i = 0; i < ps.Count; i++)
        {
            var g = grads[i].to(ScalarType.Float32).mul(scale).to(ps[i].dtype).to(ps[i].device);
            if (kind != Grad.Clean && i == 1)
                g.view(-1)[step % 12] = torch.full(Array.Empty<long>(), kind == Grad.Inf ? float.PositiveInfinity : float.NaN, ps[i].dtype);
            ps[i].grad = g;
        }
    }

    public static void SetTrueGrads(IReadOnlyList<Parameter> ps, int step)
    {
        var grads = TrueGrads(step, ps[0].dtype);
        for (var i = 0; i < ps.Count; i++) ps[i].grad = grads[i];
    }

    /// <summary>PyTorch's _amp_update_scale_ in doubles.</summary>
    public sealed class ScaleModel
    {
        public ScaleModel(double scale, double growth, double backoff, int interval) => (Scale, Growth, Backoff, Interval) = (scale, growth, backoff, interval);

        public double Scale { get; private set; }
        public int Tracker { get; private set; }
        private double Growth { get; }
        private double Backoff { get; }
        private int Interval { get; }

        public void Update(bool foundInf)
        {
            if (foundInf)
            {
                Scale = (float)(Scale * Backoff);
                Tracker = 0;
            }
            else if (Tracker + 1 == Interval)
            {
                Scale = (float)(Scale * Growth);
                Tracker = 0;
            }
            else
            {
                Tracker++;
            }
        }
    }

    /// <summary>Both optimizers hold the same state: same ids, keys and bits.</summary>
    public static void StatesShouldBeBitwise(Optimizer actual, Optimizer expected, string because)
    {
        var a = actual.StateDict();
        var e = expected.StateDict();
        a.State.Keys.Should().Equal(e.State.Keys, because);
        foreach (var (id, state) in e.State)
        {
            a.State[id].Keys.Should().Equal(state.Keys, because);
            foreach (var (key, tensor) in state)
                Trajectories.BitwiseEqual(a.State[id][key], tensor).Should().BeTrue($"state '{key}' of parameter {id}: {because}");
        }
    }

    public static void ParametersShouldBeBitwise(IReadOnlyList<Parameter> actual, IReadOnlyList<Parameter> expected, string because)
    {
        for (var i = 0; i < expected.Count; i++)
            Trajectories.BitwiseEqual(actual[i], expected[i]).Should().BeTrue($"parameter {i}: {because}");
    }

    public static List<Tensor> Snapshot(IEnumerable<Parameter> ps) => ps.Select(p => p.detach().clone()).ToList();
}
