using System;
using System.Collections.Generic;
using System.Linq;
using Optim;
using Samples;
using ScottPlot;
using TorchSharp;
using TorchSharp.Modules;
using LBFGS = Optim.LBFGS;
using static TorchSharp.torch;

namespace OptimizerTour;

/// <summary>One L-BFGS run on the logistic regression: the loss after each closure evaluation and after each step.</summary>
internal sealed record FitRun(string Name, IReadOnlyList<double> LossPerEvaluation, IReadOnlyList<double> LossPerStep, double[] Weights);

/// <summary>
/// A full-batch problem for L-BFGS: logistic regression (two features and a bias) on 400 points of two overlapping
/// Gaussian clouds, in float64. Optim's LBFGS with the strong-Wolfe line search, Optim's LBFGS without it, and
/// TorchSharp's built-in <c>torch.optim.LBFGS</c> (libtorch's, which has no line search) each take a few
/// <c>step(closure)</c> calls of up to 20 iterations from zero weights, with PyTorch's defaults.
/// </summary>
internal static class LogisticFit
{
    public const int Steps = 4;
    private const int Points = 400;

    private static (Tensor X, Tensor Y) Data()
    {
        var generator = new torch.Generator(7);
        var negative = torch.randn(new long[] { Points / 2, 2 }, ScalarType.Float64, generator: generator) * 1.2 + torch.tensor(new[] { -1.0, -0.5 });
        var positive = torch.randn(new long[] { Points / 2, 2 }, ScalarType.Float64, generator: generator) * 1.2 + torch.tensor(new[] { 1.0, 0.8 });
        var y = torch.cat(new[] { torch.zeros(Points / 2, ScalarType.Float64), torch.ones(Points / 2, ScalarType.Float64) });
        // The second feature in other units (x 20): an ill-conditioned problem, where a fixed step overshoots.
        return (torch.cat(new[] { negative, positive }) * torch.tensor(new[] { 1.0, 20.0 }), y);
    }

    public static IReadOnlyList<FitRun> RunAll() => new[]
    {
        Run("Optim LBFGS, strong Wolfe", ps => new LBFGS(ps, line_search_fn: LBFGSOptions.StrongWolfe)),
        Run("Optim LBFGS, no line search", ps => new LBFGS(ps)),
        // TorchSharp's factory defaults differ from PyTorch's (lr 0.01, tolerance 1e-5): given PyTorch's, as the others run.
        Run("TorchSharp torch.optim.LBFGS", ps => torch.optim.LBFGS(ps, lr: 1, tolerange_grad: 1e-7)),
    };

    private static FitRun Run(string name, Func<IEnumerable<Parameter>, torch.optim.Optimizer> create)
    {
        var (x, y) = Data();
        using var w = new Parameter(torch.zeros(2, ScalarType.Float64));
        using var b = new Parameter(torch.zeros(1, ScalarType.Float64));
        using var optimizer = create(new[] { w, b });
        var perEvaluation = new List<double>();
        var perStep = new List<double> { Loss(x, y, w, b).item<double>() };
        Tensor Closure()
        {
            optimizer.zero_grad();
            var loss = Loss(x, y, w, b);
            loss.backward();
            perEvaluation.Add(loss.item<double>());
            return loss;
        }
        for (var step = 0; step < Steps; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.step(Closure);
            using (no_grad()) perStep.Add(Loss(x, y, w, b).item<double>());
        }
        return new FitRun(name, perEvaluation, perStep, w.data<double>().ToArray().Append(b.data<double>()[0]).ToArray());
    }

    // Mean binary cross-entropy of sigmoid(x·w + b), from the logits (PyTorch's stable form).
    private static Tensor Loss(Tensor x, Tensor y, Tensor w, Tensor b) =>
        torch.nn.functional.binary_cross_entropy_with_logits(x.matmul(w) + b, y);

    /// <summary>The loss over closure evaluations, one line per run (log10 of the gap to the best loss reached).</summary>
    public static void Render(IReadOnlyList<FitRun> runs, string path)
    {
        var plot = new Plot();
        ChartFont.Apply(plot);
        var best = runs.SelectMany(r => r.LossPerEvaluation).Min();
        var palette = new ScottPlot.Palettes.Category10();
        for (var k = 0; k < runs.Count; k++)
        {
            var losses = runs[k].LossPerEvaluation;
            var xs = Enumerable.Range(1, losses.Count).Select(i => (double)i).ToArray();
            var ys = losses.Select(l => Math.Log10(Math.Max(l - best, 1e-16))).ToArray();
            var line = plot.Add.ScatterLine(xs, ys, palette.GetColor(k));
            line.LineWidth = 2;
            line.LinePattern = k == 2 ? LinePattern.Dashed : LinePattern.Solid;
            line.LegendText = runs[k].Name;
        }
        plot.Title($"Logistic regression ({Points} points, second feature in 20x larger units, full batch, float64):\n{Steps} LBFGS steps of up to 20 iterations from zero weights");
        plot.XLabel("closure evaluations (forward + backward passes)");
        plot.YLabel("log10(loss - best loss)");
        plot.ShowLegend(Edge.Bottom);
        plot.SavePng(path, 1000, 600);
    }
}
