using System.Collections.Generic;
using System.Linq;
using Samples;
using ScottPlot;

namespace CompareOptimizers;

/// <summary>Validation accuracy against steps, one line per contender, as a PNG.</summary>
internal static class Chart
{
    private const int Width = 1100, Height = 650;

    // notRun: the rows whose algorithm does not apply to the model, named in the title with their reason.
    public static void Render(IReadOnlyList<ComparisonRun> runs, IEnumerable<Contender> notRun, ComparisonOptions options, string path)
    {
        var plot = new Plot();
        ChartFont.Apply(plot);
        var palette = new ScottPlot.Palettes.Category20(); // one colour per contender (up to 20)
        for (var k = 0; k < runs.Count; k++)
        {
            var run = runs[k];
            var line = plot.Add.ScatterLine(run.Curve.Select(p => (double)p.Step).ToArray(), run.Curve.Select(p => 100 * p.Accuracy).ToArray(),
                                            palette.GetColor(k));
            line.LineWidth = 2;
            if (run.Contender.FullBatch) line.LinePattern = LinePattern.Dashed;
            line.LegendText = $"{run.Contender.Name} ({run.FinalAccuracy:P1})";
        }
        var splits = runs.Select(r => r.Contender).Where(c => c.Split is not null)
            .Select(c => $"\n{c.Name}: {c.Algorithm.Name} on {c.Split!.Description}, {c.Split.Rest.Name} on {c.Split.RestDescription}");
        var skipped = notRun.Select(c => $"\nnot run: {c.Name} ({c.NotApplicable})");
        plot.Title($"UCI digits, MLP 64-{options.Hidden}-{options.Hidden}-10, the same initial weights and batches of {options.BatchSize} " +
                   "(dashed: full batch)" + string.Concat(splits) + string.Concat(skipped));
        plot.XLabel("optimizer steps");
        plot.YLabel("validation accuracy (%)");
        plot.Axes.SetLimits(0, options.Steps, 0, 100);
        plot.ShowLegend(Edge.Right);
        plot.SavePng(path, Width, Height);
    }
}
