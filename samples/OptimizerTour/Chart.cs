using System;
using System.Collections.Generic;
using System.Linq;
using ScottPlot;

namespace OptimizerTour;

/// <summary>The paths of every run over the surface's contour lines (log-spaced levels), as a PNG.</summary>
internal static class Chart
{
    private const int Width = 1000, Height = 800, GridSize = 401;

    /// <summary>
    /// Skia draws text with the system's fonts (ScottPlot ships none). On a Linux without any (a bare container), the
    /// picture would have no text; say so instead of failing silently.
    /// </summary>
    public static string? FontWarning => SkiaSharp.SKFontManager.Default.FontFamilies.Any() ? null :
        "warning: no fonts found, so the pictures will have no text (on Debian or Ubuntu: apt-get install fonts-dejavu-core)";

    /// <summary>The first of the usual sans-serif fonts the system has, or null (ScottPlot's default).</summary>
    public static string? Font { get; } = new[] { "DejaVu Sans", "Segoe UI", "Helvetica", "Arial", "Liberation Sans" }
        .FirstOrDefault(f => SkiaSharp.SKFontManager.Default.FontFamilies.Contains(f));

    public static void Render(Surface surface, IReadOnlyList<TourRun> runs, string path)
    {
        var plot = new Plot();
        if (Font is not null) plot.Font.Set(Font);

        // Contour lines at f = 1, 3.2, 10, 32, ... (lower levels are slivers along the valleys, finer than the grid).
        var grid = new Coordinates3d[GridSize, GridSize];
        for (var i = 0; i < GridSize; i++)
        {
            var y = surface.YRange.Min + (surface.YRange.Max - surface.YRange.Min) * i / (GridSize - 1);
            for (var j = 0; j < GridSize; j++)
            {
                var x = surface.XRange.Min + (surface.XRange.Max - surface.XRange.Min) * j / (GridSize - 1);
                grid[i, j] = new Coordinates3d(x, y, Math.Log10(surface.Value(x, y) + 1e-9));
            }
        }
        var contours = new ScottPlot.Plottables.ContourLines { ContourLineLevels = Enumerable.Range(0, 8).Select(k => k * 0.5).ToArray() };
        contours.Update(grid);
        contours.LineColor = Colors.Gray.WithAlpha(0.45);
        contours.LineWidth = 1;
        contours.LabelStyle.IsVisible = false;
        plot.Add.Plottable(contours);

        var palette = new ScottPlot.Palettes.Category20(); // one colour per contender (up to 20)
        for (var k = 0; k < runs.Count; k++)
        {
            var run = runs[k];
            var xs = run.Path.Select(p => p.X).ToArray();
            var ys = run.Path.Select(p => p.Y).ToArray();
            var line = plot.Add.ScatterLine(xs, ys, palette.GetColor(k));
            line.LineWidth = 2;
            line.LegendText = run.Contender.Name;
            var end = plot.Add.Marker(xs[^1], ys[^1], MarkerShape.FilledCircle, 7, palette.GetColor(k));
            end.LegendText = "";
        }

        foreach (var (x, y) in surface.Minima) plot.Add.Marker(x, y, MarkerShape.FilledDiamond, 12, Colors.Black);
        var start = plot.Add.Marker(surface.Start.X, surface.Start.Y, MarkerShape.OpenCircle, 14, Colors.Black);
        start.LineWidth = 2;

        plot.Axes.SetLimits(surface.XRange.Min, surface.XRange.Max, surface.YRange.Min, surface.YRange.Max);
        plot.Title($"{surface.Name}: {surface.Formula}\n{surface.Steps} steps from ({surface.Start.X}, {surface.Start.Y}) ○ to the {(surface.Minima.Count > 1 ? "minima" : "minimum")} ◆; dots mark where each run ended");
        plot.XLabel("x");
        plot.YLabel("y");
        plot.ShowLegend(Edge.Right);
        plot.SavePng(path, Width, Height);
    }
}
