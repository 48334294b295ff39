using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Amp;
using Optim.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Formats;

/// <summary>
/// A whole training run in one file: the model's weights and buffers, the optimizer's state, the schedulers' states, the
/// gradient scaler's state, torch's CPU random number generator and a few values of your own (the step, the epoch, a
/// hash of the configuration). One call saves it atomically, one call restores it, and a run resumed from it continues
/// bit for bit as if it had never stopped.
/// </summary>
/// <remarks>
/// <para>
/// The file is Optim's checkpoint container (the optimizer checkpoint's format, kind <c>"training"</c>): magic number,
/// version, one SHA-256 over every byte. <see cref="Load(string, nn.Module, Optimizer, IEnumerable{LRScheduler}?, GradScaler?, bool)"/>
/// reads the whole file and verifies the checksum, then checks every part against what it is loaded into (the model's
/// names, shapes and dtypes; the optimizer's type, groups and state; each scheduler's class and entries; the scaler), and
/// only when all of it fits changes anything. A truncated, damaged or foreign file is an <see cref="InvalidDataException"/>,
/// a file that does not fit an <see cref="ArgumentException"/>; either way the model, optimizer, schedulers, scaler and
/// random number generator are exactly as they were.
/// </para>
/// <para>Layout, after the container's header:</para>
/// <code>
/// section "module":     every entry of the model's state_dict() (parameters and buffers), by name, in order: the raw
///                       tensor (any dtype, bit for bit)
/// the optimizer's sections, as an optimizer checkpoint has them ("optimizer", "param_group"..., "state"..., "global")
/// section "schedulers": one map per scheduler, named "0", "1", ...: the scheduler's class and its state dict's
///                       entries (nested state dicts as lists of maps)
/// section "scaler":     only when a scaler was saved: enabled (bool), then, when enabled, scale, growth_factor,
///                       backoff_factor (double), growth_interval, _growth_tracker (int)
/// section "rng":        only when the RNG state was saved: cpu (tensor, torch.get_rng_state())
/// section "extra":      your values: long, int, double, bool or string
/// </code>
/// <para>
/// What is not in it: the CUDA generators' states (TorchSharp 0.107 cannot read them; seed them yourself, e.g. from a
/// saved value), the state of <see cref="Random"/> or any generator of your own (save its seed and position as extra
/// values), and functions (a <see cref="LambdaLR"/>'s lambdas stay with the scheduler, as in PyTorch).
/// </para>
/// </remarks>
public static class TrainingCheckpoint
{
    /// <summary>The container kind of training checkpoints.</summary>
    internal const string Kind = "training";

    private const string ModuleSection = "module", SchedulersSection = "schedulers", ScalerSection = "scaler", RngSection = "rng",
        ExtraSection = "extra";

    /// <summary>
    /// Saves a training checkpoint to <paramref name="path"/> atomically: written to a temporary file beside it, flushed
    /// to disk and renamed over it, so a crash mid-save leaves the previous checkpoint intact.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="model">The model: its <c>state_dict()</c> (parameters and buffers) is saved.</param>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="schedulers">
    /// The learning-rate schedulers, in an order <c>Load</c> will get them in; a <see cref="SequentialLR"/> or
    /// <see cref="ChainedScheduler"/> carries its children, so pass it alone, not them.
    /// </param>
    /// <param name="scaler">The gradient scaler, if the run uses one.</param>
    /// <param name="extra">Values of your own (long, int, double, bool or string), returned by <c>Load</c>.</param>
    /// <param name="rngState">Whether to save torch's CPU random number generator (restored by <c>Load</c>).</param>
    /// <exception cref="ArgumentException">An extra value of another type, or a key that is empty.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer, the scaler or a tensor of the model was disposed.</exception>
    public static void Save(string path, nn.Module model, Optimizer optimizer, IEnumerable<LRScheduler>? schedulers = null,
        GradScaler? scaler = null, IReadOnlyDictionary<string, object>? extra = null, bool rngState = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var content = Collect(model, optimizer, schedulers, scaler, extra, rngState);
        try
        {
            AtomicFile.Write(path, stream => Write(stream, content));
        }
        finally
        {
            content.Rng?.Dispose();
        }
    }

    /// <summary>Writes a training checkpoint to <paramref name="stream"/> (left open).</summary>
    /// <param name="stream">A writable stream.</param>
    /// <inheritdoc cref="Save(string, nn.Module, Optimizer, IEnumerable{LRScheduler}?, GradScaler?, IReadOnlyDictionary{string, object}?, bool)"/>
    public static void Save(Stream stream, nn.Module model, Optimizer optimizer, IEnumerable<LRScheduler>? schedulers = null,
        GradScaler? scaler = null, IReadOnlyDictionary<string, object>? extra = null, bool rngState = true)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var content = Collect(model, optimizer, schedulers, scaler, extra, rngState);
        try
        {
            Write(stream, content);
        }
        finally
        {
            content.Rng?.Dispose();
        }
    }

    /// <summary>
    /// Restores a training checkpoint written by <c>Save</c> into <paramref name="model"/>, <paramref name="optimizer"/>,
    /// <paramref name="schedulers"/> and <paramref name="scaler"/> (created as for a fresh run), and torch's CPU random
    /// number generator. The whole file is read and verified, and every part checked against its target, before anything
    /// changes: a failed load changes nothing.
    /// </summary>
    /// <param name="path">The checkpoint file. Bytes after the checkpoint are an error.</param>
    /// <param name="model">A model with the same parameter and buffer names, shapes and dtypes (on any device).</param>
    /// <param name="optimizer">An optimizer of the same type and layout.</param>
    /// <param name="schedulers">Schedulers of the same classes, in the order they were saved (as many as were saved).</param>
    /// <param name="scaler">The scaler, when one was saved (and only then).</param>
    /// <param name="rngState">Whether to restore torch's CPU random number generator when the file has its state.</param>
    /// <returns>The extra values, by key, in the order they were saved.</returns>
    /// <exception cref="InvalidDataException">Not a training checkpoint, a newer version, truncated or damaged.</exception>
    /// <exception cref="ArgumentException">The checkpoint does not fit the model, optimizer, schedulers or scaler.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer or the scaler was disposed.</exception>
    public static IReadOnlyDictionary<string, object> Load(string path, nn.Module model, Optimizer optimizer,
        IEnumerable<LRScheduler>? schedulers = null, GradScaler? scaler = null, bool rngState = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        CheckTargets(model, optimizer);
        var targets = schedulers?.ToList() ?? [];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        return Read(stream, model, optimizer, targets, scaler, rngState, apply: true,
            afterChecksum: () =>
            {
                if (FileLoads.TrailingBytes(stream, path) is { } error) throw error;
            });
    }

    /// <summary>Restores a training checkpoint from <paramref name="stream"/> (left just after it).</summary>
    /// <param name="stream">A readable stream positioned at the checkpoint.</param>
    /// <inheritdoc cref="Load(string, nn.Module, Optimizer, IEnumerable{LRScheduler}?, GradScaler?, bool)"/>
    public static IReadOnlyDictionary<string, object> Load(Stream stream, nn.Module model, Optimizer optimizer,
        IEnumerable<LRScheduler>? schedulers = null, GradScaler? scaler = null, bool rngState = true)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CheckTargets(model, optimizer);
        return Read(stream, model, optimizer, schedulers?.ToList() ?? [], scaler, rngState, apply: true, afterChecksum: null);
    }

    /// <summary>
    /// The extra values of a training checkpoint, without loading anything: the whole file is read and its checksum
    /// verified. Use it to look at a checkpoint (its step, the configuration it was written with) before resuming.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <returns>The extra values, by key, in the order they were saved.</returns>
    /// <exception cref="InvalidDataException">Not a training checkpoint, a newer version, truncated or damaged.</exception>
    public static IReadOnlyDictionary<string, object> ReadExtra(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        return Read(stream, null, null, [], null, rngState: false, apply: false,
            afterChecksum: () =>
            {
                if (FileLoads.TrailingBytes(stream, path) is { } error) throw error;
            });
    }

    // ---- saving ----

    private sealed record Content(
        List<KeyValuePair<string, Tensor>> Module, OptimizerStateDict Optimizer, List<CheckpointMap> Schedulers,
        GradScaler? Scaler, GradScalerState? ScalerState, Tensor? Rng, List<KeyValuePair<string, object>> Extra);

    // Everything is gathered and checked before the first byte is written.
    private static Content Collect(nn.Module model, Optimizer optimizer, IEnumerable<LRScheduler>? schedulers, GradScaler? scaler,
        IReadOnlyDictionary<string, object>? extra, bool rngState)
    {
        CheckTargets(model, optimizer);
        var module = model.state_dict().ToList();
        foreach (var (name, tensor) in module)
        {
            if (tensor is null || tensor.IsInvalid) throw new ObjectDisposedException(nameof(model), $"the model's '{name}' has been disposed.");
            if (tensor.is_sparse) throw new ArgumentException($"the model's '{name}' is sparse; a training checkpoint holds dense tensors.", nameof(model));
        }
        var optimizerState = optimizer.StateDict();
        OptimizerCheckpoint.CheckWritable(optimizerState);
        var schedulerMaps = new List<CheckpointMap>();
        foreach (var scheduler in schedulers ?? [])
        {
            ArgumentNullException.ThrowIfNull(scheduler, nameof(schedulers));
            schedulerMaps.Add(ToMap(scheduler.StateDict()));
        }
        var scalerState = scaler?.StateDict();
        var values = new List<KeyValuePair<string, object>>();
        foreach (var (key, value) in extra ?? new Dictionary<string, object>())
        {
            if (string.IsNullOrEmpty(key)) throw new ArgumentException("an extra value's key cannot be empty.", nameof(extra));
            if (value is not (long or int or double or bool or string))
                throw new ArgumentException($"extra value '{key}' is a {value?.GetType().Name ?? "null"}; a training checkpoint holds long, int, double, bool and string values.", nameof(extra));
            values.Add(new(key, value));
        }
        return new Content(module, optimizerState, schedulerMaps, scaler, scalerState, rngState ? torch.get_rng_state() : null, values);
    }

    private static void Write(Stream stream, Content content)
    {
        using var w = new CheckpointWriter(stream, Kind);
        w.BeginSection(ModuleSection);
        foreach (var (name, tensor) in content.Module) w.Write(name, tensor);
        OptimizerCheckpoint.WriteSections(w, content.Optimizer);
        w.BeginSection(SchedulersSection);
        for (var i = 0; i < content.Schedulers.Count; i++) w.Write(Index(i), content.Schedulers[i]);
        if (content.Scaler is not null)
        {
            w.BeginSection(ScalerSection);
            w.Write("enabled", content.ScalerState is not null);
            if (content.ScalerState is { } s)
            {
                w.Write("scale", s.Scale);
                w.Write("growth_factor", s.GrowthFactor);
                w.Write("backoff_factor", s.BackoffFactor);
                w.Write("growth_interval", s.GrowthInterval);
                w.Write("_growth_tracker", s.GrowthTracker);
            }
        }
        if (content.Rng is not null)
        {
            w.BeginSection(RngSection);
            w.Write("cpu", content.Rng);
        }
        w.BeginSection(ExtraSection);
        foreach (var (key, value) in content.Extra) w.Write(key, value);
        w.Finish();
    }

    private static CheckpointMap ToMap(SchedulerStateDict state) => new(state.Scheduler, state.Select(e =>
        new KeyValuePair<string, object?>(e.Key, e.Value is IReadOnlyList<SchedulerStateDict> children ? children.Select(ToMap).ToArray() : e.Value)).ToList());

    // ---- loading ----

    private static IReadOnlyDictionary<string, object> Read(Stream stream, nn.Module? model, Optimizer? optimizer, List<LRScheduler> schedulers,
        GradScaler? scaler, bool rngState, bool apply, Action? afterChecksum)
    {
        using var reader = CheckpointReader.Open(stream);
        if (reader.Version < 2 || reader.Kind != Kind)
            throw new InvalidDataException($"the checkpoint holds {(reader.Kind is null ? "an optimizer's state (format 1)" : $"a '{reader.Kind}'")}, not a training run.");

        var parsed = Parse(reader);
        reader.Finish();
        afterChecksum?.Invoke();
        if (!apply) return parsed.Extra;

        // Everything is verified: now check each part against its target and stage it. Nothing has changed yet.
        StageAndCommit(model!, parsed.Module, optimizer!, () => parsed.Optimizer.Build(optimizer!.OptionSchema), () =>
        {
            var commits = new List<Action>();
            if (parsed.Schedulers.Count != schedulers.Count)
                throw new ArgumentException($"the checkpoint has {parsed.Schedulers.Count} scheduler(s), {schedulers.Count} were given.", nameof(schedulers));
            for (var i = 0; i < schedulers.Count; i++)
            {
                ArgumentNullException.ThrowIfNull(schedulers[i], nameof(schedulers));
                try
                {
                    commits.Add(schedulers[i].PrepareLoad(parsed.Schedulers[i]));
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"scheduler {i} ({schedulers[i].GetType().Name}): {e.Message}", nameof(schedulers), e);
                }
            }
            commits.Add(StageScaler(scaler, parsed));
            if (rngState && parsed.Rng is not null) commits.Add(StageRng(parsed.Rng));
            return commits;
        });
        return parsed.Extra;
    }

    /// <summary>
    /// What every training-checkpoint reader does once the file is parsed: stages the model's state, the optimizer's
    /// state dict (<paramref name="buildStateDict"/>, whose tensors the load takes over) and the other parts
    /// (<paramref name="stageOthers"/>, each returning its commit), commits them all only when every part fits, then runs
    /// the optimizer's load post-hooks. A part that does not fit throws with nothing changed.
    /// </summary>
    internal static void StageAndCommit(nn.Module model, List<KeyValuePair<string, Tensor>> moduleState, Optimizer optimizer,
        Func<OptimizerStateDict> buildStateDict, Func<List<Action>> stageOthers)
    {
        var moved = new List<Tensor>();
        StagedLoad? optimizerLoad = null;
        var committed = false;
        try
        {
            var moduleCommit = StageModule(model, moduleState, moved);
            optimizerLoad = optimizer.PrepareLoad(buildStateDict() with { TensorsAreStaged = true });
            var commits = stageOthers();

            // Commit: nothing below can fail.
            moduleCommit();
            optimizerLoad.Commit();
            committed = true;
            foreach (var commit in commits) commit();
        }
        finally
        {
            if (!committed) optimizerLoad?.Abandon();
            foreach (var t in moved) t.Dispose();
        }
        optimizer.RunLoadStateDictPostHooks();
    }

    private sealed class Parsed
    {
        public List<KeyValuePair<string, Tensor>> Module { get; } = new();
        public OptimizerCheckpoint.SectionParser Optimizer { get; } = new();
        public List<SchedulerStateDict> Schedulers { get; } = new();
        public bool HasScaler { get; set; }
        public Dictionary<string, object> Scaler { get; } = new();
        public Tensor? Rng { get; set; }
        public Dictionary<string, object> Extra { get; } = new();
    }

    // The sections in their order; each appears once (the optimizer's as its own parser allows), "scaler" and "rng" may be
    // absent.
    private static Parsed Parse(CheckpointReader reader)
    {
        var parsed = new Parsed();
        string[] order = [ModuleSection, "optimizer", SchedulersSection, ScalerSection, RngSection, ExtraSection];
        var at = -1;
        string? section = null;
        while (true)
        {
            var kind = reader.Next(out var name, out var value);
            if (kind == CheckpointReader.RecordKind.End) break;
            if (kind == CheckpointReader.RecordKind.Section)
            {
                if (OptimizerCheckpoint.SectionParser.Owns(name) && name != "optimizer")
                {
                    // "param_group", "state" and "global" follow the "optimizer" section.
                    if (section is null || !OptimizerCheckpoint.SectionParser.Owns(section)) throw new InvalidDataException($"section '{name}' is out of place.");
                    parsed.Optimizer.BeginSection(name);
                    section = name;
                    continue;
                }
                if (section is not null && OptimizerCheckpoint.SectionParser.Owns(section)) parsed.Optimizer.End();
                var next = Array.IndexOf(order, name);
                if (next < 0) throw new InvalidDataException($"a training checkpoint has no section '{name}'.");
                // The model's, the optimizer's and the schedulers' sections are always there, in that order.
                if (next <= at || (next <= 2 && next != at + 1) || (next > 2 && at < 2)) throw new InvalidDataException($"section '{name}' is out of place.");
                at = next;
                section = name;
                if (name == "optimizer") parsed.Optimizer.BeginSection(name);
                if (name == ScalerSection) parsed.HasScaler = true;
                continue;
            }

            switch (section)
            {
                case ModuleSection:
                    if (value is not Tensor tensor) throw new InvalidDataException($"the model's '{name}' is not a tensor.");
                    if (parsed.Module.Exists(e => e.Key == name)) throw new InvalidDataException($"the model's '{name}' appears twice.");
                    parsed.Module.Add(new(name, tensor));
                    break;
                case SchedulersSection:
                    if (name != Index(parsed.Schedulers.Count) || value is not CheckpointMap map)
                        throw new InvalidDataException($"scheduler entry '{name}' is not scheduler {parsed.Schedulers.Count}'s state.");
                    parsed.Schedulers.Add(ToStateDict(map, $"scheduler {name}"));
                    break;
                case ScalerSection:
                    if (value is not (bool or double or int) || !parsed.Scaler.TryAdd(name, value))
                        throw new InvalidDataException($"the scaler's '{name}' is malformed or repeated.");
                    break;
                case RngSection:
                    if (name != "cpu" || value is not Tensor rng || parsed.Rng is not null)
                        throw new InvalidDataException($"the RNG section has an unexpected entry '{name}'.");
                    parsed.Rng = rng;
                    break;
                case ExtraSection:
                    if (value is not (long or int or double or bool or string)) throw new InvalidDataException($"extra value '{name}' has a type it cannot have.");
                    if (!parsed.Extra.TryAdd(name, value)) throw new InvalidDataException($"extra value '{name}' appears twice.");
                    break;
                case not null when OptimizerCheckpoint.SectionParser.Owns(section):
                    parsed.Optimizer.Entry(name, value);
                    break;
                default:
                    throw new InvalidDataException($"the checkpoint has an entry '{name}' outside any section.");
            }
        }
        if (at != order.Length - 1) throw new InvalidDataException("the training checkpoint is incomplete (it ends before its 'extra' section).");
        if (parsed.HasScaler) CheckScalerSection(parsed.Scaler);
        return parsed;
    }

    private static SchedulerStateDict ToStateDict(CheckpointMap map, string what)
    {
        var entries = map.Entries.Select(e => new KeyValuePair<string, object?>(e.Key, e.Value switch
        {
            null or double or long or bool or string or double[] or long[] => e.Value,
            CheckpointMap[] children => children.Select(c => ToStateDict(c, $"{what}.{e.Key}")).ToArray(),
            _ => throw new InvalidDataException($"{what}'s '{e.Key}' has a type a scheduler's state cannot have."),
        })).ToList();
        try
        {
            return new SchedulerStateDict(map.Name, entries);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{what} is malformed: {e.Message}", e);
        }
    }

    private static void CheckScalerSection(Dictionary<string, object> values)
    {
        if (values.GetValueOrDefault("enabled") is not bool enabled) throw new InvalidDataException("the scaler section does not say whether it is enabled.");
        var expected = enabled ? 6 : 1;
        if (values.Count != expected
            || (enabled && !(values.GetValueOrDefault("scale") is double && values.GetValueOrDefault("growth_factor") is double
                             && values.GetValueOrDefault("backoff_factor") is double && values.GetValueOrDefault("growth_interval") is int
                             && values.GetValueOrDefault("_growth_tracker") is int)))
            throw new InvalidDataException("the scaler section is malformed.");
    }

    internal static Action StageModule(nn.Module model, List<KeyValuePair<string, Tensor>> saved, List<Tensor> moved)
    {
        var targets = model.state_dict();
        var missing = targets.Keys.Where(k => !saved.Exists(e => e.Key == k)).ToList();
        var unexpected = saved.Select(e => e.Key).Where(k => !targets.ContainsKey(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            throw new ArgumentException(
                "the checkpoint's model does not match: " +
                string.Join("; ", new[]
                {
                    missing.Count > 0 ? $"missing from the checkpoint: {string.Join(", ", missing.Take(10))}" : null,
                    unexpected.Count > 0 ? $"not in the model: {string.Join(", ", unexpected.Take(10))}" : null,
                }.Where(s => s is not null)), nameof(model));
        }
        var pairs = new List<(Tensor Target, Tensor Source)>();
        foreach (var (name, source) in saved)
        {
            var target = targets[name];
            if (target is null || target.IsInvalid) throw new ObjectDisposedException(nameof(model), $"the model's '{name}' has been disposed.");
            if (!target.shape.SequenceEqual(source.shape) || target.dtype != source.dtype)
                throw new ArgumentException(
                    $"the model's '{name}' is {target.dtype} [{string.Join(", ", target.shape)}], the checkpoint's {source.dtype} [{string.Join(", ", source.shape)}].", nameof(model));
            pairs.Add((target, source));
        }
        // Tensors on another device are moved there now (this may fail, e.g. out of memory, before anything changed).
        var staged = new List<(Tensor Target, Tensor Source)>(pairs.Count);
        foreach (var (target, source) in pairs)
        {
            if (target.device_type == DeviceType.CPU)
            {
                staged.Add((target, source));
                continue;
            }
            var onDevice = source.to(target.device);
            moved.Add(onDevice);
            staged.Add((target, onDevice));
        }
        return () =>
        {
            using var noGrad = torch.no_grad();
            foreach (var (target, source) in staged) target.copy_(source);
        };
    }

    private static Action StageScaler(GradScaler? scaler, Parsed parsed)
    {
        if (scaler is null)
        {
            return parsed.HasScaler
                ? throw new ArgumentException("the checkpoint has a gradient scaler's state; pass the scaler to restore it.", nameof(scaler))
                : () => { };
        }
        if (!parsed.HasScaler) throw new ArgumentException("the checkpoint has no gradient scaler's state.", nameof(scaler));
        var values = parsed.Scaler;
        var state = (bool)values["enabled"]
            ? new GradScalerState((double)values["scale"], (double)values["growth_factor"], (double)values["backoff_factor"],
                (int)values["growth_interval"], (int)values["_growth_tracker"])
            : null;
        try
        {
            return scaler.PrepareLoad(state);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"the gradient scaler's state does not fit: {e.Message}", nameof(scaler), e);
        }
    }

    private static Action StageRng(Tensor saved)
    {
        using var current = torch.get_rng_state();
        if (saved.dtype != current.dtype || !saved.shape.SequenceEqual(current.shape))
            throw new ArgumentException($"the checkpoint's RNG state is {saved.dtype} [{string.Join(", ", saved.shape)}], this build's generator needs {current.dtype} [{string.Join(", ", current.shape)}].");
        return () => torch.set_rng_state(saved);
    }

    private static void CheckTargets(nn.Module model, Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        FileLoads.ThrowIfDisposed(optimizer);
    }

    private static string Index(int i) => i.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
