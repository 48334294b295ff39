using System;
using System.IO;
using Optim.Formats;

// Declared in namespace Optim, not Optim.Formats, so that optimizer.Save(path) and optimizer.Load(path) need no extra
// using directive (they were instance methods of Optimizer before the format moved out of the core).
namespace Optim;

/// <summary>
/// Saving and loading an optimizer's state in Optim's checkpoint format: versioned, checksummed, streamed (no size
/// limit; memory while saving or loading is a small buffer plus, when loading, the new state itself), and bit for bit.
/// </summary>
/// <remarks>
/// A load reads the whole checkpoint into new tensors and verifies its checksum before anything changes, then goes
/// through <see cref="Optimizer.LoadStateDict"/>: a damaged file or one that does not fit changes nothing. Files of
/// format version 1 (earlier releases) still load.
/// </remarks>
public static class OptimizerCheckpointExtensions
{
    /// <summary>Writes a checkpoint of the optimizer's state to <paramref name="stream"/>.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="stream">A writable stream.</param>
    /// <exception cref="ObjectDisposedException">The optimizer, or a tensor of its state, was disposed.</exception>
    public static void Save(this Optimizer optimizer, Stream stream)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        ArgumentNullException.ThrowIfNull(stream);
        OptimizerCheckpoint.Write(stream, optimizer.StateDict());
    }

    /// <summary>
    /// Writes a checkpoint to <paramref name="path"/> atomically: to a short-named temporary file beside it, flushed to
    /// disk, renamed over the target, and the directory flushed (Linux, macOS), so a crash mid-save leaves the previous
    /// checkpoint intact. Temporary files of earlier saves to the same path that were killed are removed.
    /// </summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="path">The checkpoint file.</param>
    /// <exception cref="ObjectDisposedException">The optimizer, or a tensor of its state, was disposed.</exception>
    public static void Save(this Optimizer optimizer, string path)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        var stateDict = optimizer.StateDict();
        stateDict.ThrowIfDisposed();
        AtomicFile.Write(path, stream => OptimizerCheckpoint.Write(stream, stateDict));
    }

    /// <summary>Loads a checkpoint written by <see cref="Save(Optimizer, Stream)"/>; a failed load changes nothing.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="stream">A readable stream positioned at the checkpoint; it is left just after it.</param>
    /// <exception cref="InvalidDataException">The data is not a valid checkpoint (truncated, corrupted, another format or a newer version).</exception>
    /// <exception cref="ArgumentException">The checkpoint does not fit this optimizer.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    public static void Load(this Optimizer optimizer, Stream stream)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        ArgumentNullException.ThrowIfNull(stream);
        var stateDict = OptimizerCheckpoint.Read(stream, optimizer.OptionSchema);
        FileLoads.Commit(optimizer, stateDict);
    }

    /// <summary>Loads a checkpoint file written by <see cref="Save(Optimizer, string)"/>; a failed load changes nothing.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="path">The checkpoint file. Bytes after the checkpoint are an error.</param>
    /// <inheritdoc cref="Load(Optimizer, Stream)" path="/exception"/>
    public static void Load(this Optimizer optimizer, string path)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        OptimizerStateDict stateDict;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16))
        {
            stateDict = OptimizerCheckpoint.Read(stream, optimizer.OptionSchema);
            if (FileLoads.TrailingBytes(stream, path) is { } error)
            {
                stateDict.DisposeTensors();
                throw error;
            }
        }
        FileLoads.Commit(optimizer, stateDict);
    }
}
