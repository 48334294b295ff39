// Trains the main job's model (samples/TrainClassifier) on the UCI digits with every algorithm of Optim's
// AlgorithmCatalog, each with the settings of one table (Comparison.cs), and draws validation accuracy against steps in
// one picture (docs/compare-optimizers.png).
//
//   dotnet run --project samples/CompareOptimizers -c Release                writes docs/compare-optimizers.png
//   dotnet run --project samples/CompareOptimizers -c Release -- --out FILE  writes the picture to FILE
using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using CompareOptimizers;
using Samples;
using Spectre.Console;
using TorchSharp;
using TrainClassifier;

string? outPath = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out" when i + 1 < args.Length: outPath = args[++i]; break;
        case "-h" or "--help":
            Console.WriteLine("usage: CompareOptimizers [--out FILE]   (default: the repository's docs/compare-optimizers.png)");
            return 0;
        default:
            Console.Error.WriteLine($"error: unknown argument '{args[i]}' (try --help)");
            return 2;
    }
}
outPath ??= Path.Combine(SampleFolders.Docs, "compare-optimizers.png");
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
if (ChartFont.Warning is { } warning) Console.Error.WriteLine(warning);

// A model this small gains nothing from libtorch's intra-op threads.
torch.set_num_threads(1);
var clock = Stopwatch.StartNew();
var options = new ComparisonOptions();
using var data = DigitsData.Load(options.Seed, options.TrainSamples, options.ValidationSamples);
var contenders = Contender.ForCatalog();
var runs = contenders.Where(c => c.NotApplicable is null).Select(c => Comparison.Run(c, options, data)).ToList();
Chart.Render(runs, contenders.Where(c => c.NotApplicable is not null), options, outPath);

var (console, interactive) = SampleConsole.ForTables();
var table = new Table()
    .Border(interactive ? TableBorder.Rounded : TableBorder.Markdown)
    .Title($"UCI digits: {options.TrainSamples} training / {options.ValidationSamples} validation images, {options.Steps} steps")
    .AddColumn("optimizer")
    .AddColumn("settings")
    .AddColumn(new TableColumn("final validation accuracy").RightAligned())
    .AddColumn(new TableColumn("best").RightAligned())
    .AddColumn(new TableColumn("final training loss").RightAligned())
    .AddColumn(new TableColumn("gradient samples").RightAligned())
    .AddColumn(new TableColumn("time").RightAligned());
foreach (var contender in contenders)
{
    if (runs.SingleOrDefault(r => r.Contender == contender) is not { } run)
    {
        table.AddRow(Markup.Escape(contender.Name), Markup.Escape(contender.Settings), "-", "-", "-", "-", "-");
        continue;
    }
    table.AddRow(
        Markup.Escape(run.Contender.Name),
        Markup.Escape(run.Contender.Settings),
        run.FinalAccuracy.ToString("P1", CultureInfo.InvariantCulture),
        run.BestAccuracy.ToString("P1", CultureInfo.InvariantCulture),
        run.FinalTrainLoss.ToString("0.00e+0", CultureInfo.InvariantCulture),
        run.GradientSamples.ToString("N0", CultureInfo.InvariantCulture),
        run.Elapsed.TotalSeconds.ToString("0.00 s", CultureInfo.InvariantCulture));
}
console.Write(table);
foreach (var contender in contenders.Where(c => c.NotApplicable is not null))
    Console.WriteLine($"not run: {contender.Name}: {contender.NotApplicable}");
Console.WriteLine($"picture: {outPath}");
Console.WriteLine($"done in {clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s");
return 0;
