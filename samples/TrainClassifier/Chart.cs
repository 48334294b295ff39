using System.Collections.Generic;
using System.Linq;
using Samples;
using ScottPlot;

namespace TrainClassifier;

/// <summary>The learning curves of a run: losses on the left axis, accuracies on the right, against epochs.</summary>
internal static class Chart
{
    private const int Width = 900, Height = 500;

    public static void Render(IReadOnlyList<EpochReport> history, TrainerOptions options, string path)
    {
        var plot = new Plot();
        ChartFont.Apply(plot);
        double[] epochs = history.Select(r => (double)(r.Epoch + 1)).ToArray();

        Line(history.Select(r => r.TrainLoss), "training loss", Colors.DarkOrange, LinePattern.Dashed, left: true);
        Line(history.Select(r => r.ValidationLoss), "validation loss", Colors.DarkOrange, LinePattern.Solid, left: true);
        Line(history.Select(r => 100 * r.TrainAccuracy), "training accuracy", Colors.SeaGreen, LinePattern.Dashed, left: false);
        Line(history.Select(r => 100 * r.ValidationAccuracy), "validation accuracy", Colors.SeaGreen, LinePattern.Solid, left: false);

        var last = history[^1];
        plot.Title($"UCI digits, MLP 64-{options.Hidden}-{options.Hidden}-10, AdamW + OneCycleLR: " +
                   $"validation accuracy {last.ValidationAccuracy:P1} after {last.Step} steps");
        plot.XLabel("epoch");
        plot.Axes.Left.Label.Text = "cross-entropy loss";
        plot.Axes.Right.Label.Text = "accuracy (%)";
        plot.Axes.SetLimitsY(0, 100, plot.Axes.Right);
        plot.Axes.SetLimitsY(0, history.Max(r => System.Math.Max(r.TrainLoss, r.ValidationLoss)) * 1.05, plot.Axes.Left);
        plot.Axes.SetLimitsX(1, epochs[^1]);
        plot.ShowLegend(Alignment.MiddleRight);
        plot.SavePng(path, Width, Height);

        void Line(IEnumerable<double> values, string label, Color color, LinePattern pattern, bool left)
        {
            var line = plot.Add.ScatterLine(epochs, values.ToArray(), color);
            line.LineWidth = 2;
            line.LinePattern = pattern;
            line.LegendText = label;
            line.Axes.YAxis = left ? plot.Axes.Left : plot.Axes.Right;
        }
    }
}
