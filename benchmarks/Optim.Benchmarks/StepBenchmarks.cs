using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Benchmarks;

/// <summary>
/// One fp32 CPU optimizer step per invocation, for each path. Each benchmark method gets its own global setup (a fresh
/// copy of the shape's parameters and the path's optimizer, stepped once so the state exists), so only the optimizer
/// being measured is alive. The memory bound is measured in the same process, in each case's setup (see <see cref="FullRunRecords"/>).
/// </summary>
[MemoryDiagnoser]
public abstract class StepBenchmarksBase
{
    private Workload? _workload;
    private Parameter[]? _parameters;
    private torch.optim.Optimizer? _optimizer;
    private StepPath _path;
    private long _tensorsBefore;

    /// <summary>The shapes to run (<c>--shape</c> restricts them).</summary>
    public static IEnumerable<string> Shapes => Catalog.Selected.Shapes.Select(s => s.ToString());

    /// <summary>The model shape, "tensors x floats".</summary>
    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "2000x100";

    /// <summary>The algorithm's catalog name (a string, so BenchmarkDotNet shows and serializes it).</summary>
    public abstract string Algorithm { get; set; }

    /// <summary>The algorithm of the current case.</summary>
    protected AlgorithmInfo Current => AlgorithmCatalog.Get(Algorithm);

    /// <summary>Builds the path's optimizer and takes the first step (which creates the state).</summary>
    protected void Setup(StepPath path)
    {
        var shape = Benchmarks.Shape.Parse(Shape);
        _workload = new Workload(shape);
        _path = path;
        // Measured for every case, just before it: the machine's memory bandwidth drifts (other tenants of the host).
        FullRunRecords.Bandwidth[(Algorithm, Shape, path)] = _workload.CopyBandwidth(TimeSpan.FromSeconds(0.5));
        _parameters = _workload.NewParameters(Current);
        _optimizer = Catalog.Create(Current, path, _parameters);
        _optimizer.step();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        _tensorsBefore = Tensor.TotalCount;
    }

    /// <summary>Records the native tensor count change over every step BenchmarkDotNet took, then frees everything.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        FullRunRecords.NativeTensorDelta[(Algorithm, Shape, _path)] = Tensor.TotalCount - _tensorsBefore;
        _optimizer?.Dispose();
        if (_parameters is not null) Workload.Free(_parameters);
        _workload?.Dispose();
        _optimizer = null;
        _parameters = null;
        _workload = null;
    }

    /// <summary>Setup of <see cref="BuiltIn"/>.</summary>
    [GlobalSetup(Target = nameof(BuiltIn))]
    public void SetupBuiltIn() => Setup(StepPath.BuiltIn);

    /// <summary>Setup of <see cref="ForLoop"/>.</summary>
    [GlobalSetup(Target = nameof(ForLoop))]
    public void SetupForLoop() => Setup(StepPath.ForLoop);

    /// <summary>Setup of <see cref="Foreach"/>.</summary>
    [GlobalSetup(Target = nameof(Foreach))]
    public void SetupForeach() => Setup(StepPath.Foreach);

    /// <summary>Setup of <see cref="Auto"/>.</summary>
    [GlobalSetup(Target = nameof(Auto))]
    public void SetupAuto() => Setup(StepPath.Auto);

    /// <summary>Setup of <see cref="Flat"/>.</summary>
    [GlobalSetup(Target = nameof(Flat))]
    public void SetupFlat() => Setup(StepPath.Flat);

    /// <summary>TorchSharp's own optimizer.</summary>
    [Benchmark(Baseline = true)]
    public void BuiltIn() => _optimizer!.step();

    /// <summary>Ours, for-loop.</summary>
    [Benchmark]
    public void ForLoop() => _optimizer!.step();

    /// <summary>Ours, foreach.</summary>
    [Benchmark]
    public void Foreach() => _optimizer!.step();

    /// <summary>Ours, automatic.</summary>
    [Benchmark]
    public void Auto() => _optimizer!.step();

    /// <summary>Ours, flat parameters.</summary>
    [Benchmark]
    public void Flat() => _optimizer!.step();

    /// <summary>Used by the fused subclass.</summary>
    protected torch.optim.Optimizer? Optimizer => _optimizer;
}

/// <summary>The algorithms with a fused kernel: every path, fused included.</summary>
public class StepBenchmarks : StepBenchmarksBase
{
    /// <summary>The algorithms with a fused kernel that the run covers.</summary>
    public static IEnumerable<string> Names => Catalog.Selected.Algorithms.Where(a => a.HasFusedKernel).Select(a => a.Name);

    /// <inheritdoc/>
    [ParamsSource(nameof(Names))]
    public override string Algorithm { get; set; } = "";

    /// <summary>Setup of <see cref="Fused"/>.</summary>
    [GlobalSetup(Target = nameof(Fused))]
    public void SetupFused() => Setup(StepPath.Fused);

    /// <summary>Ours, fused.</summary>
    [Benchmark]
    public void Fused() => Optimizer!.step();
}

/// <summary>The algorithms without a fused kernel (RMSprop): every path but fused.</summary>
public class UnfusedStepBenchmarks : StepBenchmarksBase
{
    /// <summary>The algorithms without a fused kernel that the run covers.</summary>
    public static IEnumerable<string> Names => Catalog.Selected.Algorithms.Where(a => !a.HasFusedKernel).Select(a => a.Name);

    /// <inheritdoc/>
    [ParamsSource(nameof(Names))]
    public override string Algorithm { get; set; } = "";
}

/// <summary>What the full (BenchmarkDotNet) run records beside BenchmarkDotNet's own statistics; in-process, so shared.</summary>
public static class FullRunRecords
{
    /// <summary>Copy bandwidth measured in each case's setup, bytes per second.</summary>
    public static ConcurrentDictionary<(string, string, StepPath), double> Bandwidth { get; } = new();

    /// <summary>Native tensor count change over all of a case's steps.</summary>
    public static ConcurrentDictionary<(string, string, StepPath), long> NativeTensorDelta { get; } = new();

    /// <summary>The extra columns: memory bound, median ÷ bound, native tensor change.</summary>
    public static IColumn[] Columns { get; } = { new BoundColumn(ratio: false), new BoundColumn(ratio: true), new TensorDeltaColumn() };

    internal static (string Algorithm, string Shape, StepPath Path)? Key(BenchmarkCase c)
    {
        if (c.Parameters["Algorithm"] is not string a || c.Parameters["Shape"] is not string s) return null;
        return Enum.TryParse<StepPath>(c.Descriptor.WorkloadMethod.Name, out var p) ? (a, s, p) : null;
    }

    internal static double? BoundNs(BenchmarkCase c)
    {
        if (Key(c) is not { } k || !Bandwidth.TryGetValue(k, out var bw)) return null;
        return Catalog.BytesPerParameter(AlgorithmCatalog.Get(k.Algorithm)) * (double)Benchmarks.Shape.Parse(k.Shape).Parameters / bw * 1e9;
    }

    private abstract class Column : IColumn
    {
        public abstract string Id { get; }
        public abstract string ColumnName { get; }
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public abstract string Legend { get; }
        public abstract string GetValue(Summary summary, BenchmarkCase benchmarkCase);
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public bool IsAvailable(Summary summary) => true;
    }

    private sealed class BoundColumn(bool ratio) : Column
    {
        public override string Id => ratio ? "Optim.BoundRatio" : "Optim.Bound";
        public override string ColumnName => ratio ? "× bound" : "Bound";
        public override string Legend => ratio
            ? "Median ÷ memory bound"
            : "Memory bound: bytes an fp32 step must move ÷ copy bandwidth measured in this run on buffers of the shape's size";

        public override string GetValue(Summary summary, BenchmarkCase benchmarkCase)
        {
            if (BoundNs(benchmarkCase) is not { } bound) return "?";
            if (!ratio) return (bound / 1e6).ToString("0.000 'ms'", CultureInfo.InvariantCulture);
            var median = summary[benchmarkCase]?.ResultStatistics?.Median;
            return median is { } m ? (m / bound).ToString("0.00", CultureInfo.InvariantCulture) : "?";
        }
    }

    private sealed class TensorDeltaColumn : Column
    {
        public override string Id => "Optim.TensorDelta";
        public override string ColumnName => "Δ tensors";
        public override string Legend => "Change of TorchSharp's live native tensor count (Tensor.TotalCount) over every step of the case";

        public override string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
            Key(benchmarkCase) is { } k && NativeTensorDelta.TryGetValue(k, out var d) ? d.ToString("+0;-0;0", CultureInfo.InvariantCulture) : "?";
    }
}
