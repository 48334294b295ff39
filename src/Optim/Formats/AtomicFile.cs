using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Optim.Formats;

/// <summary>
/// Writes a file atomically: to a temporary file in the same directory, flushed to disk, renamed over the target, and
/// the directory flushed too, so after a crash or power loss the target is either the old file or the new one.
/// </summary>
/// <remarks>
/// <para>
/// Temporary names are short and fixed-length (<c>.optim-XXXXXXXX-YYYYYYYYYYYY.tmp</c>, 33 bytes: a hash of the target's
/// file name, then a random part), so any target name the file system accepts works. A save that was killed (SIGKILL,
/// power loss) leaves its temporary file behind; the next save to the same target removes every temporary of that
/// target that no live save holds (a save holds its temporary open with an exclusive lock, which the operating system
/// releases when the process dies).
/// </para>
/// <para>
/// On Linux and macOS the directory is opened read-only and fsynced after the rename, which makes the rename itself
/// durable. Windows offers no directory flush to ordinary processes; there the rename is as durable as NTFS makes it.
/// </para>
/// </remarks>
internal static class AtomicFile
{
    private const string Prefix = ".optim-", Suffix = ".tmp";

    /// <summary>Writes <paramref name="path"/> atomically with what <paramref name="write"/> writes to the stream.</summary>
    /// <param name="path">The target file.</param>
    /// <param name="write">Writes the content; on an exception the temporary file is removed and the target untouched.</param>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        RemoveStaleTemporaries(full);
        var temporary = Path.Combine(directory, TemporaryPrefix(full) + Convert.ToHexString(RandomNumberGenerator.GetBytes(6)) + Suffix);
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
        SyncDirectory(directory);
    }

    /// <summary>The name every temporary file of <paramref name="path"/> starts with (a hash of its file name).</summary>
    internal static string TemporaryPrefix(string path)
    {
        var name = Encoding.UTF8.GetBytes(Path.GetFileName(Path.GetFullPath(path)));
        return Prefix + Convert.ToHexString(SHA256.HashData(name), 0, 4).ToLowerInvariant() + "-";
    }

    /// <summary>
    /// Removes the temporary files of <paramref name="path"/> left by saves that died; a temporary a live save holds
    /// (locked) is left alone. Returns how many it removed.
    /// </summary>
    internal static int RemoveStaleTemporaries(string path)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        var removed = 0;
        foreach (var candidate in Directory.EnumerateFiles(directory, TemporaryPrefix(full) + "*" + Suffix))
        {
            try
            {
                // Succeeds only if no one holds it: then it is deleted when this handle closes.
                using var stale = new FileStream(candidate, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
                removed++;
            }
            catch (IOException)
            {
                // A save in progress holds it, or it vanished meanwhile.
            }
            catch (UnauthorizedAccessException)
            {
                // Not ours to remove.
            }
        }
        return removed;
    }

    /// <summary>
    /// Flushes the directory entry changes of <paramref name="directory"/> to disk (open read-only, fsync, close) where
    /// the operating system allows it; returns whether it did.
    /// </summary>
    internal static bool SyncDirectory(string directory)
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())) return false;
        var fd = Native.open(directory, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"cannot open directory '{directory}' to flush it (errno {Marshal.GetLastPInvokeError()}).");
        try
        {
            if (Native.fsync(fd) != 0)
                throw new IOException($"flushing directory '{directory}' failed (errno {Marshal.GetLastPInvokeError()}).");
        }
        finally
        {
            _ = Native.close(fd);
        }
        return true;
    }

    private static class Native
    {
#pragma warning disable CA2101, SYSLIB1054 // a plain C string path; no source-generated marshalling needed for three calls
        [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int close(int fd);
#pragma warning restore CA2101, SYSLIB1054
    }
}
