using System;
using System.Collections.Generic;
using System.IO;
using Optim.Amp;
using Optim.Formats;
using Optim.Formats.PyTorch;
using Optim.Schedulers;
using static TorchSharp.torch;

// Declared in namespace Optim, not Optim.Formats, so that optimizer.LoadPyTorch(path) needs no extra using directive.
namespace Optim;

/// <summary>
/// Moving training between PyTorch and this library: load the file <c>torch.save(optimizer.state_dict(), path)</c>
/// wrote into the optimizer of the same algorithm and continue, or write one that PyTorch's
/// <c>optimizer.load_state_dict(torch.load(path, weights_only=True))</c> continues from.
/// </summary>
/// <remarks>
/// <para>
/// The file is <c>torch.save</c>'s zip format (PyTorch 1.6 and later). Reading it executes nothing: its pickle may use
/// only the few globals a state dict needs, all on <c>torch.load(weights_only=True)</c>'s allowlist; anything else, a
/// damaged archive or a truncated pickle is an <see cref="InvalidDataException"/>. Files written here use pickle
/// protocol 2 and only those globals, so <c>torch.load(weights_only=True)</c> reads them.
/// </para>
/// <para>
/// Names are mapped both ways: <c>betas</c> (and Adafactor's <c>eps</c>) tuples, <c>foreach</c>/<c>fused</c> to and
/// from <see cref="Implementation"/>, <c>initial_lr</c>; PyTorch's <c>capturable</c> and <c>differentiable</c> flags
/// and <c>param_names</c> are accepted and not kept; steps stored as plain numbers (PyTorch before 2.0) become 0-dim
/// float32 tensors, as PyTorch 2.x makes them. The load then goes through <see cref="Optimizer.LoadStateDict"/>: the
/// optimizer's type, groups and every state tensor are checked before anything changes.
/// </para>
/// </remarks>
public static class PyTorchCheckpointExtensions
{
    /// <summary>
    /// Loads PyTorch's <c>optimizer.state_dict()</c> saved with <c>torch.save</c> into this optimizer (of the same
    /// algorithm and parameter layout). A failed load changes nothing.
    /// </summary>
    /// <param name="optimizer">The optimizer, created over the same parameters in the same order as in PyTorch.</param>
    /// <param name="stream">A readable stream holding the whole file.</param>
    /// <exception cref="InvalidDataException">Not a PyTorch checkpoint, damaged, truncated, or holding disallowed globals.</exception>
    /// <exception cref="ArgumentException">A state dict of another algorithm, layout or shape, or with values this optimizer rejects.</exception>
    public static void LoadPyTorch(this Optimizer optimizer, Stream stream)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        LoadRoot(stream, root => Load(optimizer, root));
    }

    /// <summary>Loads the file <c>torch.save(optimizer.state_dict(), path)</c> wrote; a failed load changes nothing.</summary>
    /// <param name="optimizer">The optimizer, created over the same parameters in the same order as in PyTorch.</param>
    /// <param name="path">The file.</param>
    /// <inheritdoc cref="LoadPyTorch(Optimizer, Stream)" path="/exception"/>
    public static void LoadPyTorch(this Optimizer optimizer, string path)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        LoadFile(path, optimizer.LoadPyTorch);
    }

    /// <summary>
    /// Writes the optimizer's <see cref="Optimizer.StateDict"/> as PyTorch's <c>optimizer.state_dict()</c> in
    /// <c>torch.save</c>'s format, for PyTorch's optimizer of the same algorithm to load and continue.
    /// </summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="stream">A writable stream.</param>
    /// <exception cref="ObjectDisposedException">The optimizer, or a tensor of its state, was disposed.</exception>
    /// <exception cref="NotSupportedException">The file would exceed 4 GiB.</exception>
    public static void SavePyTorch(this Optimizer optimizer, Stream stream)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        ArgumentNullException.ThrowIfNull(stream);
        var stateDict = optimizer.StateDict();
        stateDict.ThrowIfDisposed();
        TorchArchive.Write(stream, OptimizerLayout.ToPyTorch(stateDict));
    }

    /// <summary>Writes the optimizer's state to a PyTorch checkpoint file, atomically (a temporary file renamed over <paramref name="path"/>).</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="path">The file.</param>
    /// <inheritdoc cref="SavePyTorch(Optimizer, Stream)" path="/exception"/>
    public static void SavePyTorch(this Optimizer optimizer, string path)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        AtomicFile.Write(path, optimizer.SavePyTorch);
    }

    /// <summary>
    /// Loads the file <c>torch.save(scheduler.state_dict(), path)</c> wrote into this scheduler (of the same class,
    /// created as in PyTorch). PyTorch's bookkeeping entries (<c>verbose</c>, <c>_get_lr_called_within_step</c>,
    /// <c>lr_lambdas</c>) are not kept; entries PyTorch keeps elsewhere keep this scheduler's values. A failed load
    /// changes nothing.
    /// </summary>
    /// <param name="scheduler">The scheduler.</param>
    /// <param name="stream">A readable stream holding the whole file.</param>
    /// <exception cref="InvalidDataException">Not a PyTorch checkpoint, damaged, truncated, or holding disallowed globals.</exception>
    /// <exception cref="ArgumentException">A state dict this scheduler rejects (another class's, or of other groups).</exception>
    public static void LoadPyTorch(this LRScheduler scheduler, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        LoadRoot(stream, root => scheduler.LoadStateDict(SchedulerLayout.FromPyTorch(root, scheduler.StateDict(), "the scheduler state dict")));
    }

    /// <summary>Loads the file <c>torch.save(scheduler.state_dict(), path)</c> wrote; a failed load changes nothing.</summary>
    /// <param name="scheduler">The scheduler.</param>
    /// <param name="path">The file.</param>
    /// <inheritdoc cref="LoadPyTorch(LRScheduler, Stream)" path="/exception"/>
    public static void LoadPyTorch(this LRScheduler scheduler, string path)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        LoadFile(path, scheduler.LoadPyTorch);
    }

    /// <summary>Writes the scheduler's state dict as PyTorch's <c>scheduler.state_dict()</c> (MultiStepLR's milestones as a Counter).</summary>
    /// <param name="scheduler">The scheduler.</param>
    /// <param name="stream">A writable stream.</param>
    public static void SavePyTorch(this LRScheduler scheduler, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(stream);
        TorchArchive.Write(stream, SchedulerLayout.ToPyTorch(scheduler.StateDict()));
    }

    /// <summary>Writes the scheduler's state dict to a PyTorch checkpoint file, atomically.</summary>
    /// <param name="scheduler">The scheduler.</param>
    /// <param name="path">The file.</param>
    public static void SavePyTorch(this LRScheduler scheduler, string path)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        AtomicFile.Write(path, scheduler.SavePyTorch);
    }

    /// <summary>
    /// Loads the file <c>torch.save(scaler.state_dict(), path)</c> wrote into this gradient scaler (a no-op when it
    /// is disabled, as in PyTorch). A failed load changes nothing.
    /// </summary>
    /// <param name="scaler">The scaler.</param>
    /// <param name="stream">A readable stream holding the whole file.</param>
    /// <exception cref="InvalidDataException">Not a PyTorch checkpoint, damaged, truncated, or holding disallowed globals.</exception>
    /// <exception cref="ArgumentException">Not a scaler's state dict, an out-of-range value, or a disabled scaler's empty dict for an enabled one.</exception>
    public static void LoadPyTorch(this GradScaler scaler, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(scaler);
        LoadRoot(stream, root => scaler.LoadStateDict(SchedulerLayout.ScalerFromPyTorch(root, "the scaler state dict")));
    }

    /// <summary>Loads the file <c>torch.save(scaler.state_dict(), path)</c> wrote; a failed load changes nothing.</summary>
    /// <param name="scaler">The scaler.</param>
    /// <param name="path">The file.</param>
    /// <inheritdoc cref="LoadPyTorch(GradScaler, Stream)" path="/exception"/>
    public static void LoadPyTorch(this GradScaler scaler, string path)
    {
        ArgumentNullException.ThrowIfNull(scaler);
        LoadFile(path, scaler.LoadPyTorch);
    }

    /// <summary>Writes the scaler's state dict as PyTorch's <c>scaler.state_dict()</c> (empty for a disabled scaler).</summary>
    /// <param name="scaler">The scaler.</param>
    /// <param name="stream">A writable stream.</param>
    public static void SavePyTorch(this GradScaler scaler, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(scaler);
        ArgumentNullException.ThrowIfNull(stream);
        TorchArchive.Write(stream, SchedulerLayout.ScalerToPyTorch(scaler.StateDict()));
    }

    /// <summary>Writes the scaler's state dict to a PyTorch checkpoint file, atomically.</summary>
    /// <param name="scaler">The scaler.</param>
    /// <param name="path">The file.</param>
    public static void SavePyTorch(this GradScaler scaler, string path)
    {
        ArgumentNullException.ThrowIfNull(scaler);
        AtomicFile.Write(path, scaler.SavePyTorch);
    }

    private static void LoadFile(string path, Action<Stream> load)
    {
        using var stream = File.OpenRead(path);
        load(stream);
    }

    // The file's value, for as long as `load` runs: the tensors it made are freed after (what a load keeps, it copies or
    // takes over).
    private static void LoadRoot(Stream stream, Action<object?> load)
    {
        using var loaded = TorchArchive.Read(stream);
        load(loaded.Root);
    }

    // The loaded tensors are new and ours: the optimizer takes them over (FileLoads.Commit); the rest go with `loaded`.
    private static void Load(Optimizer optimizer, object? root)
    {
        var made = new List<Tensor>();
        try
        {
            FileLoads.Commit(optimizer, OptimizerLayout.FromPyTorch(root, optimizer, made));
        }
        finally
        {
            foreach (var t in made) t.Dispose();
        }
    }
}
