using System;
using System.IO;

namespace Optim.Formats;

/// <summary>What every file reader's extension method does around the format itself.</summary>
internal static class FileLoads
{
    /// <summary>The argument checks of every extension method: an optimizer, not disposed.</summary>
    public static void ThrowIfDisposed(Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ObjectDisposedException.ThrowIf(optimizer.IsDisposed, optimizer);
    }

    /// <summary>
    /// The error for bytes after what a file's reader read (a file is the checkpoint and nothing else), or null when it
    /// read to the end.
    /// </summary>
    public static InvalidDataException? TrailingBytes(Stream file, string path, string what = "the checkpoint") =>
        file.Position == file.Length ? null : new InvalidDataException($"'{path}' has {file.Length - file.Position} bytes after {what}.");

    /// <summary>
    /// Loads a state dict a reader just built: its tensors are new and ours, so the optimizer may take them over instead
    /// of copying them; what it does not take is freed here, whether the load succeeds or not.
    /// </summary>
    public static void Commit(Optimizer optimizer, OptimizerStateDict stateDict)
    {
        try
        {
            optimizer.LoadStateDict(stateDict with { TensorsAreStaged = true });
        }
        finally
        {
            stateDict.DisposeTensors();
        }
    }
}
