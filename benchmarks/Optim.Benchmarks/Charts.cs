using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using ScottPlot;

namespace Optim.Benchmarks;

/// <summary>Step time against shape, one line per path and one for the memory bound, rendered with ScottPlot.</summary>
public static class Charts
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static readonly Dictionary<StepPath, Color> PathColors = new()
    {
        [StepPath.BuiltIn] = Colors.Gray,
        [StepPath.ForLoop] = Color.FromHex("#1f77b4"),
        [StepPath.Foreach] = Color.FromHex("#ff7f0e"),
        [StepPath.Fused] = Color.FromHex("#2ca02c"),
        [StepPath.Auto] = Color.FromHex("#d62728"),
        [StepPath.Flat] = Color.FromHex("#9467bd"),
    };

    /// <summary>File name of an algorithm's chart.</summary>
    public static string FileName(AlgorithmInfo algorithm) => $"benchmark-{algorithm.Name.ToLowerInvariant()}.png";

    /// <summary>
    /// ScottPlot's default font on Linux is the first family Skia finds (often a serif). Prefer a common sans-serif; the
    /// Linux Skia build ScottPlot brings (NativeAssets.Linux.NoDependencies) reads fonts from /usr/share/fonts, so a
    /// machine with no fonts at all renders lines without text: say so.
    /// </summary>
    private static void ChooseFont()
    {
        var families = SkiaSharp.SKFontManager.Default.FontFamilies.ToHashSet(StringComparer.OrdinalIgnoreCase);
        if (families.Count == 0)
        {
            Console.WriteLine("warning: no fonts found (on Linux, Skia reads /usr/share/fonts; e.g. apt-get install fonts-dejavu-core): chart text will be missing.");
            return;
        }
        var sans = new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Open Sans", "Arial", "Helvetica", "Segoe UI" }.FirstOrDefault(families.Contains);
        if (sans is not null) Fonts.Default = sans;
    }

    /// <summary>Writes one PNG per algorithm in <paramref name="results"/> into <paramref name="folder"/>; returns the file names.</summary>
    public static IReadOnlyList<string> Write(IReadOnlyList<CellResult> results, string folder)
    {
        ArgumentNullException.ThrowIfNull(results);
        Directory.CreateDirectory(folder);
        ChooseFont();
        var files = new List<string>();
        foreach (var group in results.GroupBy(r => r.Algorithm))
        {
            using var plot = Build(group.Key, group.OrderBy(r => r.Shape.Parameters).ThenByDescending(r => r.Shape.Tensors).ToList());
            var name = FileName(group.Key);
            plot.SavePng(Path.Combine(folder, name), 900, 600);
            files.Add(name);
        }
        return files;
    }

    private static Plot Build(AlgorithmInfo algorithm, IReadOnlyList<CellResult> cells)
    {
        var plot = new Plot();
        // x: the shapes in order (two pairs share a parameter count, so position by index and label with both);
        // y: log10 of the median step time, labelled in milliseconds.
        double[] xs = Enumerable.Range(0, cells.Count).Select(i => (double)i).ToArray();
        foreach (var path in Catalog.Paths.Where(p => Catalog.HasPath(algorithm, p)))
        {
            var ys = cells.Select(c => Math.Log10(c[path]!.MedianMs)).ToArray();
            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = path == StepPath.BuiltIn ? "TorchSharp built-in" : "Optim " + Catalog.Label(path);
            line.Color = PathColors[path];
            // Auto usually is the fused path: draw fused wide underneath so both stay visible where they coincide.
            line.LineWidth = path == StepPath.Fused ? 6 : 2;
            line.MarkerSize = path == StepPath.Fused ? 12 : 7;
        }
        var bound = plot.Add.Scatter(xs, cells.Select(c => Math.Log10(c.BoundMs)).ToArray());
        bound.LegendText = "memory bound (bytes ÷ copy bandwidth)";
        bound.Color = Colors.Black;
        bound.LinePattern = LinePattern.Dashed;
        bound.LineWidth = 2;
        bound.MarkerSize = 0;

        var xticks = new ScottPlot.TickGenerators.NumericManual();
        for (var i = 0; i < cells.Count; i++)
            xticks.AddMajor(i, string.Create(Inv, $"{cells[i].Shape.Display}\n{cells[i].Shape.Parameters / 1e6:0.#}M params"));
        plot.Axes.Bottom.TickGenerator = xticks;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => Math.Pow(10, y).ToString("0.###", Inv),
        };
        plot.Axes.SetLimitsX(-0.3, cells.Count - 0.7);
        plot.Title($"{algorithm}: one fp32 CPU step");
        plot.XLabel("model shape (tensors × floats per tensor)");
        plot.YLabel("median step time (ms, log scale)");
        // Lower right is empty on every algorithm's chart: the bound of the small shapes is tiny (cache-resident copy).
        plot.ShowLegend(Alignment.LowerRight);
        plot.Grid.MajorLineColor = Colors.Black.WithAlpha(.15);
        plot.Grid.MinorLineColor = Colors.Black.WithAlpha(.05);
        plot.Grid.MinorLineWidth = 1;
        return plot;
    }
}
