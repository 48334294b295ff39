// The training loop of the sample, with checkpoints that resume bit for bit. It has no console code: Program.cs
// shows progress through ITrainingObserver, and tests/Optim.Tests links this file (and SyntheticData.cs) to run the
// same interrupted-and-resumed check on a smaller configuration.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Optim;
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
    public int Features { get; init; } = 16;
    public int Classes { get; init; } = 5;
    /// <summary>Scale of the teacher's logits: lower means noisier labels (more class overlap).</summary>
    public double TeacherSharpness { get; init; } = 8.0;
    public int TrainSamples { get; init; } = 8192;
    public int ValidationSamples { get; init; } = 1024;
    public int Hidden { get; init; } = 64;
    public int Epochs { get; init; } = 15;
    public int BatchSize { get; init; } = 128;
    public double MaxLr { get; init; } = 0.01;
    public double WeightDecay { get; init; } = 0.01;
    public double MaxGradNorm { get; init; } = 1.0;
    public int CheckpointEvery { get; init; } = 200;
    public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Batches per epoch (the last one may be smaller).</summary>
    [JsonIgnore]
    public int StepsPerEpoch => (TrainSamples + BatchSize - 1) / BatchSize;

    [JsonIgnore]
    public int TotalSteps => StepsPerEpoch * Epochs;

    public void Validate()
    {
        if (Features < 1 || Classes < 2 || Hidden < 1 || TrainSamples < 1 || ValidationSamples < 1 || Epochs < 1 || BatchSize < 1)
            throw new ArgumentException("sizes must be positive (and there must be at least two classes)");
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

/// <summary>The small JSON file of a checkpoint; the tensors live beside it.</summary>
internal sealed record CheckpointState
{
    public int FormatVersion { get; init; } = 2;
    public required TrainerOptions Options { get; init; }
    public required TrainingPosition Position { get; init; }
    /// <summary>The scheduler's state dict, in its own small JSON file beside this one.</summary>
    public required string Scheduler { get; init; }
    public required ShuffleState Shuffle { get; init; }
    /// <summary>The learning rate of the next step, checked bit for bit after resuming.</summary>
    public required double LearningRate { get; init; }
    public required string Model { get; init; }
    public required string Optimizer { get; init; }
}

/// <summary>The shuffle of epoch e is a pure function of (algorithm, seed, stream, e): nothing else to save.</summary>
internal sealed record ShuffleState(string Algorithm, long Seed, ulong Stream, int Epoch);

internal readonly record struct StepReport(long Step, int Epoch, double Loss, double EpochLoss, double EpochAccuracy, double LearningRate);

internal readonly record struct EpochReport(int Epoch, double TrainLoss, double TrainAccuracy, double ValidationAccuracy, double LearningRate);

/// <summary>What the sample shows while it trains.</summary>
internal interface ITrainingObserver
{
    void Started(TrainerOptions options, TrainingPosition start, double validationCeiling);
    void Stepped(StepReport report);
    void EpochEnded(EpochReport report);
    void CheckpointWritten(string directory, long step);
}

/// <summary>An observer that shows nothing.</summary>
internal sealed class SilentObserver : ITrainingObserver
{
    public static readonly SilentObserver Instance = new();
    public void Started(TrainerOptions options, TrainingPosition start, double validationCeiling) { }
    public void Stepped(StepReport report) { }
    public void EpochEnded(EpochReport report) { }
    public void CheckpointWritten(string directory, long step) { }
}

internal sealed class TrainingResult
{
    public required bool Completed { get; init; }
    public required long Steps { get; init; }
    public required double ValidationAccuracy { get; init; }
    public required double ValidationCeiling { get; init; }
    /// <summary>Every parameter and buffer of the model as raw bytes, by name.</summary>
    public required IReadOnlyDictionary<string, byte[]> Weights { get; init; }
    /// <summary>The learning rate of each step this run took, by step number (1-based).</summary>
    public required IReadOnlyDictionary<long, double> LearningRates { get; init; }
    public string? LastCheckpoint { get; init; }
}

/// <summary>
/// Trains an MLP with <see cref="AdamW"/>, Optim's <see cref="OneCycleLR"/> (stepped per batch) and gradient-norm
/// clipping; writes a checkpoint folder every <see cref="TrainerOptions.CheckpointEvery"/> steps and at the end.
/// </summary>
internal sealed class Trainer
{
    public const string ModelFile = "model.bin", OptimizerFile = "optimizer.ckpt", SchedulerFile = "scheduler.json", StateFile = "state.json";
    private const string CheckpointPrefix = "step-", TemporaryPrefix = ".tmp-";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

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
        RemoveTemporaryFolders(checkpointDirectory);

        using var data = SyntheticData.Generate(_options);
        using var model = BuildModel(_options);
        InitializeWeights(model, _options.Seed);
        using var optimizer = new AdamW(model.named_parameters(), lr: _options.MaxLr, weight_decay: _options.WeightDecay);
        var scheduler = CreateScheduler(optimizer);

        var position = new TrainingPosition();
        if (resume)
        {
            var latest = FindLatestCheckpoint(checkpointDirectory)
                ?? throw new InvalidOperationException($"no checkpoint to resume from in {checkpointDirectory}");
            var state = ReadState(latest);
            if (state.Options != _options)
                throw new InvalidOperationException($"{latest} was written with different options; start over without --resume");
            model.load(Path.Combine(latest, state.Model));
            // As in PyTorch: a fresh optimizer and scheduler, then both states. The optimizer's saved hyperparameters
            // (lr, betas, initial_lr) win; the scheduler's state dict restores its position and schedule.
            optimizer.Load(Path.Combine(latest, state.Optimizer));
            scheduler.LoadStateDict(SchedulerStateJson.Read(Path.Combine(latest, state.Scheduler)));
            var lr = CurrentLearningRate(optimizer);
            var scheduled = scheduler.get_last_lr()[0];
            if (BitConverter.DoubleToInt64Bits(lr) != BitConverter.DoubleToInt64Bits(state.LearningRate)
                || BitConverter.DoubleToInt64Bits(scheduled) != BitConverter.DoubleToInt64Bits(state.LearningRate))
                throw new InvalidOperationException(
                    $"after resuming, the optimizer's learning rate is {lr:R} and the scheduler's {scheduled:R}; the checkpoint says {state.LearningRate:R}");
            position = state.Position;
        }
        else
        {
            RemoveCheckpoints(checkpointDirectory);
        }

        observer.Started(_options, position, data.ValidationCeiling);
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
            var order = SyntheticData.Permutation(_options.Seed, epoch, _options.TrainSamples);

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

            lastValidation = Evaluate(model, data.ValidationX, data.ValidationY);
            observer.EpochEnded(new EpochReport(epoch, lossSum / seen, (double)correct / seen, lastValidation, CurrentLearningRate(optimizer)));

            // At the end of an epoch the checkpoint records the start of the next one.
            if (CheckpointDue()) Checkpoint(new TrainingPosition { Step = step, Epoch = epoch + 1 });
            if (step == stopAfterStep && step < _options.TotalSteps) return Result(completed: false);
        }

        if (double.IsNaN(lastValidation)) lastValidation = Evaluate(model, data.ValidationX, data.ValidationY);
        return Result(completed: true);

        bool CheckpointDue() => step % _options.CheckpointEvery == 0 || step == _options.TotalSteps;

        void Checkpoint(TrainingPosition here)
        {
            lastCheckpoint = WriteCheckpoint(checkpointDirectory, model, optimizer, scheduler, here);
            observer.CheckpointWritten(lastCheckpoint, step);
        }

        TrainingResult Result(bool completed) => new()
        {
            Completed = completed,
            Steps = step,
            ValidationAccuracy = lastValidation,
            ValidationCeiling = data.ValidationCeiling,
            Weights = Snapshot(model),
            LearningRates = learningRates,
            LastCheckpoint = lastCheckpoint,
        };
    }

    /// <summary>The newest complete checkpoint folder in <paramref name="directory"/>, or null.</summary>
    public static string? FindLatestCheckpoint(string directory)
    {
        if (!Directory.Exists(directory)) return null;
        return CheckpointFolders(directory).LastOrDefault().Path;
    }

    public static CheckpointState ReadState(string checkpoint) =>
        JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(Path.Combine(checkpoint, StateFile)), Json)
        ?? throw new InvalidDataException($"{checkpoint}: empty {StateFile}");

    private static Sequential BuildModel(TrainerOptions o) => nn.Sequential(
        ("fc1", nn.Linear(o.Features, o.Hidden)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(o.Hidden, o.Hidden)), ("relu2", nn.ReLU()),
        ("out", nn.Linear(o.Hidden, o.Classes)));

    /// <summary>PyTorch's default Linear initialization (uniform within ±1/sqrt(fan_in)), drawn from our own generator.</summary>
    private static void InitializeWeights(Sequential model, long seed)
    {
        using var noGrad = no_grad();
        var index = 0;
        foreach (var layer in model.modules().OfType<Linear>())
        {
            var bound = 1.0 / Math.Sqrt(layer.weight!.shape[1]);
            Fill(layer.weight, bound, index++);
            if (layer.bias is { } bias) Fill(bias, bound, index++);
        }

        void Fill(Parameter parameter, double bound, int stream)
        {
            var rng = SplitMix64.For(seed, 100, stream);
            var values = new float[parameter.numel()];
            for (var i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
            using var source = torch.tensor(values, parameter.shape);
            parameter.copy_(source);
        }
    }

    private OneCycleLR CreateScheduler(AdamW optimizer) =>
        new(optimizer, max_lr: _options.MaxLr, total_steps: _options.TotalSteps);

    private static double CurrentLearningRate(AdamW optimizer) => optimizer.ParamGroups[0].LearningRate;

    private static double Evaluate(Sequential model, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        var correct = model.call(x).argmax(1).eq(y).sum().item<long>();
        model.train();
        return (double)correct / y.shape[0];
    }

    private static Dictionary<string, byte[]> Snapshot(Sequential model)
    {
        var weights = new Dictionary<string, byte[]>();
        foreach (var (name, tensor) in model.state_dict())
            weights[name] = MemoryMarshal.AsBytes(tensor.contiguous().data<float>().ToArray().AsSpan()).ToArray();
        return weights;
    }

    /// <summary>
    /// Writes the checkpoint into a temporary folder, flushes every file to disk, then renames the folder to
    /// <c>step-NNNNNNN</c>: a reader sees a complete checkpoint or none. Older checkpoints beyond
    /// <see cref="TrainerOptions.KeepCheckpoints"/> are removed afterwards.
    /// </summary>
    private string WriteCheckpoint(string directory, Sequential model, AdamW optimizer, LRScheduler scheduler, TrainingPosition position)
    {
        var name = CheckpointPrefix + position.Step.ToString("D7", CultureInfo.InvariantCulture);
        var final = Path.Combine(directory, name);
        var temporary = Path.Combine(directory, TemporaryPrefix + name + "-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(temporary);
        try
        {
            model.save(Path.Combine(temporary, ModelFile));
            optimizer.Save(Path.Combine(temporary, OptimizerFile));
            SchedulerStateJson.Write(Path.Combine(temporary, SchedulerFile), scheduler.StateDict());
            var state = new CheckpointState
            {
                Options = _options,
                Position = position,
                Scheduler = SchedulerFile,
                Shuffle = new ShuffleState("SplitMix64 Fisher-Yates", _options.Seed, SyntheticData.ShuffleStream, position.Epoch),
                LearningRate = CurrentLearningRate(optimizer),
                Model = ModelFile,
                Optimizer = OptimizerFile,
            };
            File.WriteAllText(Path.Combine(temporary, StateFile), JsonSerializer.Serialize(state, Json));
            foreach (var file in Directory.EnumerateFiles(temporary)) FlushToDisk(file);

            if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
            Directory.Move(temporary, final);
        }
        catch
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
            throw;
        }

        foreach (var (path, _) in CheckpointFolders(directory).SkipLast(_options.KeepCheckpoints))
            Directory.Delete(path, recursive: true);
        return final;
    }

    private static void FlushToDisk(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        stream.Flush(flushToDisk: true);
    }

    private static List<(string Path, long Step)> CheckpointFolders(string directory) =>
        Directory.EnumerateDirectories(directory, CheckpointPrefix + "*")
            .Select(path => (Path: path, Name: System.IO.Path.GetFileName(path)))
            .Where(d => long.TryParse(d.Name.AsSpan(CheckpointPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out _)
                        && File.Exists(System.IO.Path.Combine(d.Path, StateFile)))
            .Select(d => (d.Path, Step: long.Parse(d.Name.AsSpan(CheckpointPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture)))
            .OrderBy(d => d.Step)
            .ToList();

    private static void RemoveCheckpoints(string directory)
    {
        foreach (var (path, _) in CheckpointFolders(directory)) Directory.Delete(path, recursive: true);
    }

    private static void RemoveTemporaryFolders(string directory)
    {
        foreach (var path in Directory.EnumerateDirectories(directory, TemporaryPrefix + "*")) Directory.Delete(path, recursive: true);
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

        var referenceOptimizer = File.ReadAllBytes(Path.Combine(reference.LastCheckpoint!, Trainer.OptimizerFile));
        var resumedOptimizer = File.ReadAllBytes(Path.Combine(resumed.LastCheckpoint!, Trainer.OptimizerFile));
        if (!referenceOptimizer.AsSpan().SequenceEqual(resumedOptimizer)) differences.Add("final optimizer checkpoints differ");

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

/// <summary>
/// A scheduler state dict as a small JSON file: <c>{"scheduler": "OneCycleLR", "entries": [{"key": ..., "type": ...,
/// "value": ...}]}</c>. Doubles are written as round-trip strings ("R", so infinities and every bit survive).
/// </summary>
internal static class SchedulerStateJson
{
    public static void Write(string path, SchedulerStateDict state)
    {
        using var stream = File.Create(path);
        using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        WriteState(writer, state);
    }

    public static SchedulerStateDict Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return ReadState(doc.RootElement);
    }

    private static void WriteState(Utf8JsonWriter writer, SchedulerStateDict state)
    {
        writer.WriteStartObject();
        writer.WriteString("scheduler", state.Scheduler);
        writer.WriteStartArray("entries");
        foreach (var (key, value) in state)
        {
            writer.WriteStartObject();
            writer.WriteString("key", key);
            switch (value)
            {
                case null: writer.WriteString("type", "none"); break;
                case double d: writer.WriteString("type", "double"); writer.WriteString("value", Format(d)); break;
                case long l: writer.WriteString("type", "long"); writer.WriteNumber("value", l); break;
                case bool b: writer.WriteString("type", "bool"); writer.WriteBoolean("value", b); break;
                case string s: writer.WriteString("type", "string"); writer.WriteString("value", s); break;
                case IReadOnlyList<double> ds:
                    writer.WriteString("type", "doubles");
                    writer.WriteStartArray("value");
                    foreach (var d in ds) writer.WriteStringValue(Format(d));
                    writer.WriteEndArray();
                    break;
                case IReadOnlyList<long> ls:
                    writer.WriteString("type", "longs");
                    writer.WriteStartArray("value");
                    foreach (var l in ls) writer.WriteNumberValue(l);
                    writer.WriteEndArray();
                    break;
                case IReadOnlyList<SchedulerStateDict> children:
                    writer.WriteString("type", "states");
                    writer.WriteStartArray("value");
                    foreach (var child in children) WriteState(writer, child);
                    writer.WriteEndArray();
                    break;
                default: throw new InvalidDataException($"cannot write {value.GetType().Name} '{key}'");
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static SchedulerStateDict ReadState(JsonElement element)
    {
        var entries = new List<KeyValuePair<string, object?>>();
        foreach (var entry in element.GetProperty("entries").EnumerateArray())
        {
            var key = entry.GetProperty("key").GetString() ?? throw new InvalidDataException("an entry has no key");
            var type = entry.GetProperty("type").GetString();
            object? value = type switch
            {
                "none" => null,
                "double" => Parse(entry.GetProperty("value")),
                "long" => entry.GetProperty("value").GetInt64(),
                "bool" => entry.GetProperty("value").GetBoolean(),
                "string" => entry.GetProperty("value").GetString(),
                "doubles" => entry.GetProperty("value").EnumerateArray().Select(Parse).ToArray(),
                "longs" => entry.GetProperty("value").EnumerateArray().Select(v => v.GetInt64()).ToArray(),
                "states" => entry.GetProperty("value").EnumerateArray().Select(ReadState).ToArray(),
                _ => throw new InvalidDataException($"unknown entry type '{type}' of '{key}'"),
            };
            entries.Add(new KeyValuePair<string, object?>(key, value));
        }

        return new SchedulerStateDict(element.GetProperty("scheduler").GetString() ?? "", entries);
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static double Parse(JsonElement value) => double.Parse(value.GetString() ?? "", NumberStyles.Float, CultureInfo.InvariantCulture);
}
