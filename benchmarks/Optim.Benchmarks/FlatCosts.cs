using System;
using System.Diagnostics;
using System.Linq;
using TorchSharp;
using Optim.Kernels;
using TorchSharp.Modules;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--flat-costs [--shape 2000x100]</c>: what flat mode's per-step checks cost (every parameter's address and every
/// gradient's identity and address read and compared), with gradients read directly and through a new handle each (the
/// fallback where the direct reads are unavailable), side by side; against a flat fused Adam step over the same
/// parameters, ATen's fused Adam over one tensor of the same size (the kernel alone) and one copy of that size; and the
/// managed bytes a flat step allocates at 20 and at 2,000 tensors.
/// </summary>
public static class FlatCosts
{
    private const int Rounds = 200;

    /// <summary>Measures and prints.</summary>
    public static void Run(AlgorithmInfo algorithm, Shape shape, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        ArgumentNullException.ThrowIfNull(log);
        var path = algorithm.HasFusedKernel ? Implementation.Fused : Implementation.Auto;
        log($"ATen threads: {torch.get_num_threads()}; shape {shape.Display}; medians of {Rounds}, the two ways interleaved");
        log($"direct gradient reads available: {TensorMemory.DirectGradientReads}");
        using var workload = new Workload(shape);
        var parameters = workload.NewParameters(algorithm);
        using (var flat = Catalog.Create(algorithm, path, true, parameters))
        {
            var buffer = flat.FlatBuffersOf(0)![0];
            var ways = new[] { true, false };
            foreach (var (what, action) in new (string, Action)[]
            {
                ($"flat {algorithm.Name} ({path}) step", () => flat.step()),
                ($"  of which the checks of {shape.Tensors} parameters and gradients", () => buffer.CheckGradients((_, _, _) => { })),
                ("flat zero_grad (checks every gradient)", () => flat.zero_grad()),
            })
            {
                var medians = Interleaved(ways.Select(direct => (Action)(() => { buffer.DirectGradientReads = direct; action(); })).ToArray());
                log(FormattableString.Invariant($"{what}: {medians[0]:F3} ms direct, {medians[1]:F3} ms through handles"));
            }
            buffer.DirectGradientReads = true;
            // The native reads the checks are made of, per parameter.
            var reads = new (string, Action)[]
            {
                ("THSTensor_data (an address)", () => Array.ForEach(parameters, p => TensorMemory.DataPointer(p))),
                ("an address read in place (TensorImpl's storage and offset)", () => Array.ForEach(parameters, p => TensorMemory.DirectDataPointer(p, sizeof(float)))),
                ("the whole quick check (both addresses and the gradient's identity, read in place and prefetched)", () => buffer.AllInPlace()),
                ("THSTensor_grad + THSTensor_data + THSTensor_dispose (a gradient's address through a handle)", () => Array.ForEach(parameters, p => TensorMemory.GradDataPointer(p))),
                ("c10::TensorImpl::grad + the identity (a gradient's identity, direct)", () => Array.ForEach(parameters, p => TensorMemory.GradIdentity(p))),
            };
            if (!TensorMemory.DirectGradientReads) reads = new[] { reads[0], reads[3] };
            var perRead = Interleaved(reads.Select(r => r.Item2).ToArray());
            // Each read runs right after the others in a round, so it finds the objects in cache: warm costs.
            for (var r = 0; r < reads.Length; r++)
                log(FormattableString.Invariant($"  per parameter, {reads[r].Item1}: {perRead[r] * 1e6 / parameters.Length:F1} ns"));
        }
        Workload.Free(parameters);

        var one = new[] { new Parameter(torch.randn(shape.Parameters)) };
        one[0].grad = torch.randn(shape.Parameters);
        using (var single = Catalog.Create(algorithm, path, false, one))
            log(FormattableString.Invariant($"{algorithm.Name} ({path}) over one tensor of {shape.Parameters:N0} floats: {Median(() => single.step()):F3} ms"));
        Workload.Free(one);
        using var probe = new CopyProbe(shape.Parameters);
        log(FormattableString.Invariant($"one copy of {shape.Parameters:N0} floats: {Median(() => probe.Time()):F3} ms"));

        foreach (var tensors in new[] { 20, 2000 })
        {
            var ps = Enumerable.Range(0, tensors).Select(_ => new Parameter(torch.randn(100))).ToArray();
            foreach (var p in ps) p.grad = torch.randn(100);
            using var opt = Catalog.Create(algorithm, path, true, ps);
            for (var i = 0; i < 5; i++) opt.step();
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < Rounds; i++) opt.step();
            log(FormattableString.Invariant($"managed bytes per flat step at {tensors} tensors: {(GC.GetAllocatedBytesForCurrentThread() - before) / (double)Rounds:N0}"));
            Workload.Free(ps);
        }
    }

    // The actions' medians, each round running every action once, so that load from other processes hits all alike.
    private static double[] Interleaved(Action[] actions)
    {
        Warm(() => Array.ForEach(actions, a => a()));
        var ms = actions.Select(_ => new double[Rounds]).ToArray();
        for (var i = 0; i < Rounds; i++)
        {
            for (var a = 0; a < actions.Length; a++)
            {
                var t = Stopwatch.GetTimestamp();
                actions[a]();
                ms[a][i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            }
        }
        return ms.Select(Stats.Median).ToArray();
    }

    // Half a second of warm-up: long enough for the JIT to have optimized the code measured, as in a training run.
    private static void Warm(Action action)
    {
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < 5 || Stopwatch.GetElapsedTime(start).TotalSeconds < 0.5; i++) action();
    }

    private static double Median(Action action)
    {
        Warm(action);
        var ms = new double[Rounds];
        for (var i = 0; i < Rounds; i++)
        {
            var t = Stopwatch.GetTimestamp();
            action();
            ms[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
        }
        return Stats.Median(ms);
    }
}
