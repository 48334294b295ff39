using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Amp;
using Optim.Schedulers;
using static TorchSharp.torch;

namespace Optim.Formats.PyTorch;

/// <summary>
/// A training checkpoint in PyTorch's conventional shape, <c>torch.save({"model": model.state_dict(), "optimizer":
/// optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), ...})</c>: resume a run
/// trained in Python, or hand one back to Python.
/// </summary>
/// <remarks>
/// Loading reads the whole file (executing nothing; see <see cref="PyTorchCheckpointExtensions"/>), then checks every
/// part against its target (the model's names, shapes and dtypes; the optimizer's algorithm, groups and state; the
/// scheduler's entries; the scaler's values) and only when all of it fits changes anything: a damaged or hostile file
/// (<see cref="InvalidDataException"/>) or one that does not fit (<see cref="ArgumentException"/>) leaves the model,
/// optimizer, scheduler and scaler as they were. Other top-level entries that are numbers, strings, bools or None
/// (an epoch, a step) are returned; anything else there is ignored.
/// </remarks>
public static class PyTorchTrainingCheckpoint
{
    private const string ModelKey = "model", OptimizerKey = "optimizer", SchedulerKey = "scheduler", ScalerKey = "scaler";

    /// <summary>Restores a training checkpoint file written by PyTorch (or by <c>Save</c>); a failed load changes nothing.</summary>
    /// <param name="path">The file.</param>
    /// <param name="model">The model: its <c>state_dict()</c> names, shapes and dtypes must match the file's <c>"model"</c>.</param>
    /// <param name="optimizer">The optimizer, of the algorithm of the file's <c>"optimizer"</c>.</param>
    /// <param name="scheduler">The scheduler, when the file has a <c>"scheduler"</c> to restore (it may be left out).</param>
    /// <param name="scaler">The gradient scaler, when the file has a <c>"scaler"</c> to restore (it may be left out).</param>
    /// <returns>The file's other top-level entries that are plain values (long, double, bool, string or null), by key.</returns>
    /// <exception cref="InvalidDataException">Not a PyTorch checkpoint, damaged, or holding disallowed globals.</exception>
    /// <exception cref="ArgumentException">A part is missing or does not fit its target.</exception>
    public static IReadOnlyDictionary<string, object?> Load(string path, nn.Module model, Optimizer optimizer, LRScheduler? scheduler = null,
        GradScaler? scaler = null)
    {
        using var stream = File.OpenRead(path);
        return Load(stream, model, optimizer, scheduler, scaler);
    }

    /// <summary>Restores a training checkpoint from <paramref name="stream"/>; a failed load changes nothing.</summary>
    /// <param name="stream">A readable stream holding the whole file.</param>
    /// <inheritdoc cref="Load(string, nn.Module, Optimizer, LRScheduler?, GradScaler?)"/>
    public static IReadOnlyDictionary<string, object?> Load(Stream stream, nn.Module model, Optimizer optimizer, LRScheduler? scheduler = null,
        GradScaler? scaler = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        FileLoads.ThrowIfDisposed(optimizer);
        using var loaded = TorchArchive.Read(stream);
        if (loaded.Root is not PyDict root || root.Entries.Any(e => e.Key is not string))
            throw new ArgumentException("the checkpoint is not a dict of named parts.", nameof(stream));

        var made = new List<Tensor>();
        try
        {
            TrainingCheckpoint.StageAndCommit(model, ModuleState(Part(root, ModelKey)), optimizer,
                () => OptimizerLayout.FromPyTorch(Part(root, OptimizerKey), optimizer, made), () =>
                {
                    var commits = new List<Action>();
                    if (scheduler is not null)
                        commits.Add(scheduler.PrepareLoad(SchedulerLayout.FromPyTorch(Part(root, SchedulerKey), scheduler.StateDict(), SchedulerKey)));
                    if (scaler is not null) commits.Add(scaler.PrepareLoad(SchedulerLayout.ScalerFromPyTorch(Part(root, ScalerKey), ScalerKey)));
                    return commits;
                });
        }
        finally
        {
            foreach (var t in made) t.Dispose();
        }
        return root.Entries
            .Where(e => e.Key is string key && key is not (ModelKey or OptimizerKey or SchedulerKey or ScalerKey) && e.Value is null or long or double or bool or string)
            .ToDictionary(e => (string)e.Key, e => e.Value);
    }

    /// <summary>
    /// Writes a training checkpoint as PyTorch code saves one, atomically (a temporary file renamed over
    /// <paramref name="path"/>): <c>{"model": ..., "optimizer": ..., "scheduler": ..., "scaler": ..., **extra}</c>, loadable
    /// with <c>torch.load(path, weights_only=True)</c>.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="model">The model: its <c>state_dict()</c> (parameters and buffers) is saved as an OrderedDict.</param>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="scheduler">The scheduler, if any.</param>
    /// <param name="scaler">The gradient scaler, if any (a disabled one saves PyTorch's empty dict).</param>
    /// <param name="extra">More top-level entries: long, int, double, bool, string or null values.</param>
    /// <exception cref="ArgumentException">An extra entry's key is taken or its value is of another type.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer, or a tensor of its or the model's state, was disposed.</exception>
    public static void Save(string path, nn.Module model, Optimizer optimizer, LRScheduler? scheduler = null, GradScaler? scaler = null,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        var root = Collect(model, optimizer, scheduler, scaler, extra);
        AtomicFile.Write(path, s => TorchArchive.Write(s, root));
    }

    /// <summary>Writes a training checkpoint to <paramref name="stream"/>.</summary>
    /// <param name="stream">A writable stream.</param>
    /// <inheritdoc cref="Save(string, nn.Module, Optimizer, LRScheduler?, GradScaler?, IReadOnlyDictionary{string, object?}?)"/>
    public static void Save(Stream stream, nn.Module model, Optimizer optimizer, LRScheduler? scheduler = null, GradScaler? scaler = null,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        TorchArchive.Write(stream, Collect(model, optimizer, scheduler, scaler, extra));
    }

    private static PyDict Collect(nn.Module model, Optimizer optimizer, LRScheduler? scheduler, GradScaler? scaler,
        IReadOnlyDictionary<string, object?>? extra)
    {
        ArgumentNullException.ThrowIfNull(model);
        FileLoads.ThrowIfDisposed(optimizer);
        var root = new PyDict();
        var weights = new PyDict(PyDictKind.OrderedDict);
        foreach (var (name, tensor) in model.state_dict())
        {
            if (tensor is null || tensor.IsInvalid) throw new ObjectDisposedException(nameof(model), $"the model's '{name}' has been disposed.");
            weights.Set(name, tensor);
        }
        root.Set(ModelKey, weights);
        var stateDict = optimizer.StateDict();
        stateDict.ThrowIfDisposed();
        root.Set(OptimizerKey, OptimizerLayout.ToPyTorch(stateDict));
        if (scheduler is not null) root.Set(SchedulerKey, SchedulerLayout.ToPyTorch(scheduler.StateDict()));
        if (scaler is not null) root.Set(ScalerKey, SchedulerLayout.ScalerToPyTorch(scaler.StateDict()));
        foreach (var (key, value) in extra ?? new Dictionary<string, object?>())
        {
            if (root.ContainsKey(key)) throw new ArgumentException($"extra entry '{key}' would replace the checkpoint's own.", nameof(extra));
            root.Set(key, value switch
            {
                null or long or double or bool or string => value,
                int i => (long)i,
                _ => throw new ArgumentException($"extra entry '{key}' is a {value.GetType().Name}; long, int, double, bool, string or null values are saved.", nameof(extra)),
            });
        }
        return root;
    }

    private static object? Part(PyDict root, string key) =>
        root.TryGetValue(key, out var value) ? value : throw new ArgumentException($"the checkpoint has no '{key}'.", key);

    // Errors about the file's model name the Load argument it is checked against.
    private static readonly string ModelArgument = "model";

    private static List<KeyValuePair<string, Tensor>> ModuleState(object? value)
    {
        if (value is not PyDict dict) throw new ArgumentException($"the checkpoint's '{ModelKey}' is a {PyValues.TypeName(value)}, not a state_dict().", ModelArgument);
        return dict.Entries.Select(e => e.Key is string name && e.Value is Tensor t
            ? new KeyValuePair<string, Tensor>(name, t)
            : throw new ArgumentException($"the checkpoint's '{ModelKey}' has an entry that is not a named tensor.", ModelArgument)).ToList();
    }
}
