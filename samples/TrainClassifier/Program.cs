// Trains a small MLP classifier on the UCI handwritten digits (shipped in samples/data/digits) with Optim's AdamW,
// Optim.Schedulers' OneCycleLR and gradient-norm clipping; prints each epoch's metrics, draws the learning curves
// (docs/train-classifier.png), writes a training checkpoint (one file: model, optimizer, scheduler, RNG and the
// run's position) every N steps and resumes from it bit for bit.
//
//   dotnet run --project samples/TrainClassifier -c Release                     train (a few seconds)
//   dotnet run --project samples/TrainClassifier -c Release -- --stop-after 500 stop early, as if interrupted
//   dotnet run --project samples/TrainClassifier -c Release -- --resume         continue from the newest checkpoint
//   dotnet run --project samples/TrainClassifier -c Release -- --check          prove resume is exact (PASS/FAIL)
using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using Samples;
using Spectre.Console;
using TorchSharp;
using TrainClassifier;

var options = new TrainerOptions();
string? checkpointDirectory = null, plotPath = null;
bool resume = false, check = false, plain = false;
long? stopAfter = null;

try
{
    for (var i = 0; i < args.Length; i++)
    {
        switch (args[i])
        {
            case "--resume": resume = true; break;
            case "--check": check = true; break;
            case "--plain": plain = true; break;
            case "--checkpoint-dir": checkpointDirectory = Value(ref i); break;
            case "--plot": plotPath = Value(ref i); break;
            case "--checkpoint-every": options = options with { CheckpointEvery = Int(ref i) }; break;
            case "--epochs": options = options with { Epochs = Int(ref i) }; break;
            case "--seed": options = options with { Seed = long.Parse(Value(ref i), CultureInfo.InvariantCulture) }; break;
            case "--stop-after": stopAfter = long.Parse(Value(ref i), CultureInfo.InvariantCulture); break;
            case "-h" or "--help": PrintUsage(); return 0;
            default: throw new ArgumentException($"unknown argument '{args[i]}'");
        }
    }
    if (check && (resume || stopAfter.HasValue)) throw new ArgumentException("--check runs its own interruption; use it alone");
    options.Validate();
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    PrintUsage();
    return 2;
}

// samples/TrainClassifier/checkpoints (git ignores it) and docs/ when the sources are there, else beside the binaries.
checkpointDirectory ??= SampleFolders.FromSample("checkpoints");
plotPath ??= Path.Combine(SampleFolders.Docs, "train-classifier.png");
// A model this small gains nothing from libtorch's intra-op threads, and on a busy machine their spin-waits cost
// several times the work itself. (The thread count never changes the results of a run and its resumption, which
// use the same count.)
torch.set_num_threads(1);
var live = !plain && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive && AnsiConsole.Profile.Capabilities.Ansi;

if (check) return RunCheck(options);

var clock = Stopwatch.StartNew();
TrainingResult result;
try
{
    var trainer = new Trainer(options);
    if (live)
    {
        TrainingResult? finished = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                     new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(context =>
            {
                var task = context.AddTask("starting", maxValue: options.TotalSteps);
                finished = trainer.Run(checkpointDirectory, resume, stopAfter, new LiveObserver(task));
            });
        result = finished!;
    }
    else
    {
        result = trainer.Run(checkpointDirectory, resume, stopAfter, new PlainObserver());
    }
}
catch (Exception e) when (e is InvalidOperationException or InvalidDataException or FileNotFoundException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

var seconds = clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
if (result.Completed)
{
    Console.WriteLine($"finished {result.Steps} steps in {seconds} s: validation accuracy {result.ValidationAccuracy:P1} " +
                      $"({options.ValidationSamples} held-out digits)");
    if (ChartFont.Warning is { } warning) Console.Error.WriteLine(warning);
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(plotPath))!);
    Chart.Render(result.History, options, plotPath);
    Console.WriteLine($"learning curves: {PlainObserver.Shown(plotPath)}");
}
else
{
    Console.WriteLine($"stopped after step {result.Steps} in {seconds} s, as if interrupted; continue with --resume");
}
if (result.LastCheckpoint is not null) Console.WriteLine($"newest checkpoint: {PlainObserver.Shown(result.LastCheckpoint)}");
return 0;

static int RunCheck(TrainerOptions options)
{
    var work = Path.Combine(Path.GetTempPath(), "optim-train-classifier-check-" + Guid.NewGuid().ToString("N")[..8]);
    var clock = Stopwatch.StartNew();
    Console.WriteLine($"resume check: {options.TotalSteps} steps, a checkpoint every {options.CheckpointEvery}, in {work}");
    ResumeCheckResult result;
    try
    {
        result = ResumeCheck.Run(options, work, log: line => Console.WriteLine("  " + line));
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"error: {e.Message}; choose a smaller --checkpoint-every or more --epochs");
        return 2;
    }
    catch (InvalidOperationException e)
    {
        Console.WriteLine($"FAIL: {e.Message} (files kept in {work})");
        return 1;
    }
    var seconds = clock.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture);
    if (result.Passed)
    {
        Console.WriteLine($"PASS: interrupted after step {result.InterruptedAfter}, resumed from step {result.ResumedFrom}: " +
                          $"{result.ComparedTensors} tensors ({result.ComparedBytes} bytes) bit-identical to the uninterrupted run, " +
                          $"the same learning rate at all {result.ComparedLearningRates} resumed steps, identical optimizer state " +
                          $"(validation accuracy {result.ValidationAccuracy:P1}; {seconds} s)");
        Directory.Delete(work, recursive: true);
        return 0;
    }
    Console.WriteLine($"FAIL: resumed from step {result.ResumedFrom}, the runs differ ({seconds} s; files kept in {work}):");
    foreach (var difference in result.Differences.Take(20)) Console.WriteLine("  " + difference);
    return 1;
}

static void PrintUsage() => Console.WriteLine("""
    usage: TrainClassifier [options]
      --resume               continue from the newest checkpoint (else start over, removing old checkpoints)
      --check                run, interrupt and resume in-process; PASS if the resumed weights are bit-identical
      --checkpoint-dir DIR   where checkpoints go (default: samples/TrainClassifier/checkpoints)
      --checkpoint-every N   steps between checkpoints (default 100; one is also written at the end)
      --epochs N             length of the schedule (default 20)
      --seed N               data, initialization and shuffling seed (default 20261124)
      --stop-after N         stop after step N, as if the process were killed
      --plot FILE            where the learning curves go (default: docs/train-classifier.png)
      --plain                plain lines instead of a progress bar (automatic when output is not a terminal)
    """);

string Value(ref int i) => ++i < args.Length ? args[i] : throw new ArgumentException($"{args[i - 1]} needs a value");
int Int(ref int i) => int.Parse(Value(ref i), CultureInfo.InvariantCulture);

/// <summary>One line per epoch and checkpoint: for pipes, logs and CI.</summary>
internal sealed class PlainObserver : ITrainingObserver
{
    private int _epochs;

    public void Started(TrainerOptions options, TrainingPosition start)
    {
        _epochs = options.Epochs;
        Console.WriteLine(Header(options, start));
    }

    public void Stepped(StepReport report) { }

    public void EpochEnded(EpochReport r) => Console.WriteLine(
        $"epoch {r.Epoch + 1,2}/{_epochs}  loss {r.TrainLoss:0.0000}  train {r.TrainAccuracy:P1}  validation loss {r.ValidationLoss:0.0000}  accuracy {r.ValidationAccuracy:P1}  lr {r.LearningRate:0.00e+0}");

    public void CheckpointWritten(string directory, long step) => Console.WriteLine($"  checkpoint {Shown(directory)}");

    /// <summary>A path relative to the working directory when it is inside it.</summary>
    internal static string Shown(string path)
    {
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, path);
        return relative.StartsWith("..", StringComparison.Ordinal) ? path : relative;
    }

    internal static string Header(TrainerOptions o, TrainingPosition start) =>
        $"data:  UCI handwritten digits (8x8 images, 10 classes): {o.TrainSamples} training / {o.ValidationSamples} validation images\n" +
        $"train: MLP {DigitsData.Features}-{o.Hidden}-{o.Hidden}-{DigitsData.Classes}, AdamW + OneCycleLR(max_lr {o.MaxLr}) + clip_grad_norm_({o.MaxGradNorm}), " +
        $"{o.Epochs} epochs of {o.StepsPerEpoch} steps, a checkpoint every {o.CheckpointEvery}" +
        (start.Step > 0 ? $"\nresuming at step {start.Step} (epoch {start.Epoch + 1}, batch {start.NextBatch + 1})" : "");
}

/// <summary>A Spectre.Console progress bar with the running loss and accuracy; epoch summaries print above it.</summary>
internal sealed class LiveObserver(ProgressTask task) : ITrainingObserver
{
    private int _epochs;

    public void Started(TrainerOptions options, TrainingPosition start)
    {
        _epochs = options.Epochs;
        task.Value = start.Step;
        AnsiConsole.MarkupLine("[grey]" + Markup.Escape(PlainObserver.Header(options, start)) + "[/]");
    }

    public void Stepped(StepReport r)
    {
        task.Value = r.Step;
        task.Description = $"epoch {r.Epoch + 1,2}/{_epochs}  loss [yellow]{r.EpochLoss:0.000}[/]  acc [green]{r.EpochAccuracy,6:P1}[/]  lr {r.LearningRate:0.00e+0}";
    }

    public void EpochEnded(EpochReport r) => AnsiConsole.MarkupLine(
        $"epoch {r.Epoch + 1,2}/{_epochs}  loss [yellow]{r.TrainLoss:0.0000}[/]  train [green]{r.TrainAccuracy:P1}[/]  " +
        $"validation loss [yellow]{r.ValidationLoss:0.0000}[/]  accuracy [bold green]{r.ValidationAccuracy:P1}[/]  lr {r.LearningRate:0.00e+0}");

    public void CheckpointWritten(string directory, long step) =>
        AnsiConsole.MarkupLine($"[grey]  checkpoint {Markup.Escape(PlainObserver.Shown(directory))}[/]");
}
