using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Optim;
using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace OptimizerTour;

/// <summary>A two-dimensional test function, as a torch expression (for autograd) and as plain C# (for the contours).</summary>
internal sealed record Surface(
    string Name, string Slug, string Formula,
    Func<Tensor, Tensor, Tensor> Torch, Func<double, double, double> Value,
    (double X, double Y) Start, (double Min, double Max) XRange, (double Min, double Max) YRange,
    IReadOnlyList<(double X, double Y)> Minima, int Steps)
{
    /// <summary>Rosenbrock's banana: a long, curved, flat-bottomed valley to the minimum at (1, 1).</summary>
    public static readonly Surface Rosenbrock = new(
        "Rosenbrock", "rosenbrock", "f(x, y) = (1 - x)² + 100 (y - x²)²",
        (x, y) => (1 - x).square() + 100 * (y - x.square()).square(),
        (x, y) => (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x),
        Start: (-1.2, 1.0), XRange: (-2.0, 2.0), YRange: (-1.0, 3.0),
        Minima: new[] { (1.0, 1.0) }, Steps: 500);

    /// <summary>Himmelblau's function: four minima (f = 0) around a central maximum; which one a run finds depends on its path.</summary>
    public static readonly Surface Himmelblau = new(
        "Himmelblau", "himmelblau", "f(x, y) = (x² + y - 11)² + (x + y² - 7)²",
        (x, y) => (x.square() + y - 11).square() + (x + y.square() - 7).square(),
        (x, y) => (x * x + y - 11) * (x * x + y - 11) + (x + y * y - 7) * (x + y * y - 7),
        Start: (0.5, -0.5), XRange: (-5.0, 5.0), YRange: (-5.0, 5.0),
        Minima: new[] { (3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126) }, Steps: 200);

    public static readonly IReadOnlyList<Surface> All = new[] { Rosenbrock, Himmelblau };
}

/// <summary>
/// One algorithm of <see cref="AlgorithmCatalog"/> with settings (PyTorch's option names; the rest at their defaults)
/// and a learning rate for each surface (they differ: the surfaces' scales do).
/// </summary>
internal sealed record Contender(
    string Name, AlgorithmInfo Algorithm, IReadOnlyDictionary<string, double> LearningRates,
    IReadOnlyList<KeyValuePair<string, object?>> Options)
{
    public double LearningRate(Surface surface) => LearningRates[surface.Slug];

    public string Settings(Surface surface) =>
        string.Join(", ", new[] { "lr " + Text(LearningRate(surface)) }.Concat(Options.Select(o => o.Value switch
        {
            true => o.Key,
            false => "no " + o.Key,
            _ => $"{o.Key} {Text(o.Value)}",
        })));

    public torch.optim.Optimizer Create(IEnumerable<Parameter> parameters, Surface surface) =>
        Algorithm.Create(parameters, Options.Prepend(new KeyValuePair<string, object?>("lr", LearningRate(surface))));

    private static string Text(object? value) => value is IFormattable f ? f.ToString("g", CultureInfo.InvariantCulture) : value?.ToString() ?? "None";

    private static Dictionary<string, double> Lr(double rosenbrock, double himmelblau) =>
        new() { [Surface.Rosenbrock.Slug] = rosenbrock, [Surface.Himmelblau.Slug] = himmelblau };

    private static KeyValuePair<string, object?>[] With(params (string Name, object? Value)[] options) =>
        options.Select(o => new KeyValuePair<string, object?>(o.Name, o.Value)).ToArray();

    public static readonly IReadOnlyList<Contender> All = new Contender[]
    {
        new("SGD", SGD.Info, Lr(1.5e-3, 1e-2), With()),
        new("SGD + momentum", SGD.Info, Lr(1e-3, 1e-2), With(("momentum", 0.9))),
        new("SGD + Nesterov", SGD.Info, Lr(1e-3, 1e-2), With(("momentum", 0.9), ("nesterov", true))),
        // With SGD's settings it is SGD + Nesterov exactly (the tests prove it); a heavier momentum shows something new.
        new("SGDMomentumNesterov", SGDMomentumNesterov.Info, Lr(1e-3, 5e-3), With(("momentum", 0.95))),
        new("Adagrad", Adagrad.Info, Lr(1.0, 0.5), With()),
        new("RMSprop", RMSprop.Info, Lr(2e-2, 5e-2), With()),
        new("Adam", Adam.Info, Lr(0.1, 0.1), With()),
        new("AdamW", AdamW.Info, Lr(0.1, 0.1), With()),
        new("Adadelta", Adadelta.Info, Lr(1.0, 1.0), With()),
        new("Adamax", Adamax.Info, Lr(0.1, 0.1), With()),
        new("ASGD", ASGD.Info, Lr(1.5e-3, 1e-2), With()),
        new("NAdam", NAdam.Info, Lr(0.05, 0.05), With()),
        // RAdam's first steps (before the variance is rectified) are plain momentum steps of size lr: SGD's scale.
        new("RAdam", RAdam.Info, Lr(1e-3, 1e-2), With()),
        new("Rprop", Rprop.Info, Lr(1e-3, 1e-3), With()),
        // Closure-driven: each step re-evaluates f through the closure. max_iter 1 makes a step one L-BFGS iteration
        // (its strong-Wolfe line search may evaluate f several times), so the step counts compare with the others'.
        new("LBFGS", LBFGS.Info, Lr(1.0, 1.0), With(("max_iter", 1L), ("line_search_fn", LBFGSOptions.StrongWolfe))),
    };
}

internal sealed record TourRun(Contender Contender, Surface Surface, IReadOnlyList<(double X, double Y)> Path, IReadOnlyList<double> Losses)
{
    public double FinalLoss => Losses[^1];

    /// <summary>The first step after which f is below <paramref name="tolerance"/>, or null if none was.</summary>
    public int? StepsTo(double tolerance)
    {
        for (var step = 0; step < Losses.Count; step++)
            if (Losses[step] < tolerance) return step;
        return null;
    }
}

internal static class Tour
{
    /// <summary>The thresholds of f the table reports the steps to: roughly there, and there.</summary>
    public static readonly double[] Tolerances = { 1e-2, 1e-5 };

    /// <summary>
    /// Optimizes a two-element float64 parameter from the surface's start for the surface's steps; autograd gives
    /// the gradient. Records every point and the value of f there.
    /// </summary>
    public static TourRun Run(Surface surface, Contender contender)
    {
        using var point = new Parameter(torch.tensor(new[] { surface.Start.X, surface.Start.Y }, dtype: ScalarType.Float64));
        using var optimizer = contender.Create(new[] { point }, surface);
        var path = new List<(double X, double Y)> { surface.Start };
        var losses = new List<double> { surface.Value(surface.Start.X, surface.Start.Y) };
        for (var step = 1; step <= surface.Steps; step++)
        {
            using (var scope = NewDisposeScope())
            {
                Tensor Closure()
                {
                    optimizer.zero_grad();
                    var f = surface.Torch(point[0], point[1]);
                    f.backward();
                    return f;
                }
                // A closure-driven algorithm (LBFGS) evaluates f itself, as often as it needs; the others take the gradient.
                if (contender.Algorithm.RequiresClosure)
                {
                    optimizer.step(Closure);
                }
                else
                {
                    Closure();
                    optimizer.step();
                }
            }
            var values = point.data<double>();
            var (x, y) = (values[0], values[1]);
            path.Add((x, y));
            var loss = surface.Value(x, y);
            if (!double.IsFinite(loss)) throw new InvalidOperationException($"{contender.Name} diverged on {surface.Name} at step {step}");
            losses.Add(loss);
        }
        return new TourRun(contender, surface, path, losses);
    }
}
