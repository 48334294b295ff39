using System;
using System.Diagnostics;
using System.Linq;
using Optim.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--kernel-costs</c>: what one call into ATen through the TorchScript bridge costs, against TorchSharp's own ops,
/// on one tensor and on a thousand (per-call overhead, which dominates the small shapes).
/// </summary>
public static class KernelCosts
{
    /// <summary>Measures and prints.</summary>
    public static void Run(Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(log);
        using var scope = NewDisposeScope();
        var one = new[] { torch.zeros(1) };
        var many = Enumerable.Range(0, 1000).Select(_ => torch.zeros(1)).ToArray();
        Aten.ForeachAdd_(one, 1.0); // compiles the bridge
        const int n = 2000;
        const int rounds = 20;
        var sw = Stopwatch.StartNew();
        for (var k = 0; k < n; k++) Aten.ForeachAdd_(one, 1.0);
        var perInvoke = sw.Elapsed.TotalMilliseconds * 1000 / n;
        sw.Restart();
        for (var k = 0; k < n; k++) one[0].add_(1.0);
        var perOp = sw.Elapsed.TotalMilliseconds * 1000 / n;
        sw.Restart();
        for (var k = 0; k < rounds; k++) Aten.ForeachAdd_(many, 1.0);
        var perThousand = sw.Elapsed.TotalMilliseconds * 1000 / rounds;
        sw.Restart();
        for (var k = 0; k < rounds; k++) foreach (var t in many) t.add_(1.0);
        var loopThousand = sw.Elapsed.TotalMilliseconds * 1000 / rounds;
        var scalars = Enumerable.Range(0, many.Length).Select(i => 1 + i * 1e-3).ToArray();
        sw.Restart();
        for (var k = 0; k < rounds; k++) Aten.ForeachMul_(many, scalars);
        var scalarListThousand = sw.Elapsed.TotalMilliseconds * 1000 / rounds;
        sw.Restart();
        for (var k = 0; k < rounds; k++) Aten.ForeachMul_(many, 1.0);
        var scalarThousand = sw.Elapsed.TotalMilliseconds * 1000 / rounds;
        log(FormattableString.Invariant($"ForeachAdd_ on 1 tensor: {perInvoke:F1} µs per call; TorchSharp add_: {perOp:F1} µs"));
        log(FormattableString.Invariant($"ForeachMul_ on 1000 tensors: {scalarListThousand:F0} µs with 1000 per-tensor scalars, {scalarThousand:F0} µs with one scalar"));
        log(FormattableString.Invariant($"ForeachAdd_ on 1000 tensors: {perThousand:F0} µs per call; 1000 TorchSharp add_: {loopThousand:F0} µs"));
    }
}
