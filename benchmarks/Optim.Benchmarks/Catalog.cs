using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Benchmarks;

/// <summary>The algorithms measured, each with the hyperparameters every path runs it with.</summary>
public enum Algorithm
{
    /// <summary>SGD with momentum 0.9, lr 1e-3.</summary>
    SGD,

    /// <summary>Adam, PyTorch's defaults.</summary>
    Adam,

    /// <summary>AdamW, PyTorch's defaults (weight decay 1e-2).</summary>
    AdamW,

    /// <summary>Adagrad, PyTorch's defaults.</summary>
    Adagrad,

    /// <summary>RMSprop, PyTorch's defaults (no momentum, not centered).</summary>
    RMSprop,
}

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
}

/// <summary>A model shape: <see cref="Tensors"/> parameters of <see cref="Elements"/> floats each.</summary>
public readonly record struct Shape(int Tensors, long Elements)
{
    /// <summary>The four shapes of the benchmark: many small tensors (per-call overhead dominates) to few large ones (memory bound).</summary>
    public static readonly IReadOnlyList<Shape> All = new[] { Parse("2000x100"), Parse("200x1000"), Parse("50x100000"), Parse("20x1000000") };

    /// <summary>Total parameter count.</summary>
    public long Parameters => Tensors * Elements;

    /// <summary>Parses "2000x100".</summary>
    public static Shape Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('x', '×', 'X');
        if (parts.Length != 2 || !int.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            || !long.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var e) || n <= 0 || e <= 0)
            throw new FormatException($"'{text}' is not a shape like 2000x100 (tensors x floats per tensor).");
        return new Shape(n, e);
    }

    /// <summary>"2000x100": the form the command line and BenchmarkDotNet's parameters use.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Tensors}x{Elements}");

    /// <summary>"2,000 × 100": the form the tables use.</summary>
    public string Display => string.Create(CultureInfo.InvariantCulture, $"{Tensors:N0} × {Elements:N0}");
}

/// <summary>What the benchmarks measure, in one place: algorithms, paths, the factory and the memory-traffic model.</summary>
public static class Catalog
{
    /// <summary>Every algorithm, in table order.</summary>
    public static IReadOnlyList<Algorithm> Algorithms { get; } = Enum.GetValues<Algorithm>();

    /// <summary>Every path, in table order.</summary>
    public static IReadOnlyList<StepPath> Paths { get; } = Enum.GetValues<StepPath>();

    /// <summary>ATen has fused CPU kernels for SGD, Adam, AdamW and Adagrad; RMSprop has none (the cell is skipped).</summary>
    public static bool HasPath(Algorithm algorithm, StepPath path) => path != StepPath.Fused || algorithm != Algorithm.RMSprop;

    /// <summary>
    /// Bytes an fp32 step must move per parameter: what an ideal (fused, single-pass) kernel reads and writes, 4 bytes
    /// per float, with the hyperparameters above. Scalars (step counters, learning rates) are negligible.
    /// <code>
    /// algorithm            reads                          writes                      floats  bytes
    /// SGD (momentum 0.9)   param, grad, momentum_buffer   param, momentum_buffer      3 + 2   20
    /// Adam                 param, grad, exp_avg, exp_avg_sq  param, exp_avg, exp_avg_sq  4 + 3   28
    /// AdamW                as Adam (the decoupled decay scales param in the same pass)  4 + 3   28
    /// Adagrad              param, grad, sum               param, sum                  3 + 2   20
    /// RMSprop (no momentum, not centered)  param, grad, square_avg  param, square_avg  3 + 2   20
    /// </code>
    /// </summary>
    public static int BytesPerParameter(Algorithm algorithm) => algorithm switch
    {
        Algorithm.SGD => (3 + 2) * sizeof(float),
        Algorithm.Adam or Algorithm.AdamW => (4 + 3) * sizeof(float),
        Algorithm.Adagrad => (3 + 2) * sizeof(float),
        Algorithm.RMSprop => (3 + 2) * sizeof(float),
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
    };

    /// <summary>The optimizer for one (algorithm, path) cell over <paramref name="parameters"/>.</summary>
    public static torch.optim.Optimizer Create(Algorithm algorithm, StepPath path, IReadOnlyList<Parameter> parameters)
    {
        if (!HasPath(algorithm, path)) throw new ArgumentException($"{algorithm} has no {path} path.", nameof(path));
        if (path == StepPath.BuiltIn)
        {
            return algorithm switch
            {
                Algorithm.SGD => torch.optim.SGD(parameters, 1e-3, momentum: 0.9),
                Algorithm.Adam => torch.optim.Adam(parameters),
                // TorchSharp's AdamW defaults to weight_decay 0; PyTorch's (and ours) to 1e-2: same work on both sides.
                Algorithm.AdamW => torch.optim.AdamW(parameters, weight_decay: 1e-2),
                Algorithm.Adagrad => torch.optim.Adagrad(parameters),
                Algorithm.RMSprop => torch.optim.RMSProp(parameters),
                _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
            };
        }
        var impl = path switch
        {
            StepPath.ForLoop => Implementation.ForLoop,
            StepPath.Foreach => Implementation.Foreach,
            StepPath.Fused => Implementation.Fused,
            _ => Implementation.Auto,
        };
        return algorithm switch
        {
            Algorithm.SGD => new SGD(parameters, lr: 1e-3, momentum: 0.9, implementation: impl),
            Algorithm.Adam => new Adam(parameters, implementation: impl),
            Algorithm.AdamW => new AdamW(parameters, implementation: impl),
            Algorithm.Adagrad => new Adagrad(parameters, implementation: impl),
            Algorithm.RMSprop => new RMSprop(parameters, implementation: impl),
            _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
        };
    }

    /// <summary>Table label of a path.</summary>
    public static string Label(StepPath path) => path switch
    {
        StepPath.BuiltIn => "TorchSharp built-in",
        StepPath.ForLoop => "for-loop",
        StepPath.Foreach => "foreach",
        StepPath.Fused => "fused",
        _ => "auto",
    };

    /// <summary>The algorithms and shapes a run covers: all, or those named on the command line.</summary>
    public static Selection Selected { get; set; } = Selection.Everything;
}

/// <summary>Which algorithms and shapes a run covers (<c>--algorithm NAME</c>, <c>--shape 2000x100</c>, repeatable).</summary>
public sealed record Selection(IReadOnlyList<Algorithm> Algorithms, IReadOnlyList<Shape> Shapes)
{
    /// <summary>The whole matrix.</summary>
    public static Selection Everything { get; } = new(Catalog.Algorithms, Shape.All);

    /// <summary>Whether this is the whole matrix (only then are docs/ and the README rewritten).</summary>
    public bool IsEverything => Algorithms.Count == Everything.Algorithms.Count && Shapes.Count == Everything.Shapes.Count;

    /// <summary>Takes <c>--algorithm</c> and <c>--shape</c> options out of <paramref name="args"/>; returns the rest.</summary>
    public static (Selection Selection, string[] Others) Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var algorithms = new List<Algorithm>();
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
                    else algorithms.Add(Enum.TryParse<Algorithm>(value, ignoreCase: true, out var a) ? a
                        : throw new ArgumentException($"Unknown algorithm '{value}'; one of {string.Join(", ", Catalog.Algorithms)}."));
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
