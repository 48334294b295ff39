// Runs every Optim optimizer from the same start on two classic test surfaces (Rosenbrock's banana valley and
// Himmelblau's four minima), draws their paths over the contour lines into PNGs (ScottPlot) and prints how many steps
// each needed to get f below 1e-2 and 1e-5.
//
//   dotnet run --project samples/OptimizerTour -c Release               writes docs/optimizer-tour-*.png
//   dotnet run --project samples/OptimizerTour -c Release -- --out DIR  writes them to DIR
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using OptimizerTour;
using Samples;
using Spectre.Console;
using TorchSharp;

string? outDirectory = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out" when i + 1 < args.Length: outDirectory = args[++i]; break;
        case "-h" or "--help":
            Console.WriteLine("usage: OptimizerTour [--out DIR]   (default: the repository's docs/ folder)");
            return 0;
        default:
            Console.Error.WriteLine($"error: unknown argument '{args[i]}' (try --help)");
            return 2;
    }
}
outDirectory ??= SampleFolders.Docs;
Directory.CreateDirectory(outDirectory);

if (ChartFont.Warning is { } warning) Console.Error.WriteLine(warning);

// Two scalars per step: threads would only add synchronization.
torch.set_num_threads(1);
var clock = Stopwatch.StartNew();
var (console, interactive) = SampleConsole.ForTables();

foreach (var surface in Surface.All)
{
    var runs = Contender.All.Select(c => Tour.Run(surface, c)).ToList();
    var png = Path.Combine(outDirectory, $"optimizer-tour-{surface.Slug}.png");
    Chart.Render(surface, runs, png);
    PrintTable(console, surface, runs, png, interactive);
}

// A full-batch problem where L-BFGS shines: a few steps, each several iterations with the closure re-evaluating the loss.
var fits = LogisticFit.RunAll();
var fitPng = Path.Combine(outDirectory, "optimizer-tour-lbfgs-logistic.png");
LogisticFit.Render(fits, fitPng);
var fitTable = new Table().AddColumns("run", "loss after each step", "closure evaluations", "weights (w1, w2, b)");
foreach (var fit in fits)
{
    fitTable.AddRow(Markup.Escape(fit.Name),
        string.Join(", ", fit.LossPerStep.Select(l => l.ToString("G6", CultureInfo.InvariantCulture))),
        fit.LossPerEvaluation.Count.ToString(CultureInfo.InvariantCulture),
        string.Join(", ", fit.Weights.Select(v => v.ToString("G4", CultureInfo.InvariantCulture))));
}
console.WriteLine($"Logistic regression, {LogisticFit.Steps} LBFGS steps ({fitPng}):");
console.Write(fitTable);

Console.WriteLine($"done in {clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s");
return 0;

static void PrintTable(IAnsiConsole console, Surface surface, List<TourRun> runs, string png, bool interactive)
{
    var table = new Table()
        .Border(interactive ? TableBorder.Rounded : TableBorder.Markdown)
        .Title($"{surface.Name}: {surface.Formula}, from ({surface.Start.X}, {surface.Start.Y}), {surface.Steps} steps")
        .AddColumn("optimizer")
        .AddColumn("settings")
        .AddColumn(new TableColumn($"steps to f < {Tour.Tolerances[0]:0e+0}").RightAligned())
        .AddColumn(new TableColumn($"steps to f < {Tour.Tolerances[1]:0e+0}").RightAligned())
        .AddColumn(new TableColumn("final f").RightAligned())
        .AddColumn(new TableColumn("final (x, y)").RightAligned());
    foreach (var run in runs)
    {
        var (x, y) = run.Path[^1];
        table.AddRow(
            Markup.Escape(run.Contender.Name),
            Markup.Escape(run.Contender.Settings(surface)),
            run.StepsTo(Tour.Tolerances[0])?.ToString(CultureInfo.InvariantCulture) ?? "—",
            run.StepsTo(Tour.Tolerances[1])?.ToString(CultureInfo.InvariantCulture) ?? "—",
            run.FinalLoss.ToString("0.00e+00", CultureInfo.InvariantCulture),
            $"({x.ToString("0.000", CultureInfo.InvariantCulture)}, {y.ToString("0.000", CultureInfo.InvariantCulture)})");
    }
    console.Write(table);
    Console.WriteLine($"picture: {png}");
    Console.WriteLine();
}
