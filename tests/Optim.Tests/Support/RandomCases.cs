using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Optim.Tests.Support;

/// <summary>
/// Golden-style inputs without expected values: the goldens' shapes ([], [5], [3, 4]), standard-normal initial values and
/// gradients, parameter 1 without a gradient on steps 3, 7 and 8 and parameter 2 with an all-zero gradient on step 5.
/// Drawn from <see cref="Random"/>, so they do not depend on torch's global generator (tests run in parallel).
/// </summary>
public static class RandomCases
{
    private static readonly long[][] Shapes = { Array.Empty<long>(), new long[] { 5 }, new long[] { 3, 4 } };

    public static GoldenCase Make(ScalarType dtype, int seed, int steps = 20)
    {
        var random = new Random(seed);
        double[] Draw(long[] shape)
        {
            var values = new double[shape.Aggregate(1L, (a, b) => a * b)];
            for (var k = 0; k < values.Length; k++)
            {
                // Box-Muller; float32 cases hold float32 values exactly.
                var normal = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                values[k] = dtype == ScalarType.Float32 ? (float)normal : normal;
            }
            return values;
        }

        var initial = Shapes.Select(Draw).ToArray();
        var grads = new List<double[]?[]>();
        for (var s = 0; s < steps; s++)
        {
            var step = Shapes.Select(Draw).ToArray<double[]?>();
            if (s is 3 or 7 or 8) step[1] = null;
            if (s == 5) step[2] = new double[step[2]!.Length];
            grads.Add(step);
        }
        return new GoldenCase("random", "none", $"random_{seed}", dtype, new Dictionary<string, System.Text.Json.JsonElement>(),
            Shapes, initial, grads, Array.Empty<double[][]>());
    }
}
