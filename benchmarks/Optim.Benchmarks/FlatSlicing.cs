using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--flat-slices [--algorithm A,B] [--shape S] [--sizes N,M,...]</c>: how the slice size of flat mode's op-by-op
/// paths on the CPU (<c>FlatSlices</c>) moves a flat step, side by side with the paths without flat buffers. Per
/// (algorithm, shape): the for-loop and foreach without flat buffers, then flat on each path whole (one op per buffer)
/// and cut into slices of each size, stepped in interleaved rounds; medians.
/// </summary>
public static class FlatSlicing
{
    private const int Rounds = 7;
    private const int StepsPerRound = 3;

    private static readonly long[] DefaultSizes = { 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20 };

    /// <summary>Measures and prints.</summary>
    public static void Run(Selection selection, string[] args, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(log);
        var sizesAt = Array.IndexOf(args, "--sizes");
        var sizes = sizesAt >= 0 && sizesAt + 1 < args.Length
            ? args[sizesAt + 1].Split(',').Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray()
            : DefaultSizes;
        log($"ATen threads: {torch.get_num_threads()}; medians of {Rounds * StepsPerRound} steps, paths interleaved");
        foreach (var shape in selection.Shapes)
        {
            using var workload = new Workload(shape);
            foreach (var algorithm in selection.Algorithms)
            {
                var runners = new List<(string Label, Parameter[] Parameters, torch.optim.Optimizer Optimizer, List<double> Ms)>();
                void Add(string label, Implementation impl, bool flat, long? slice)
                {
                    var ps = workload.NewParameters(algorithm);
                    var opt = Catalog.Create(algorithm, impl, flat, ps);
                    if (slice is { } elements)
                        opt.GetType().GetProperty("FlatSliceElements", BindingFlags.NonPublic | BindingFlags.Instance)!.SetValue(opt, elements);
                    runners.Add((label, ps, opt, new List<double>()));
                }
                try
                {
                    foreach (var impl in new[] { Implementation.ForLoop, Implementation.Foreach })
                    {
                        var name = impl == Implementation.ForLoop ? "for-loop" : "foreach";
                        Add(name, impl, flat: false, null);
                        Add($"flat {name} whole", impl, flat: true, long.MaxValue);
                        foreach (var size in sizes) Add($"flat {name} {size:N0}", impl, flat: true, size);
                    }
                    foreach (var r in runners)
                    {
                        for (var i = 0; i < 3; i++) r.Optimizer.step();
                    }
                    for (var round = 0; round < Rounds; round++)
                    {
                        foreach (var r in runners)
                        {
                            for (var i = 0; i < StepsPerRound; i++)
                            {
                                var t = Stopwatch.GetTimestamp();
                                r.Optimizer.step();
                                r.Ms.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                            }
                        }
                    }
                    log($"{algorithm} {shape.Display}:");
                    foreach (var r in runners) log(FormattableString.Invariant($"  {r.Label,-28} {Stats.Median(r.Ms),9:F2} ms"));
                }
                finally
                {
                    foreach (var r in runners)
                    {
                        r.Optimizer.Dispose();
                        Workload.Free(r.Parameters);
                    }
                }
            }
        }
    }
}
