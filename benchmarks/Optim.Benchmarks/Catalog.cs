using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Benchmarks;

/// <summary>Who runs the step: TorchSharp's own optimizer, or ours with a given <see cref="Implementation"/>.</summary>
public enum StepPath
{
    /// <summary>TorchSharp's <c>torch.optim.*</c>.</summary>
    BuiltIn,

    /// <summary>Ours, <see cref="Implementation.ForLoop"/>.</summary>
    ForLoop,

    /// <summary>Ours, <see cref="Implementation.Foreach"/>.</summary>
    Foreach,

    /// <summary>Ours, <see cref="Implementation.Fused"/> (not RMSprop: ATen has no fused RMSprop).</summary>
    Fused,

    /// <summary>Ours, <see cref="Implementation.Auto"/>.</summary>
    Auto,

    /// <summary>
    /// Ours with flat parameters (<see cref="Optimizer{TOptions}.Flat"/>), on its fastest path: <see cref="Implementation.Fused"/>
    /// where ATen has the kernel, <see cref="Implementation.Auto"/> (the for-loop's ops, once per buffer) otherwise.
    /// </summary>
    Flat,
}

/// <summary>
/// A model shape: <see cref="Tensors"/> parameters of <see cref="Elements"/> floats each, or a named list of sizes
/// (<see cref="Transformer"/>; then <see cref="Elements"/> is their mean and <see cref="SizeOf"/> gives each).
/// </summary>
public readonly record struct Shape(int Tensors, long Elements)
{
    // Per-tensor sizes of a named shape, null for a uniform one.
    private readonly long[]? _sizes;
    private readonly string? _name;

    private Shape(string name, long[] sizes) : this(sizes.Length, sizes.Sum() / sizes.Length)
    {
        _name = name;
        _sizes = sizes;
    }

    /// <summary>
    /// The parameter list of a small transformer (PyTorch's <c>nn.TransformerEncoderLayer</c> layout, pre-norm): d_model 256,
    /// 4 layers with 4 heads and a 1,024-wide feed-forward block, a 4,096-token embedding, 512 learned positions and a
    /// final norm. 52 tensors, 4.3M floats: many small biases and norm weights (256 or 1,024 floats) beside a few large
    /// matrices.
    /// </summary>
    public static Shape Transformer { get; } = new("transformer", TransformerSizes(dModel: 256, layers: 4, feedForward: 1024, vocabulary: 4096, positions: 512));

    /// <summary>
    /// The shapes of the benchmark: many small tensors (per-call overhead dominates) to few large ones (memory bound),
    /// and <see cref="Transformer"/> (a real model's mix) before the largest, which stays last.
    /// </summary>
    public static readonly IReadOnlyList<Shape> All = new[] { Parse("2000x100"), Parse("200x1000"), Parse("50x100000"), Transformer, Parse("20x1000000") };

    /// <summary>Total parameter count.</summary>
    public long Parameters => _sizes?.Sum() ?? Tensors * Elements;

    /// <summary>The number of floats of tensor <paramref name="index"/>.</summary>
    public long SizeOf(int index) => _sizes?[index] ?? Elements;

    /// <summary>Parses "2000x100", or "transformer".</summary>
    public static Shape Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (string.Equals(text.Trim(), Transformer._name, StringComparison.OrdinalIgnoreCase)) return Transformer;
        var parts = text.Split('x', '×', 'X');
        if (parts.Length != 2 || !int.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            || !long.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var e) || n <= 0 || e <= 0)
            throw new FormatException($"'{text}' is not a shape like 2000x100 (tensors x floats per tensor) or 'transformer'.");
        return new Shape(n, e);
    }

    /// <summary>"2000x100" or "transformer": the form the command line and BenchmarkDotNet's parameters use.</summary>
    public override string ToString() => _name ?? string.Create(CultureInfo.InvariantCulture, $"{Tensors}x{Elements}");

    /// <summary>"2,000 × 100", or "transformer (67 tensors)": the form the tables use.</summary>
    public string Display => _name is null
        ? string.Create(CultureInfo.InvariantCulture, $"{Tensors:N0} × {Elements:N0}")
        : string.Create(CultureInfo.InvariantCulture, $"{_name} ({Tensors:N0} tensors)");

    // Weights before biases, module by module, as nn.Module.parameters() lists them.
    private static long[] TransformerSizes(long dModel, int layers, long feedForward, long vocabulary, long positions)
    {
        var sizes = new List<long> { vocabulary * dModel, positions * dModel };
        for (var l = 0; l < layers; l++)
        {
            sizes.AddRange(new[] { dModel, dModel });                      // norm before attention: weight, bias
            sizes.AddRange(new[] { 3 * dModel * dModel, 3 * dModel });     // in_proj (q, k, v): weight, bias
            sizes.AddRange(new[] { dModel * dModel, dModel });             // out_proj
            sizes.AddRange(new[] { dModel, dModel });                      // norm before the feed-forward block
            sizes.AddRange(new[] { feedForward * dModel, feedForward });   // linear1
            sizes.AddRange(new[] { dModel * feedForward, dModel });        // linear2
        }
        sizes.AddRange(new[] { dModel, dModel });                          // final norm
        return sizes.ToArray();
    }
}

/// <summary>
/// What the benchmarks run each algorithm with: options beyond its defaults, and TorchSharp's built-in optimizer doing
/// the same work (null where TorchSharp has none; that cell is skipped). An algorithm without a row in
/// <see cref="Catalog"/> runs with its defaults and no built-in.
/// </summary>
/// <param name="Options">Hyperparameters (PyTorch's names) that differ from the defaults.</param>
/// <param name="BuiltIn">TorchSharp's optimizer over the parameters with the same hyperparameters.</param>
public sealed record BenchmarkProfile(
    IReadOnlyList<KeyValuePair<string, object?>>? Options = null,
    Func<OptimizerOptions, IReadOnlyList<Parameter>, torch.optim.Optimizer?>? BuiltIn = null);

/// <summary>What the benchmarks measure, in one place: algorithms (<see cref="AlgorithmCatalog"/>), paths, the factory and the memory-traffic model.</summary>
public static class Catalog
{
    private static readonly Dictionary<AlgorithmInfo, BenchmarkProfile> Profiles = new()
    {
        [SGD.Info] = new(
            new[] { new KeyValuePair<string, object?>("momentum", 0.9) },
            (o, ps) => o is SGDOptions s ? torch.optim.SGD(ps, s.Lr, s.Momentum, s.Dampening, s.WeightDecay, s.Nesterov, s.Maximize) : null),
        [SGDMomentumNesterov.Info] = new(
            BuiltIn: (o, ps) => o is SGDMomentumNesterovOptions s && !s.DecoupledWeightDecay
                ? torch.optim.SGD(ps, s.Lr, s.Momentum, s.Dampening, s.WeightDecay, s.Nesterov, s.Maximize)
                : null),
        [Adam.Info] = new(BuiltIn: (o, ps) => o is AdamOptions a
            ? torch.optim.Adam(ps, a.Lr, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, a.Amsgrad, a.Maximize)
            : null),
        // TorchSharp's AdamW defaults to weight_decay 0, PyTorch's (and ours) to 1e-2: the options passed make the work equal.
        [AdamW.Info] = new(BuiltIn: (o, ps) => o is AdamOptions a
            ? torch.optim.AdamW(ps, a.Lr, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, a.Amsgrad, a.Maximize)
            : null),
        [Adagrad.Info] = new(BuiltIn: (o, ps) => o is AdagradOptions a && !a.Maximize
            ? torch.optim.Adagrad(ps, a.Lr, a.LrDecay, a.WeightDecay, a.InitialAccumulatorValue, a.Eps)
            : null),
        [RMSprop.Info] = new(BuiltIn: (o, ps) => o is RMSpropOptions r
            ? torch.optim.RMSProp(ps, r.Lr, r.Alpha, r.Eps, r.WeightDecay, r.Momentum, r.Centered, r.Maximize)
            : null),
        [Adadelta.Info] = new(BuiltIn: (o, ps) => o is AdadeltaOptions a
            ? torch.optim.Adadelta(ps, a.Lr, a.Rho, a.Eps, a.WeightDecay, a.Maximize)
            : null),
        // TorchSharp's Adamax, NAdam and RAdam have no maximize (NAdam and RAdam no decoupled decay): no cell then.
        [Adamax.Info] = new(BuiltIn: (o, ps) => o is AdamaxOptions a && !a.Maximize
            ? torch.optim.Adamax(ps, a.Lr, a.Beta1, a.Beta2, a.Eps, a.WeightDecay)
            : null),
        [ASGD.Info] = new(BuiltIn: (o, ps) => o is ASGDOptions a
            ? torch.optim.ASGD(ps, a.Lr, a.Lambd, a.Alpha, a.T0, a.WeightDecay, a.Maximize)
            : null),
        [NAdam.Info] = new(BuiltIn: (o, ps) => o is NAdamOptions a && !a.Maximize && !a.DecoupledWeightDecay
            ? torch.optim.NAdam(ps, a.Lr, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, a.MomentumDecay)
            : null),
        [RAdam.Info] = new(BuiltIn: (o, ps) => o is RAdamOptions a && !a.Maximize && !a.DecoupledWeightDecay
            ? torch.optim.RAdam(ps, a.Lr, a.Beta1, a.Beta2, a.Eps, a.WeightDecay)
            : null),
        // TorchSharp 0.107's Rprop fails on its first step ("Index put requires the source and destination dtypes
        // match"; pinned by a test), so it has no built-in cell.
        [Rprop.Info] = new(),
    };

    private static readonly Dictionary<AlgorithmInfo, int> BytesCache = new();
    private static readonly Dictionary<AlgorithmInfo, bool> BuiltInCache = new();

    /// <summary>
    /// Every algorithm of the catalog these step benchmarks measure, in its order: those that step on dense gradients set
    /// beforehand. A closure-driven one (<see cref="AlgorithmInfo.RequiresClosure"/>: LBFGS) re-evaluates the model inside
    /// its step, up to <c>max_eval</c> forward and backward passes of a model these benchmarks do not have, so its
    /// step time is not comparable; one that requires sparse gradients (SparseAdam) updates the rows a batch touches,
    /// so its cost follows the batch, not the parameter sizes these shapes vary. They are left out, and runs say so
    /// (<see cref="SkippedNote"/>).
    /// </summary>
    public static IReadOnlyList<AlgorithmInfo> Algorithms { get; } = AlgorithmCatalog.All.Where(a => !Skip(a)).ToArray();

    /// <summary>The catalog's algorithms the benchmarks leave out (closure-driven, or sparse gradients only).</summary>
    public static IReadOnlyList<AlgorithmInfo> Skipped { get; } = AlgorithmCatalog.All.Where(Skip).ToArray();

    private static bool Skip(AlgorithmInfo a) => a.RequiresClosure || a.RequiresSparseGradients;

    /// <summary>A line saying which algorithms are not measured and why, or null when none is left out.</summary>
    public static string? SkippedNote => Skipped.Count == 0 ? null
        : "Not measured: " + string.Join("; ", Skipped.Select(a => a.RequiresClosure
            ? $"{a} (closure-driven: its step re-evaluates the model through a closure, many forward and backward passes per step, so a step time on gradients set beforehand means nothing)"
            : $"{a} (sparse gradients only: it updates the rows a batch looks up, so its cost follows the batch, not these parameter sizes)")) + ".";

    /// <summary>Every path, in table order.</summary>
    public static IReadOnlyList<StepPath> Paths { get; } = Enum.GetValues<StepPath>();

    /// <summary>The algorithm's row (defaults where it has none).</summary>
    public static BenchmarkProfile Profile(AlgorithmInfo algorithm) => Profiles.TryGetValue(algorithm, out var p) ? p : new BenchmarkProfile();

    /// <summary>The options every path runs <paramref name="algorithm"/> with.</summary>
    public static OptimizerOptions Options(AlgorithmInfo algorithm) =>
        Profile(algorithm).Options is { } o ? algorithm.DefaultOptions.WithHyperparameters(o) : algorithm.DefaultOptions;

    /// <summary>The options that differ from the defaults, as text for the report ("momentum 0.9"), or "defaults".</summary>
    public static string Settings(AlgorithmInfo algorithm) =>
        Profile(algorithm).Options is { Count: > 0 } o
            ? string.Join(", ", o.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value}")))
            : "defaults";

    /// <summary>
    /// Whether the cell exists: the fused path where there is a fused kernel (<see cref="AlgorithmInfo.HasFusedKernel"/>), the
    /// foreach path where the algorithm has one, the built-in where TorchSharp has the algorithm, auto where the
    /// algorithm has a choice of paths.
    /// </summary>
    public static bool HasPath(AlgorithmInfo algorithm, StepPath path) => path switch
    {
        StepPath.Fused => FusedHere(algorithm),
        StepPath.Foreach => algorithm.HasForeach,
        StepPath.BuiltIn => HasBuiltIn(algorithm),
        StepPath.ForLoop => true,
        _ => algorithm.HasImplementations, // auto: one path of its own (Muon) is its for-loop cell alone
    };

    // Whether the algorithm has a fused kernel on the measured device: the C# kernels serve the CPU only.
    private static bool FusedHere(AlgorithmInfo algorithm) =>
        algorithm.HasFusedKernel && (!algorithm.FusedKernelIsCSharp || BenchDevice.Current.type == DeviceType.CPU);

    // Whether the row's built-in accepts the options (TorchSharp's Adagrad has no maximize, for example); asked once.
    private static bool HasBuiltIn(AlgorithmInfo algorithm)
    {
        lock (BuiltInCache)
        {
            if (BuiltInCache.TryGetValue(algorithm, out var known)) return known;
            var has = false;
            if (Profile(algorithm).BuiltIn is { } builtIn)
            {
                using var probe = new Parameter(torch.zeros(1, 1));
                using var optimizer = builtIn(Options(algorithm), new[] { probe });
                has = optimizer is not null;
            }
            return BuiltInCache[algorithm] = has;
        }
    }

    /// <summary>
    /// Bytes an fp32 step must move per parameter: what an ideal (fused, single-pass) kernel reads and writes, 4 bytes
    /// per float, with the options above. It reads the parameter, its gradient and every state tensor of the
    /// parameter's size, and writes the parameter and those state tensors: (3 + 2·n) floats for n state tensors
    /// (SGD with momentum: 20 bytes; Adam and AdamW: 28; Adagrad and plain RMSprop: 20). Scalars (step counters) are
    /// negligible. The state tensors are counted on a probe step, so the model follows each algorithm's state.
    /// </summary>
    public static int BytesPerParameter(AlgorithmInfo algorithm)
    {
        lock (BytesCache)
        {
            if (BytesCache.TryGetValue(algorithm, out var cached)) return cached;
            const int Elements = 7;
            // A matrix, which every algorithm takes (Muon nothing else).
            using var parameter = new Parameter(torch.zeros(1, Elements));
            using var optimizer = (Optimizer)Create(algorithm, StepPath.ForLoop, new[] { parameter });
            parameter.grad = torch.ones(1, Elements);
            optimizer.step();
            var stateTensors = optimizer.StateDict().State.Values.Sum(s => s.Count(kv => kv.Value.numel() == Elements));
            return BytesCache[algorithm] = (3 + 2 * stateTensors) * sizeof(float);
        }
    }

    /// <summary>The optimizer for one (algorithm, path) cell over <paramref name="parameters"/>.</summary>
    public static torch.optim.Optimizer Create(AlgorithmInfo algorithm, StepPath path, IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        if (!HasPath(algorithm, path)) throw new ArgumentException($"{algorithm} has no {path} path.", nameof(path));
        if (path == StepPath.BuiltIn) return Profile(algorithm).BuiltIn!(Options(algorithm), parameters)!;
        var impl = path switch
        {
            StepPath.ForLoop => Implementation.ForLoop,
            StepPath.Foreach => Implementation.Foreach,
            StepPath.Fused => Implementation.Fused,
            StepPath.Flat when FusedHere(algorithm) => Implementation.Fused,
            _ => Implementation.Auto,
        };
        return Create(algorithm, impl, path == StepPath.Flat, parameters);
    }

    /// <summary>Ours on <paramref name="impl"/>, with flat buffers or not, over <paramref name="parameters"/> (the cell's options).</summary>
    public static Optimizer Create(AlgorithmInfo algorithm, Implementation impl, bool flat, IReadOnlyList<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        // An algorithm with one path of its own (Muon) has no implementation option: its for-loop cell is that path.
        var options = (Profile(algorithm).Options ?? Array.Empty<KeyValuePair<string, object?>>())
            .Concat(algorithm.HasImplementations ? new[] { new KeyValuePair<string, object?>("implementation", impl) } : []);
        return algorithm.Create(parameters, options, flat);
    }

    /// <summary>Table label of a path.</summary>
    public static string Label(StepPath path) => path switch
    {
        StepPath.BuiltIn => "TorchSharp built-in",
        StepPath.ForLoop => "for-loop",
        StepPath.Foreach => "foreach",
        StepPath.Fused => "fused",
        StepPath.Flat => "flat",
        _ => "auto",
    };

    /// <summary>The algorithms and shapes a run covers: all, or those named on the command line.</summary>
    public static Selection Selected { get; set; } = Selection.Everything;
}

/// <summary>Which algorithms and shapes a run covers (<c>--algorithm NAME</c>, <c>--shape 2000x100</c>, repeatable).</summary>
public sealed record Selection(IReadOnlyList<AlgorithmInfo> Algorithms, IReadOnlyList<Shape> Shapes)
{
    /// <summary>The whole matrix.</summary>
    public static Selection Everything { get; } = new(Catalog.Algorithms, Shape.All);

    /// <summary>Whether this is the whole matrix (only then are docs/ and the README rewritten).</summary>
    public bool IsEverything => Algorithms.Count == Everything.Algorithms.Count && Shapes.Count == Everything.Shapes.Count;

    /// <summary>Takes <c>--algorithm</c> and <c>--shape</c> options out of <paramref name="args"/>; returns the rest.</summary>
    public static (Selection Selection, string[] Others) Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var algorithms = new List<AlgorithmInfo>();
        var shapes = new List<Shape>();
        var rest = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] is "--algorithm" or "--shape")
            {
                if (i + 1 >= args.Count) throw new ArgumentException($"{args[i]} needs a value.");
                foreach (var value in args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    if (args[i - 1] == "--shape") shapes.Add(Shape.Parse(value));
                    else algorithms.Add(Catalog.Algorithms.FirstOrDefault(a => string.Equals(a.Name, value, StringComparison.OrdinalIgnoreCase))
                        ?? throw new ArgumentException(Catalog.Skipped.Any(a => string.Equals(a.Name, value, StringComparison.OrdinalIgnoreCase))
                            ? $"{value} is not benchmarked: {Catalog.SkippedNote}"
                            : $"Unknown algorithm '{value}'; one of {string.Join(", ", Catalog.Algorithms)}."));
                }
            }
            else rest.Add(args[i]);
        }
        var selection = new Selection(
            algorithms.Count == 0 ? Catalog.Algorithms : Catalog.Algorithms.Where(algorithms.Contains).ToArray(),
            shapes.Count == 0 ? Shape.All : shapes.Distinct().ToArray());
        return (selection, rest.ToArray());
    }
}
