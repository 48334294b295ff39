using System;
using System.Diagnostics;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--flat-costs [--shape 2000x100]</c>: what flat mode's per-step checks cost (every parameter's and every
/// gradient's address read and compared), against a flat fused Adam step over the same parameters, ATen's fused Adam
/// over one tensor of the same size (the kernel alone) and one copy of that size; and the managed bytes a flat step
/// allocates at 20 and at 2,000 tensors.
/// </summary>
public static class FlatCosts
{
    private const int Rounds = 200;

    /// <summary>Measures and prints.</summary>
    public static void Run(Shape shape, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(log);
        log($"ATen threads: {torch.get_num_threads()}; shape {shape.Display}; medians of {Rounds}");
        using var workload = new Workload(shape);
        var parameters = workload.NewParameters(Adam.Info);
        using (var flat = new Adam(parameters, implementation: Implementation.Fused, flat: true))
        {
            var buffer = flat.FlatBuffersOf(0)![0];
            log(FormattableString.Invariant($"flat Adam (fused) step: {Median(() => flat.step()):F3} ms"));
            log(FormattableString.Invariant($"  of which the checks of {shape.Tensors} parameters and gradients: {Median(() => buffer.CheckGradients((_, _, _) => { })):F3} ms"));
            log(FormattableString.Invariant($"flat zero_grad: {Median(() => flat.zero_grad()):F3} ms"));
        }
        Workload.Free(parameters);

        var one = new[] { new Parameter(torch.randn(shape.Parameters)) };
        one[0].grad = torch.randn(shape.Parameters);
        using (var single = new Adam(one, implementation: Implementation.Fused))
            log(FormattableString.Invariant($"fused Adam over one tensor of {shape.Parameters:N0} floats: {Median(() => single.step()):F3} ms"));
        Workload.Free(one);
        using var probe = new CopyProbe(shape.Parameters);
        log(FormattableString.Invariant($"one copy of {shape.Parameters:N0} floats: {Median(() => probe.Time()):F3} ms"));

        foreach (var tensors in new[] { 20, 2000 })
        {
            var ps = Enumerable.Range(0, tensors).Select(_ => new Parameter(torch.randn(100))).ToArray();
            foreach (var p in ps) p.grad = torch.randn(100);
            using var opt = new Adam(ps, implementation: Implementation.Fused, flat: true);
            for (var i = 0; i < 5; i++) opt.step();
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < Rounds; i++) opt.step();
            log(FormattableString.Invariant($"managed bytes per flat step at {tensors} tensors: {(GC.GetAllocatedBytesForCurrentThread() - before) / (double)Rounds:N0}"));
            Workload.Free(ps);
        }
    }

    private static double Median(Action action)
    {
        for (var i = 0; i < 5; i++) action();
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
