using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Benchmarks;

/// <summary>One path of one (algorithm, shape) cell.</summary>
/// <param name="Path">The path.</param>
/// <param name="MedianMs">Median wall time of one step, milliseconds.</param>
/// <param name="Steps">How many timed steps the median is over.</param>
/// <param name="AllocatedBytesPerStep">Managed bytes allocated per timed step (this thread).</param>
/// <param name="TensorsBefore"><see cref="Tensor.TotalCount"/> (live native tensors, process-wide) before the timed steps.</param>
/// <param name="TensorsAfter">The same after them.</param>
public sealed record PathResult(StepPath Path, double MedianMs, int Steps, double AllocatedBytesPerStep, long TensorsBefore, long TensorsAfter)
{
    /// <summary>How many native tensors the timed steps left alive (0: a step frees everything it makes).</summary>
    public long NativeTensorDelta => TensorsAfter - TensorsBefore;
}

/// <summary>Every path of one (algorithm, shape) cell, and the memory bound measured beside them.</summary>
/// <param name="Algorithm">The algorithm.</param>
/// <param name="Shape">The shape.</param>
/// <param name="CopyBytesPerSecond">Copy bandwidth over buffers of the shape's size (see <see cref="Workload.CopyBandwidth"/>).</param>
/// <param name="Paths">The paths measured (see <see cref="Catalog.HasPath"/>).</param>
/// <param name="BudgetScale">1, or less where the time budget was shrunk to meet the deadline (see <see cref="QuickRun.Deadline"/>).</param>
public sealed record CellResult(AlgorithmInfo Algorithm, Shape Shape, double CopyBytesPerSecond, IReadOnlyList<PathResult> Paths, double BudgetScale = 1)
{
    /// <summary>The time an fp32 step needs at copy bandwidth: bytes it must move ÷ bandwidth.</summary>
    public double BoundMs => Catalog.BytesPerParameter(Algorithm) * (double)Shape.Parameters / CopyBytesPerSecond * 1e3;

    /// <summary>The result of a path, or null where the cell has none.</summary>
    public PathResult? this[StepPath path] => Paths.FirstOrDefault(p => p.Path == path);
}

/// <summary>
/// The quick mode: a plain Stopwatch harness, not BenchmarkDotNet (whose pilot, warm-up and overhead stages would take
/// far too long over a hundred cases on two cores). Per (algorithm, shape) cell: a fresh copy of the parameters and a fresh
/// optimizer for every path, warm-up steps for each (the first creates the state), a full GC, then the timed steps one
/// by one, taken in interleaved rounds (built-in, for-loop, foreach, fused, auto, copy; again...) so that a burst of
/// load from another process falls on every path and on the bandwidth probe alike instead of on one of them; the median
/// of a path's steps is its step time. The number of steps adapts to the step time so the matrix stays within minutes.
/// </summary>
public static class QuickRun
{
    /// <summary>Warm-up: at least this many steps…</summary>
    private const int MinWarmupSteps = 3;

    /// <summary>…and at least this long (the JIT tiers up, caches and the allocator settle), capped at <see cref="MaxWarmupSteps"/>.</summary>
    private static readonly TimeSpan WarmupTime = TimeSpan.FromSeconds(0.15);

    // High enough that a fast path warms for the whole WarmupTime: at a tenth of a millisecond a step, a cap of 100 left
    // the JIT's first, unoptimized code in the flat path's measurement.
    private const int MaxWarmupSteps = 5000;

    /// <summary>Timed steps per path: about this much time, but never fewer than <see cref="MinTimedSteps"/> nor more than <see cref="MaxTimedSteps"/>.</summary>
    private static readonly TimeSpan TimedBudget = TimeSpan.FromSeconds(0.6);

    private const int MinTimedSteps = 10;
    private const int MaxTimedSteps = 60;

    /// <summary>Rounds the timed steps are split into (each path takes its turn once per round).</summary>
    private const int Rounds = 5;

    /// <summary>Time spent on copies per cell, for the bandwidth (bound).</summary>
    private static readonly TimeSpan CopyBudget = TimeSpan.FromSeconds(0.1);

    private const int MinCopies = 15;
    private const int MaxCopies = 300;

    /// <summary>
    /// The whole matrix must finish within this (the issue asks for under 3 minutes, start-up and charts included). On
    /// a quiet two-core machine it takes about a minute; on a busy one every step is slower, so when the cells left
    /// would overrun, the warm-up and timed budgets of the next cells shrink (down to a fifth, and to
    /// <see cref="MinTimedStepsWhenShrunk"/> steps); the report says so.
    /// </summary>
    public static TimeSpan Deadline { get; set; } = TimeSpan.FromSeconds(150);

    private const int MinTimedStepsWhenShrunk = 5;

    /// <summary>Seconds a cell takes at full budget: six paths of warm-up and timed steps, plus set-up and copies.</summary>
    private static double NominalCellSeconds => 6 * (WarmupTime + TimedBudget).TotalSeconds + 0.5;

    /// <summary>Runs the selected matrix, printing progress to <paramref name="log"/>.</summary>
    public static IReadOnlyList<CellResult> Run(Selection selection, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(log);
        var clock = Stopwatch.StartNew();
        var results = new List<CellResult>();
        var cellsLeft = selection.Shapes.Count * selection.Algorithms.Count;
        foreach (var shape in selection.Shapes)
        {
            using var workload = new Workload(shape);
            foreach (var algorithm in selection.Algorithms)
            {
                var share = (Deadline - clock.Elapsed).TotalSeconds / cellsLeft--;
                var scale = Math.Clamp(share / NominalCellSeconds, 0.2, 1.0);
                var cell = MeasureCell(workload, algorithm, scale);
                log($"{algorithm} {shape.Display}: copy bandwidth {cell.CopyBytesPerSecond / 1e9:F1} GB/s, bound {cell.BoundMs:F3} ms{(scale < 1 ? string.Create(CultureInfo.InvariantCulture, $" (budget shrunk to {scale:P0})") : "")}");
                foreach (var r in cell.Paths)
                    log($"  {Catalog.Label(r.Path),-20} {r.MedianMs,10:F3} ms  {r.MedianMs / cell.BoundMs,8:F2}× bound  (median of {r.Steps,2}; {r.AllocatedBytesPerStep,9:F0} B/step; native tensors {r.TensorsBefore} -> {r.TensorsAfter})");
                results.Add(cell);
            }
        }
        return results;
    }

    private sealed class Runner(StepPath path, Parameter[] parameters, torch.optim.Optimizer optimizer) : IDisposable
    {
        public StepPath Path { get; } = path;
        public torch.optim.Optimizer Optimizer { get; } = optimizer;
        public List<double> Seconds { get; } = new();
        public int Steps { get; set; }
        public long Bytes { get; set; }
        public long TensorDelta { get; set; }
        public long TensorsBefore { get; set; }

        public void Dispose()
        {
            Optimizer.Dispose();
            Workload.Free(parameters);
        }
    }

    private static CellResult MeasureCell(Workload workload, AlgorithmInfo algorithm, double scale)
    {
        var runners = new List<Runner>();
        try
        {
            foreach (var path in Catalog.Paths.Where(p => Catalog.HasPath(algorithm, p)))
            {
                var parameters = workload.NewParameters(algorithm);
                torch.optim.Optimizer optimizer;
                try
                {
                    optimizer = Catalog.Create(algorithm, path, parameters);
                }
                catch
                {
                    Workload.Free(parameters);
                    throw;
                }
                runners.Add(new Runner(path, parameters, optimizer));
            }

            foreach (var r in runners) r.Steps = Warm(r.Optimizer, scale);
            using var copy = new CopyProbe(workload.Shape.Parameters);
            var copiesPerRound = Math.Max(1, (int)Math.Clamp(CopyBudget.TotalSeconds / copy.Warm(), MinCopies, MaxCopies) / Rounds);
            var copySeconds = new List<double>();

            // Earlier garbage (other cells, warm-up) is finalized now, not during the measurement; nothing is collected
            // afterwards, so a tensor a step forgets to free shows in the count.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            foreach (var r in runners) r.TensorsBefore = Tensor.TotalCount;
            for (var round = 0; round < Rounds; round++)
            {
                foreach (var r in runners)
                {
                    var turn = (r.Steps + Rounds - 1) / Rounds;
                    var tensors = Tensor.TotalCount;
                    var bytes = GC.GetAllocatedBytesForCurrentThread();
                    for (var i = 0; i < turn; i++)
                    {
                        var t = Stopwatch.GetTimestamp();
                        r.Optimizer.step();
                        BenchDevice.Synchronize();
                        r.Seconds.Add(Stopwatch.GetElapsedTime(t).TotalSeconds);
                    }
                    r.Bytes += GC.GetAllocatedBytesForCurrentThread() - bytes;
                    r.TensorDelta += Tensor.TotalCount - tensors;
                }
                for (var i = 0; i < copiesPerRound; i++) copySeconds.Add(copy.Time());
            }
            var bandwidth = 2.0 * sizeof(float) * workload.Shape.Parameters / Stats.Median(copySeconds);
            return new CellResult(algorithm, workload.Shape, bandwidth, runners.ConvertAll(r => new PathResult(
                r.Path, Stats.Median(r.Seconds) * 1e3, r.Seconds.Count, (double)r.Bytes / r.Seconds.Count, r.TensorsBefore, r.TensorsBefore + r.TensorDelta)), scale);
        }
        finally
        {
            foreach (var r in runners) r.Dispose();
        }
    }

    /// <summary>
    /// Warm-up steps; returns how many timed steps fit the budget at the median warm-up step's speed (the first step,
    /// which creates the state, is left out of the estimate; a single slow step, such as one that met a GC, does not
    /// shrink the count).
    /// </summary>
    private static int Warm(torch.optim.Optimizer optimizer, double scale)
    {
        var warmStart = Stopwatch.GetTimestamp();
        var seconds = new List<double>();
        do
        {
            var t = Stopwatch.GetTimestamp();
            optimizer.step();
            BenchDevice.Synchronize();
            seconds.Add(Stopwatch.GetElapsedTime(t).TotalSeconds);
        }
        while (seconds.Count < MinWarmupSteps || (Stopwatch.GetElapsedTime(warmStart) < WarmupTime * scale && seconds.Count < MaxWarmupSteps));
        var typical = Math.Max(Stats.Median(seconds.Skip(1).ToList()), 1e-6);
        return (int)Math.Clamp(TimedBudget.TotalSeconds * scale / typical, scale < 1 ? MinTimedStepsWhenShrunk : MinTimedSteps, MaxTimedSteps);
    }
}

/// <summary>
/// The copy the memory bound is measured with: <c>dst.copy_(src)</c> between two contiguous fp32 buffers as large as the
/// shape's parameters (one buffer, so no per-tensor call overhead: a bandwidth, not a dispatch cost), counted as
/// 2 × 4 bytes per float (read src, write dst) like the step's traffic model. Same process and ATen thread pool as
/// the steps (ATen parallelises both).
/// </summary>
public sealed class CopyProbe : IDisposable
{
    private readonly Tensor _src;
    private readonly Tensor _dst;

    /// <summary>Allocates the buffers.</summary>
    public CopyProbe(long floats)
    {
        _src = BenchDevice.Move(torch.randn(floats, dtype: ScalarType.Float32));
        _dst = torch.empty(floats, dtype: ScalarType.Float32, device: BenchDevice.Current);
    }

    /// <summary>Two copies (the first touches the pages); returns the time of the second, seconds.</summary>
    public double Warm()
    {
        Time();
        return Time();
    }

    /// <summary>One copy, seconds.</summary>
    public double Time()
    {
        var t = Stopwatch.GetTimestamp();
        _dst.copy_(_src);
        BenchDevice.Synchronize();
        return Stopwatch.GetElapsedTime(t).TotalSeconds;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _src.Dispose();
        _dst.Dispose();
    }
}
