using System;
using System.IO;
using Optim.Formats;

// Declared in namespace Optim, not Optim.Formats, so that optimizer.LoadTorchSharp(path) needs no extra using directive.
namespace Optim;

/// <summary>
/// Moving training between TorchSharp's built-in optimizers and this library's: load a checkpoint file written by
/// TorchSharp's <c>save_state_dict</c> into the optimizer of the same algorithm, or write one that TorchSharp's
/// <c>load_state_dict</c> reads. TorchSharp has Adam, AdamW, SGD, Adagrad, RMSProp, Adadelta, Adamax, ASGD, NAdam, RAdam and Rprop; each algorithm's mapping is its
/// <see cref="AlgorithmInfo.TorchSharpLayout"/>.
/// </summary>
/// <remarks>
/// The format names no parameters: states are matched by position. TorchSharp's <c>long step</c> becomes a 0-dim
/// <c>step</c> tensor; state TorchSharp keeps but PyTorch would not (RMSProp's unused buffers, a never-stepped
/// parameter's zeros) is dropped on load and recreated as zeros on save. The file has no checksum: truncation and
/// structural damage are detected (<see cref="InvalidDataException"/>), flipped bits inside tensor data are not.
/// </remarks>
public static class TorchSharpCheckpointExtensions
{
    /// <summary>
    /// Loads a checkpoint that TorchSharp's optimizer of the same algorithm wrote with <c>save_state_dict(BinaryWriter)</c>.
    /// The load goes through <see cref="Optimizer.LoadStateDict"/>: everything is checked first and a failed load changes
    /// nothing. The stream is left just after the checkpoint.
    /// </summary>
    /// <param name="optimizer">An <see cref="Adam"/>, <see cref="AdamW"/>, <see cref="SGD"/>, <see cref="Adagrad"/> or <see cref="RMSprop"/>.</param>
    /// <param name="stream">A readable stream positioned at the checkpoint.</param>
    /// <exception cref="InvalidDataException">Not a TorchSharp optimizer checkpoint, truncated, or malformed.</exception>
    /// <exception cref="ArgumentException">
    /// A checkpoint of another TorchSharp optimizer class, of another layout, or with values this optimizer rejects.
    /// </exception>
    /// <exception cref="NotSupportedException">TorchSharp has no optimizer of this algorithm.</exception>
    public static void LoadTorchSharp(this Optimizer optimizer, Stream stream)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        FileLoads.Commit(optimizer, TorchSharpCheckpoint.Read(stream, optimizer));
    }

    /// <summary>Loads a checkpoint file written by TorchSharp's <c>save_state_dict(string)</c>; a failed load changes nothing.</summary>
    /// <param name="optimizer">An <see cref="Adam"/>, <see cref="AdamW"/>, <see cref="SGD"/>, <see cref="Adagrad"/> or <see cref="RMSprop"/>.</param>
    /// <param name="path">The checkpoint file. Bytes after the checkpoint are an error.</param>
    /// <inheritdoc cref="LoadTorchSharp(Optimizer, Stream)" path="/exception"/>
    public static void LoadTorchSharp(this Optimizer optimizer, string path)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        FileLoads.Commit(optimizer, TorchSharpCheckpoint.ReadFile(path, optimizer));
    }

    /// <summary>
    /// Writes the optimizer's state in TorchSharp's format, for TorchSharp's optimizer of the same algorithm to
    /// <c>load_state_dict(BinaryReader)</c> and continue.
    /// </summary>
    /// <param name="optimizer">An <see cref="Adam"/>, <see cref="AdamW"/>, <see cref="SGD"/>, <see cref="Adagrad"/> or <see cref="RMSprop"/>.</param>
    /// <param name="stream">A writable stream.</param>
    /// <exception cref="NotSupportedException">
    /// The algorithm has no TorchSharp counterpart, or a group uses an option value TorchSharp's optimizer lacks (Adagrad
    /// with <c>maximize</c>); nothing is written.
    /// </exception>
    /// <exception cref="InvalidOperationException">A step count that is not a whole number; nothing is written.</exception>
    public static void SaveTorchSharp(this Optimizer optimizer, Stream stream)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        TorchSharpCheckpoint.Write(stream, optimizer);
    }

    /// <summary>
    /// Writes the optimizer's state to a file in TorchSharp's format (atomically: a temporary file renamed over
    /// <paramref name="path"/>), for TorchSharp's <c>load_state_dict(string)</c>.
    /// </summary>
    /// <param name="optimizer">An <see cref="Adam"/>, <see cref="AdamW"/>, <see cref="SGD"/>, <see cref="Adagrad"/> or <see cref="RMSprop"/>.</param>
    /// <param name="path">The checkpoint file.</param>
    /// <inheritdoc cref="SaveTorchSharp(Optimizer, Stream)" path="/exception"/>
    public static void SaveTorchSharp(this Optimizer optimizer, string path)
    {
        FileLoads.ThrowIfDisposed(optimizer);
        TorchSharpCheckpoint.WriteFile(path, optimizer);
    }
}
