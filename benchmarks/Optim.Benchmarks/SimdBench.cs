using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--simd [--algorithm RMSprop] [--rounds N]</c>: this library's single-pass C# CPU kernel (<see cref="Implementation.Fused"/>
/// for the algorithms ATen has no fused kernel for) against ATen's op-by-op for-loop, side by side with the copy the
/// memory bound is measured with, at 20 × 1,000,000 (per parameter), at 2,000 × 100 (flat: one buffer of 200,000) and
/// over one tensor of 200,000 (the kernel without flat mode's per-parameter checks).
/// Each option variant is measured in interleaved rounds; medians of the rounds' per-step times.
/// </summary>
public static class SimdBench
{
    private static readonly (string Label, KeyValuePair<string, object?>[] Options)[] RMSpropVariants =
    {
        ("default", Array.Empty<KeyValuePair<string, object?>>()),
        ("wd+centered+momentum", new KeyValuePair<string, object?>[] { new("weight_decay", 0.01), new("centered", true), new("momentum", 0.9) }),
    };

    /// <summary>The option variants measured per algorithm (the default options where none are listed).</summary>
    private static IEnumerable<(string Label, KeyValuePair<string, object?>[] Options)> Variants(AlgorithmInfo algorithm) =>
        algorithm == RMSprop.Info ? RMSpropVariants : new[] { ("default", Array.Empty<KeyValuePair<string, object?>>()) };

    /// <summary>Measures and prints.</summary>
    public static void Run(IReadOnlyList<AlgorithmInfo> algorithms, int rounds, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(algorithms);
        ArgumentNullException.ThrowIfNull(log);
        log($"ATen threads: {torch.get_num_threads()}; processors: {Environment.ProcessorCount}; SIMD width: {System.Numerics.Vector<float>.Count} floats; {rounds} rounds, medians");
        foreach (var algorithm in algorithms.Where(a => a.HasFusedKernel && a.HasForeach))
        {
            foreach (var (label, options) in Variants(algorithm))
            {
                foreach (var (tensors, size, flat) in new[] { (20, 1_000_000, false), (2000, 100, true), (1, 200_000, false) })
                    Cell(algorithm, label, options, tensors, size, flat, rounds, log);
            }
        }
    }

    private static void Cell(AlgorithmInfo algorithm, string label, KeyValuePair<string, object?>[] options, int tensors, int size, bool flat,
        int rounds, Action<string> log)
    {
        torch.manual_seed(0);
        var grads = Enumerable.Range(0, tensors).Select(_ => torch.randn(size)).ToArray();
        var paths = new[] { Implementation.ForLoop, Implementation.Fused };
        var parameters = paths.Select(_ => Enumerable.Range(0, tensors).Select(i => new Parameter(torch.randn(size).mul_(0.1))).ToArray()).ToArray();
        var optimizers = new Optimizer[paths.Length];
        for (var k = 0; k < paths.Length; k++)
        {
            for (var i = 0; i < tensors; i++) parameters[k][i].grad = grads[i];
            optimizers[k] = algorithm.Create(parameters[k],
                options.Append(new KeyValuePair<string, object?>("implementation", paths[k])), flat);
        }
        var elements = (long)tensors * size;
        using var copy = new CopyProbe(elements);
        var steps = Math.Max(1, (int)(2e7 / elements)); // about 20 M elements per timing
        var times = paths.Select(_ => new List<double>()).ToArray();
        var copies = new List<double>();
        for (var r = 0; r < rounds + 1; r++)
        {
            for (var k = 0; k < paths.Length; k++)
            {
                var t = Stopwatch.GetTimestamp();
                for (var s = 0; s < steps; s++) optimizers[k].step();
                if (r > 0) times[k].Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds / steps);
            }
            var c = 0.0;
            for (var s = 0; s < steps; s++) c += copy.Time();
            if (r > 0) copies.Add(c * 1e3 / steps);
        }
        var copyMs = Stats.Median(copies);
        var stateStreams = optimizers[0].StateDict().State.Values.First().Count(kv => kv.Value.numel() == size);
        var boundMs = copyMs * (3 + 2 * stateStreams) / 2.0; // the copy moves 2 floats per element, the step 3 + 2 per state tensor
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{algorithm.Name} {label,-22} {tensors} x {size}{(flat ? " flat" : "")}: copy {copyMs:F3} ms, bound {boundMs:F3} ms; ");
        for (var k = 0; k < paths.Length; k++)
        {
            var ms = Stats.Median(times[k]);
            line += string.Create(CultureInfo.InvariantCulture, $"{(paths[k] == Implementation.Fused ? "C# fused" : "ATen for-loop")} {ms:F3} ms ({ms / boundMs:F2}× bound)  ");
        }
        log(line);
        foreach (var o in optimizers) o.Dispose();
        foreach (var ps in parameters) Workload.Free(ps);
        foreach (var g in grads) g.Dispose();
    }
}
