// The training loop of the sample, with checkpoints that resume bit for bit. It has no console code: Program.cs
// shows progress through ITrainingObserver, and tests/Optim.Tests links this file (and Digits.cs) to run the same
// interrupted-and-resumed check on a smaller configuration.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Optim;
using Optim.Formats;
using Optim.Schedulers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using AdamW = Optim.AdamW;

namespace TrainClassifier;

/// <summary>Everything that determines a run. A checkpoint records it; resuming with different options is refused.</summary>
internal sealed record TrainerOptions
{
    public long Seed { get; init; } = 20261124;
    /// <summary>Images of the digits held out for validation (the first of the seed's shuffle) and used for training (the next).</summary>
    public int ValidationSamples { get; init; } = 360;
    public int TrainSamples { get; init; } = DigitsData.Count - 360;
    public int Hidden { get; init; } = 64;
    public int Epochs { get; init; } = 20;
    public int BatchSize { get; init; } = 64;
    public double MaxLr { get; init; } = 0.01;
    public double WeightDecay { get; init; } = 0.01;
    public double MaxGradNorm { get; init; } = 1.0;
    public int CheckpointEvery { get; init; } = 100;
    public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Batches per epoch (the last one may be smaller).</summary>
    [JsonIgnore]
    public int StepsPerEpoch => (TrainSamples + BatchSize - 1) / BatchSize;

    [JsonIgnore]
    public int TotalSteps => StepsPerEpoch * Epochs;

    public void Validate()
    {
        if (Hidden < 1 || TrainSamples < 1 || ValidationSamples < 1 || Epochs < 1 || BatchSize < 1)
            throw new ArgumentException("sizes must be positive");
        if (TrainSamples + ValidationSamples > DigitsData.Count)
            throw new ArgumentException($"the digits have {DigitsData.Count} images, fewer than {TrainSamples} training and {ValidationSamples} validation samples");
        if (CheckpointEvery < 1 || KeepCheckpoints < 1) throw new ArgumentException("checkpoint-every and keep must be positive");
    }
}

/// <summary>Where a run stands: enough to continue it exactly.</summary>
internal sealed record TrainingPosition
{
    /// <summary>Optimizer steps taken.</summary>
    public long Step { get; init; }
    /// <summary>The epoch in progress (0-based) and the next batch of it.</summary>
    public int Epoch { get; init; }
    public int NextBatch { get; init; }
    /// <summary>Running sums of the epoch in progress, so its summary is the same whether or not the run was interrupted.</summary>
    public double EpochLossSum { get; init; }
    public long EpochCorrect { get; init; }
    public long EpochSeen { get; init; }
}

/// <summary>
/// The sample's own part of a training checkpoint, stored as its extra values: the options it was written with (as JSON),
/// where the run stands, the shuffle, the learning rate of the next step and the finished epochs' metrics (so that the
/// learning curves of a resumed run are whole). The model, optimizer, scheduler and RNG are the checkpoint's other parts.
/// </summary>
internal sealed record CheckpointState
{
    public required TrainerOptions Options { get; init; }
    public required TrainingPosition Position { get; init; }
    public required ShuffleState Shuffle { get; init; }
    /// <summary>The learning rate of the next step, checked bit for bit after resuming.</summary>
    public required double LearningRate { get; init; }
    public required IReadOnlyList<EpochReport> History { get; init; }

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public Dictionary<string, object> ToExtra() => new()
    {
        ["options"] = JsonSerializer.Serialize(Options, Json),
        ["step"] = Position.Step,
        ["epoch"] = Position.Epoch,
        ["next_batch"] = Position.NextBatch,
        ["epoch_loss_sum"] = Position.EpochLossSum,
        ["epoch_correct"] = Position.EpochCorrect,
        ["epoch_seen"] = Position.EpochSeen,
        ["shuffle"] = JsonSerializer.Serialize(Shuffle, Json),
        ["learning_rate"] = LearningRate,
        ["history"] = JsonSerializer.Serialize(History, Json),
    };

    public static CheckpointState FromExtra(IReadOnlyDictionary<string, object> extra)
    {
        try
        {
            return new CheckpointState
            {
                Options = JsonSerializer.Deserialize<TrainerOptions>((string)extra["options"], Json) ?? throw new InvalidDataException("no options"),
                Position = new TrainingPosition
                {
                    Step = (long)extra["step"], Epoch = (int)extra["epoch"], NextBatch = (int)extra["next_batch"],
                    EpochLossSum = (double)extra["epoch_loss_sum"], EpochCorrect = (long)extra["epoch_correct"], EpochSeen = (long)extra["epoch_seen"],
                },
                Shuffle = JsonSerializer.Deserialize<ShuffleState>((string)extra["shuffle"], Json) ?? throw new InvalidDataException("no shuffle"),
                LearningRate = (double)extra["learning_rate"],
                History = JsonSerializer.Deserialize<EpochReport[]>((string)extra["history"], Json) ?? throw new InvalidDataException("no history"),
            };
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidCastException or JsonException)
        {
            throw new InvalidDataException($"the checkpoint's values are not this sample's: {e.Message}", e);
        }
    }
}

/// <summary>The shuffle of epoch e is a pure function of (algorithm, seed, stream, e): nothing else to save.</summary>
internal sealed record ShuffleState(string Algorithm, long Seed, ulong Stream, int Epoch);

internal readonly record struct StepReport(long Step, int Epoch, double Loss, double EpochLoss, double EpochAccuracy, double LearningRate);

/// <summary>The metrics of one epoch: the training loss and accuracy are the means over its batches, as they were trained.</summary>
internal readonly record struct EpochReport(int Epoch, long Step, double TrainLoss, double TrainAccuracy, double ValidationLoss, double ValidationAccuracy, double LearningRate);

/// <summary>What the sample shows while it trains.</summary>
internal interface ITrainingObserver
{
    void Started(TrainerOptions options, TrainingPosition start);
    void Stepped(StepReport report);
    void EpochEnded(EpochReport report);
    void CheckpointWritten(string directory, long step);
}

/// <summary>An observer that shows nothing.</summary>
internal sealed class SilentObserver : ITrainingObserver
{
    public static readonly SilentObserver Instance = new();
    public void Started(TrainerOptions options, TrainingPosition start) { }
    public void Stepped(StepReport report) { }
    public void EpochEnded(EpochReport report) { }
    public void CheckpointWritten(string directory, long step) { }
}

internal sealed class TrainingResult
{
    public required bool Completed { get; init; }
    public required long Steps { get; init; }
    public required double ValidationAccuracy { get; init; }
    /// <summary>Every finished epoch's metrics, those before a resumption included.</summary>
    public required IReadOnlyList<EpochReport> History { get; init; }
    /// <summary>Every parameter and buffer of the model as raw bytes, by name.</summary>
    public required IReadOnlyDictionary<string, byte[]> Weights { get; init; }
    /// <summary>The learning rate of each step this run took, by step number (1-based).</summary>
    public required IReadOnlyDictionary<long, double> LearningRates { get; init; }
    /// <summary>The optimizer's final state as an optimizer checkpoint's bytes (every state tensor and hyperparameter).</summary>
    public required byte[] OptimizerState { get; init; }
    public string? LastCheckpoint { get; init; }
}

/// <summary>
/// Trains an MLP with <see cref="AdamW"/>, Optim's <see cref="OneCycleLR"/> (stepped per batch) and gradient-norm
/// clipping; writes a training checkpoint (one file, <see cref="TrainingCheckpoint"/>) every
/// <see cref="TrainerOptions.CheckpointEvery"/> steps and at the end.
/// </summary>
internal sealed class Trainer
{
    private const string CheckpointPrefix = "step-", CheckpointSuffix = ".ckpt";

    private readonly TrainerOptions _options;

    public Trainer(TrainerOptions options)
    {
        options.Validate();
        _options = options;
    }

    /// <summary>
    /// Runs to the end of the schedule, or until <paramref name="stopAfterStep"/> steps (a simulated interruption:
    /// the process just stops, nothing is saved then). With <paramref name="resume"/> it continues from the newest
    /// checkpoint in <paramref name="checkpointDirectory"/>; without it, it starts over and removes the checkpoints
    /// of an earlier run there.
    /// </summary>
    public TrainingResult Run(string checkpointDirectory, bool resume, long? stopAfterStep = null, ITrainingObserver? observer = null)
    {
        observer ??= SilentObserver.Instance;
        Directory.CreateDirectory(checkpointDirectory);

        using var data = DigitsData.Load(_options.Seed, _options.TrainSamples, _options.ValidationSamples);
        var (model, optimizer, scheduler) = CreateRun(_options);
        using var ownedModel = model;
        using var ownedOptimizer = optimizer;

        var position = new TrainingPosition();
        var history = new List<EpochReport>();
        if (resume)
        {
            var latest = FindLatestCheckpoint(checkpointDirectory)
                ?? throw new InvalidOperationException($"no checkpoint to resume from in {checkpointDirectory}");
            // The options first (the checkpoint's extra values, read and verified without loading anything)...
            if (ReadState(latest).Options != _options)
                throw new InvalidOperationException($"{latest} was written with different options; start over without --resume");
            // ...then, as in PyTorch, a fresh model, optimizer and scheduler receive their states: one call, all or
            // nothing. The optimizer's saved hyperparameters (lr, betas, initial_lr) win; the scheduler's state dict
            // restores its position and schedule.
            var state = CheckpointState.FromExtra(TrainingCheckpoint.Load(latest, model, optimizer, [scheduler]));
            var lr = CurrentLearningRate(optimizer);
            var scheduled = scheduler.get_last_lr()[0];
            if (BitConverter.DoubleToInt64Bits(lr) != BitConverter.DoubleToInt64Bits(state.LearningRate)
                || BitConverter.DoubleToInt64Bits(scheduled) != BitConverter.DoubleToInt64Bits(state.LearningRate))
                throw new InvalidOperationException(
                    $"after resuming, the optimizer's learning rate is {lr:R} and the scheduler's {scheduled:R}; the checkpoint says {state.LearningRate:R}");
            position = state.Position;
            history.AddRange(state.History);
        }
        else
        {
            RemoveCheckpoints(checkpointDirectory);
        }

        observer.Started(_options, position);
        var learningRates = new Dictionary<long, double>();
        string? lastCheckpoint = null;
        var step = position.Step;
        var lastValidation = double.NaN;

        for (var epoch = position.Epoch; epoch < _options.Epochs; epoch++)
        {
            var resumingThisEpoch = epoch == position.Epoch;
            var lossSum = resumingThisEpoch ? position.EpochLossSum : 0;
            var correct = resumingThisEpoch ? position.EpochCorrect : 0;
            var seen = resumingThisEpoch ? position.EpochSeen : 0;
            var order = DigitsData.Permutation(_options.Seed, epoch, _options.TrainSamples);

            for (var batch = resumingThisEpoch ? position.NextBatch : 0; batch < _options.StepsPerEpoch; batch++)
            {
                var lr = CurrentLearningRate(optimizer);
                using (var scope = NewDisposeScope())
                {
                    var start = batch * _options.BatchSize;
                    var count = Math.Min(_options.BatchSize, _options.TrainSamples - start);
                    var index = torch.tensor(order.AsSpan(start, count).ToArray());
                    var x = data.TrainX.index_select(0, index);
                    var y = data.TrainY.index_select(0, index);

                    optimizer.zero_grad();
                    var logits = model.call(x);
                    var loss = nn.functional.cross_entropy(logits, y);
                    loss.backward();
                    nn.utils.clip_grad_norm_(model.parameters(), _options.MaxGradNorm);
                    optimizer.step();

                    var batchLoss = loss.item<float>();
                    lossSum += (double)batchLoss * count;
                    correct += logits.argmax(1).eq(y).sum().item<long>();
                    seen += count;
                    step++;
                    learningRates[step] = lr;
                    observer.Stepped(new StepReport(step, epoch, batchLoss, lossSum / seen, (double)correct / seen, lr));
                }

                // The scheduler sets the rate of the next step; after the last one there is none.
                if (step < _options.TotalSteps) scheduler.step();

                var endOfEpoch = batch + 1 == _options.StepsPerEpoch;
                if (!endOfEpoch && CheckpointDue())
                    Checkpoint(new TrainingPosition
                    {
                        Step = step, Epoch = epoch, NextBatch = batch + 1,
                        EpochLossSum = lossSum, EpochCorrect = correct, EpochSeen = seen,
                    });

                if (!endOfEpoch && step == stopAfterStep)
                    return Result(completed: false);
            }

            (lastValidation, var validationLoss) = DigitsModel.Evaluate(model, data.ValidationX, data.ValidationY);
            var report = new EpochReport(epoch, step, lossSum / seen, (double)correct / seen, validationLoss, lastValidation, CurrentLearningRate(optimizer));
            history.Add(report);
            observer.EpochEnded(report);

            // At the end of an epoch the checkpoint records the start of the next one.
            if (CheckpointDue()) Checkpoint(new TrainingPosition { Step = step, Epoch = epoch + 1 });
            if (step == stopAfterStep && step < _options.TotalSteps) return Result(completed: false);
        }

        if (double.IsNaN(lastValidation)) lastValidation = DigitsModel.Evaluate(model, data.ValidationX, data.ValidationY).Accuracy;
        return Result(completed: true);

        bool CheckpointDue() => step % _options.CheckpointEvery == 0 || step == _options.TotalSteps;

        void Checkpoint(TrainingPosition here)
        {
            lastCheckpoint = WriteCheckpoint(checkpointDirectory, model, optimizer, scheduler, here, history);
            observer.CheckpointWritten(lastCheckpoint, step);
        }

        TrainingResult Result(bool completed) => new()
        {
            Completed = completed,
            Steps = step,
            ValidationAccuracy = lastValidation,
            History = history.ToArray(),
            Weights = Snapshot(model),
            LearningRates = learningRates,
            OptimizerState = OptimizerBytes(optimizer),
            LastCheckpoint = lastCheckpoint,
        };
    }

    /// <summary>The newest checkpoint file in <paramref name="directory"/>, or null.</summary>
    public static string? FindLatestCheckpoint(string directory)
    {
        if (!Directory.Exists(directory)) return null;
        return CheckpointFiles(directory).LastOrDefault().Path;
    }

    /// <summary>The sample's values in a checkpoint (the whole file is read and its checksum verified; nothing is loaded).</summary>
    public static CheckpointState ReadState(string checkpoint) => CheckpointState.FromExtra(TrainingCheckpoint.ReadExtra(checkpoint));

    /// <summary>A model, optimizer and scheduler as a fresh run starts with them (the model initialized from the seed).</summary>
    internal static (Sequential Model, AdamW Optimizer, OneCycleLR Scheduler) CreateRun(TrainerOptions options)
    {
        var model = DigitsModel.Build(options.Hidden, options.Seed);
        var optimizer = new AdamW(model.named_parameters(), lr: options.MaxLr, weight_decay: options.WeightDecay);
        return (model, optimizer, new OneCycleLR(optimizer, max_lr: options.MaxLr, total_steps: options.TotalSteps));
    }

    private static double CurrentLearningRate(AdamW optimizer) => optimizer.ParamGroups[0].LearningRate;

    private static byte[] OptimizerBytes(AdamW optimizer)
    {
        using var stream = new MemoryStream();
        optimizer.Save(stream);
        return stream.ToArray();
    }

    private static Dictionary<string, byte[]> Snapshot(Sequential model)
    {
        var weights = new Dictionary<string, byte[]>();
        foreach (var (name, tensor) in model.state_dict())
            weights[name] = MemoryMarshal.AsBytes(tensor.contiguous().data<float>().ToArray().AsSpan()).ToArray();
        return weights;
    }

    /// <summary>
    /// Writes the training checkpoint <c>step-NNNNNNN.ckpt</c>: model, optimizer, scheduler, torch's RNG and the run's
    /// position in one file, written atomically (a reader sees the complete new file or the old one). Older checkpoints
    /// beyond <see cref="TrainerOptions.KeepCheckpoints"/> are removed afterwards.
    /// </summary>
    private string WriteCheckpoint(string directory, Sequential model, AdamW optimizer, LRScheduler scheduler, TrainingPosition position,
                                   IReadOnlyList<EpochReport> history)
    {
        var path = Path.Combine(directory, CheckpointPrefix + position.Step.ToString("D7", CultureInfo.InvariantCulture) + CheckpointSuffix);
        var state = new CheckpointState
        {
            Options = _options,
            Position = position,
            Shuffle = new ShuffleState("SplitMix64 Fisher-Yates", _options.Seed, DigitsData.ShuffleStream, position.Epoch),
            LearningRate = CurrentLearningRate(optimizer),
            History = history.ToArray(),
        };
        TrainingCheckpoint.Save(path, model, optimizer, [scheduler], extra: state.ToExtra());

        foreach (var (old, _) in CheckpointFiles(directory).SkipLast(_options.KeepCheckpoints)) File.Delete(old);
        return path;
    }

    private static List<(string Path, long Step)> CheckpointFiles(string directory) =>
        Directory.EnumerateFiles(directory, CheckpointPrefix + "*" + CheckpointSuffix)
            .Select(path => (Path: path, Digits: System.IO.Path.GetFileName(path)[CheckpointPrefix.Length..^CheckpointSuffix.Length]))
            .Where(f => long.TryParse(f.Digits, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            .Select(f => (f.Path, Step: long.Parse(f.Digits, NumberStyles.None, CultureInfo.InvariantCulture)))
            .OrderBy(f => f.Step)
            .ToList();

    private static void RemoveCheckpoints(string directory)
    {
        foreach (var (path, _) in CheckpointFiles(directory)) File.Delete(path);
    }
}

internal sealed record ResumeCheckResult(
    bool Passed, long TotalSteps, long InterruptedAfter, long ResumedFrom, int ComparedTensors, long ComparedBytes,
    int ComparedLearningRates, double ValidationAccuracy, IReadOnlyList<string> Differences);

/// <summary>
/// The proof that resuming is exact: one run goes through the whole schedule; a second, on the same options, stops
/// between two checkpoints (as if killed); a third, with a fresh model, optimizer and scheduler, resumes from the
/// second's newest checkpoint and finishes. The first and third must end with the same bits in every weight, the
/// same learning rate at every step the third took, and byte-identical final optimizer checkpoints.
/// </summary>
internal static class ResumeCheck
{
    public static ResumeCheckResult Run(TrainerOptions options, string workDirectory, long? interruptAfter = null, Action<string>? log = null)
    {
        log ??= _ => { };
        var stop = interruptAfter ?? DefaultInterruption(options);
        if (stop <= options.CheckpointEvery || stop >= options.TotalSteps)
            throw new ArgumentException($"the interruption (after step {stop}) must come after the first checkpoint (step {options.CheckpointEvery}) and before the end (step {options.TotalSteps})");

        var referenceDirectory = Path.Combine(workDirectory, "uninterrupted");
        var interruptedDirectory = Path.Combine(workDirectory, "interrupted");

        log($"1/3 uninterrupted run: {options.TotalSteps} steps");
        var reference = new Trainer(options).Run(referenceDirectory, resume: false);

        log($"2/3 same run, interrupted after step {stop}");
        var interrupted = new Trainer(options).Run(interruptedDirectory, resume: false, stopAfterStep: stop);
        if (interrupted.Completed) throw new InvalidOperationException("the interrupted run did not stop");
        var checkpoint = Trainer.FindLatestCheckpoint(interruptedDirectory)
            ?? throw new InvalidOperationException("the interrupted run left no checkpoint");
        var resumedFrom = Trainer.ReadState(checkpoint).Position.Step;

        log($"3/3 fresh model and optimizer, resumed from the checkpoint at step {resumedFrom}");
        var resumed = new Trainer(options).Run(interruptedDirectory, resume: true);

        var differences = new List<string>();
        long bytes = 0;
        foreach (var (name, expected) in reference.Weights)
        {
            if (!resumed.Weights.TryGetValue(name, out var actual)) differences.Add($"{name}: missing after resuming");
            else if (!expected.AsSpan().SequenceEqual(actual)) differences.Add($"{name}: {CountDifferentFloats(expected, actual)} values differ");
            bytes += expected.Length;
        }
        differences.AddRange(resumed.Weights.Keys.Except(reference.Weights.Keys).Select(name => $"{name}: only after resuming"));

        foreach (var (step, lr) in resumed.LearningRates)
            if (!reference.LearningRates.TryGetValue(step, out var expected) || BitConverter.DoubleToInt64Bits(expected) != BitConverter.DoubleToInt64Bits(lr))
                differences.Add($"learning rate at step {step}: {lr:R} after resuming, {expected:R} uninterrupted");

        if (!reference.OptimizerState.AsSpan().SequenceEqual(resumed.OptimizerState)) differences.Add("final optimizer states differ");

        if (!reference.History.SequenceEqual(resumed.History)) differences.Add("the epochs' metrics differ");

        if (BitConverter.DoubleToInt64Bits(reference.ValidationAccuracy) != BitConverter.DoubleToInt64Bits(resumed.ValidationAccuracy))
            differences.Add($"validation accuracy {resumed.ValidationAccuracy:R} after resuming, {reference.ValidationAccuracy:R} uninterrupted");

        return new ResumeCheckResult(differences.Count == 0, options.TotalSteps, stop, resumedFrom, reference.Weights.Count, bytes,
            resumed.LearningRates.Count, reference.ValidationAccuracy, differences);
    }

    /// <summary>About 55% through, between two checkpoints, so the resumed run redoes the steps the interruption lost.</summary>
    public static long DefaultInterruption(TrainerOptions options)
    {
        var stop = Math.Max(options.CheckpointEvery + 1, options.TotalSteps * 11L / 20);
        if (stop % options.CheckpointEvery == 0) stop++;
        return stop;
    }

    private static int CountDifferentFloats(byte[] expected, byte[] actual)
    {
        if (expected.Length != actual.Length) return Math.Max(expected.Length, actual.Length) / sizeof(float);
        var a = MemoryMarshal.Cast<byte, int>(expected);
        var b = MemoryMarshal.Cast<byte, int>(actual);
        var count = 0;
        for (var i = 0; i < a.Length; i++) if (a[i] != b[i]) count++;
        return count;
    }
}
