using System;
using System.IO;
using Optim.Serialization;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// Moving training between TorchSharp's built-in optimizers and this library's: load a checkpoint file written by
/// TorchSharp's <c>save_state_dict</c> into the optimizer of the same algorithm, or write one that TorchSharp's
/// <c>load_state_dict</c> reads. See <see cref="TorchSharpCheckpoint"/> for the format and how state is mapped.
/// </summary>
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
        ArgumentNullException.ThrowIfNull(optimizer);
        using var scope = NewDisposeScope();
        optimizer.LoadStateDict(TorchSharpCheckpoint.Read(stream, optimizer));
    }

    /// <summary>Loads a checkpoint file written by TorchSharp's <c>save_state_dict(string)</c>; a failed load changes nothing.</summary>
    /// <param name="optimizer">An <see cref="Adam"/>, <see cref="AdamW"/>, <see cref="SGD"/>, <see cref="Adagrad"/> or <see cref="RMSprop"/>.</param>
    /// <param name="path">The checkpoint file. Bytes after the checkpoint are an error.</param>
    /// <inheritdoc cref="LoadTorchSharp(Optimizer, Stream)" path="/exception"/>
    public static void LoadTorchSharp(this Optimizer optimizer, string path)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        using var stream = File.OpenRead(path);
        using var scope = NewDisposeScope();
        var stateDict = TorchSharpCheckpoint.Read(stream, optimizer);
        if (stream.Position != stream.Length)
            throw new InvalidDataException($"'{path}' has {stream.Length - stream.Position} bytes after the TorchSharp checkpoint.");
        optimizer.LoadStateDict(stateDict);
    }

    /// <summary>
    /// Writes the optimizer's state in TorchSharp's format, for TorchSharp's optimizer of the same algorithm to
    /// <c>load_state_dict(BinaryReader)</c> and continue.
    /// </summary>
    /// <param name="optimizer">An <see cref="Adam"/>, <see cref="AdamW"/>, <see cref="SGD"/>, <see cref="Adagrad"/> or <see cref="RMSprop"/>.</param>
    /// <param name="stream">A writable stream.</param>
    /// <inheritdoc cref="TorchSharpCheckpoint.Write(Stream, Optimizer)" path="/exception"/>
    public static void SaveTorchSharp(this Optimizer optimizer, Stream stream) => TorchSharpCheckpoint.Write(stream, optimizer);

    /// <summary>
    /// Writes the optimizer's state to a file in TorchSharp's format (atomically: a temporary file renamed over
    /// <paramref name="path"/>), for TorchSharp's <c>load_state_dict(string)</c>.
    /// </summary>
    /// <param name="optimizer">An <see cref="Adam"/>, <see cref="AdamW"/>, <see cref="SGD"/>, <see cref="Adagrad"/> or <see cref="RMSprop"/>.</param>
    /// <param name="path">The checkpoint file.</param>
    /// <inheritdoc cref="TorchSharpCheckpoint.Write(Stream, Optimizer)" path="/exception"/>
    public static void SaveTorchSharp(this Optimizer optimizer, string path) => TorchSharpCheckpoint.WriteFile(path, optimizer);
}
