using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using Optim.Utils;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--clip</c>: <c>clip_grad_norm_</c> over many small gradients (default 2,000 × 100 float32, <c>--shape</c> picks
/// others): Optim's foreach path, Optim's per-tensor path and TorchSharp's <c>torch.nn.utils.clip_grad_norm_</c>, in
/// interleaved rounds like the quick mode, median per call. The gradients are large enough that every call clips
/// (after the first, each call meets a norm just above max_norm), so all three do the full work each time.
/// </summary>
public static class ClipBenchmark
{
    private const int Rounds = 7;
    private const int CallsPerRound = 15;
    private const int Warmup = 10;

    /// <summary>Measures every shape of <paramref name="shapes"/> and prints a table.</summary>
    public static int Run(IReadOnlyList<Shape> shapes, Action<string> log)
    {
        log("clip_grad_norm_ (max_norm 1, norm 2), fp32 CPU: median ms per call; TorchSharp's ÷ Optim foreach = speed-up.");
        log($"ATen threads: {torch.get_num_threads()}");
        foreach (var shape in shapes)
        {
            using var scope = NewDisposeScope();
            var count = shape.Tensors;
            var gen = new Generator(7);
            Parameter[] Make() => Enumerable.Range(0, count)
                .Select(i => new Parameter(torch.zeros(shape.SizeOf(i)), requires_grad: true) { grad = torch.randn(shape.SizeOf(i), generator: gen).mul_(10) })
                .ToArray();
            var candidates = new (string Name, Parameter[] Ps, Action<Parameter[]> Call)[]
            {
                ("Optim foreach", Make(), ps => { using var s = NewDisposeScope(); ClipGrad.clip_grad_norm_(ps, 1.0); }),
                ("Optim per-tensor", Make(), ps => { using var s = NewDisposeScope(); ClipGrad.clip_grad_norm_(ps, 1.0, @foreach: false); }),
                ("TorchSharp", Make(), ps => { using var s = NewDisposeScope(); torch.nn.utils.clip_grad_norm_(ps, 1.0); }),
            };
            var times = candidates.Select(_ => new List<double>()).ToArray();
            for (var i = 0; i < candidates.Length; i++)
            {
                for (var w = 0; w < Warmup; w++) candidates[i].Call(candidates[i].Ps);
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            for (var round = 0; round < Rounds; round++)
            {
                for (var i = 0; i < candidates.Length; i++)
                {
                    for (var c = 0; c < CallsPerRound; c++)
                    {
                        var t = Stopwatch.GetTimestamp();
                        candidates[i].Call(candidates[i].Ps);
                        times[i].Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                    }
                }
            }
            var medians = times.Select(Stats.Median).ToArray();
            log($"{shape.Display}:");
            for (var i = 0; i < candidates.Length; i++)
                log($"  {candidates[i].Name,-18} {medians[i],9:F3} ms  (median of {times[i].Count})");
            log($"  TorchSharp ÷ Optim foreach: {medians[2] / medians[0]:F2}×");
        }
        return 0;
    }
}
