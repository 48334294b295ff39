using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Optim.Formats.PyTorch;

/// <summary>
/// The value a PyTorch checkpoint file holds, read with <see cref="TorchArchive.Read"/>, and the tensors made for it:
/// disposing this disposes every tensor it made, whoever else holds them.
/// </summary>
internal sealed class LoadedPickle(object? root, List<Tensor> tensors) : IDisposable
{
    /// <summary>The unpickled value (usually a <see cref="PyDict"/>).</summary>
    public object? Root { get; } = root;

    /// <summary>Every tensor made while reading.</summary>
    public IReadOnlyList<Tensor> Tensors => tensors;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in tensors) t.Dispose();
        tensors.Clear();
    }
}

/// <summary>
/// PyTorch's checkpoint file (<c>torch.save</c>'s zip format, the default since PyTorch 1.6): a zip archive whose
/// entries share one folder, holding <c>data.pkl</c> (the pickled value, tensors as persistent ids naming storages),
/// <c>data/&lt;key&gt;</c> (each storage's raw little-endian bytes), <c>version</c> and <c>byteorder</c>.
/// </summary>
internal static class TorchArchive
{
    // The pickle of a state dict is small (its tensors are separate entries); a larger one is not a state dict.
    private const long MaxPickleBytes = 256L << 20;
    private const int Alignment = 64;

    /// <summary>
    /// Reads a checkpoint: the pickle through <see cref="Unpickler"/> (allowlisted globals only), each storage into a
    /// tensor, each tensor a contiguous copy of its view of the storage.
    /// </summary>
    /// <exception cref="InvalidDataException">Not a zip archive, damaged, truncated, or a pickle outside what is allowed.</exception>
    public static LoadedPickle Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead) throw new ArgumentException("the stream is not readable.", nameof(stream));
        Stream seekable = stream;
        if (!stream.CanSeek)
        {
            var copy = new MemoryStream();
            stream.CopyTo(copy);
            copy.Position = 0;
            seekable = copy;
        }
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(seekable, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or IOException)
        {
            throw new InvalidDataException($"not a PyTorch checkpoint (torch.save's zip format): {e.Message}", e);
        }
        using (zip)
        {
            var tensors = new List<Tensor>();
            var storages = new Dictionary<string, Tensor>();
            try
            {
                var prefix = Prefix(zip);
                if (zip.GetEntry(prefix + "byteorder") is { } order && ReadText(order) != "little")
                    throw new InvalidDataException("the checkpoint's tensors are big-endian; only little-endian files are supported.");
                var pickle = zip.GetEntry(prefix + "data.pkl") ?? throw new InvalidDataException("the checkpoint has no data.pkl.");
                if (pickle.Length > MaxPickleBytes) throw new InvalidDataException($"the checkpoint's data.pkl is {pickle.Length} bytes, too large for a state dict.");
                var bytes = ReadAll(pickle);
                var root = Unpickler.Load(bytes, (storage, offset, shape, stride) =>
                {
                    if (!storages.TryGetValue(storage.Key, out var flat))
                    {
                        flat = ReadStorage(zip, prefix, storage);
                        storages[storage.Key] = flat;
                    }
                    else if (flat.dtype != storage.Dtype || flat.numel() != storage.Count)
                    {
                        throw new InvalidDataException($"storage '{storage.Key}' is named with two different types or sizes.");
                    }
                    var tensor = View(flat, offset, shape, stride, storage.Key);
                    tensors.Add(tensor);
                    return tensor;
                });
                return new LoadedPickle(root, tensors);
            }
            catch (Exception e)
            {
                foreach (var t in tensors) t.Dispose();
                if (e is InvalidDataException) throw;
                if (e is IOException or ExternalException or ArgumentException or OverflowException)
                    throw new InvalidDataException($"the checkpoint is damaged: {e.Message}", e);
                throw;
            }
            finally
            {
                foreach (var s in storages.Values) s.Dispose();
            }
        }
    }

    private static string Prefix(ZipArchive zip)
    {
        if (zip.Entries.Count == 0) throw new InvalidDataException("the checkpoint's zip archive is empty.");
        var first = zip.Entries[0].FullName;
        var slash = first.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0) throw new InvalidDataException("the checkpoint's entries are not in one folder, as torch.save writes them.");
        var prefix = first[..(slash + 1)];
        if (zip.Entries.Any(e => !e.FullName.StartsWith(prefix, StringComparison.Ordinal)))
            throw new InvalidDataException("the checkpoint's entries are not in one folder, as torch.save writes them.");
        return prefix;
    }

    private static byte[] ReadAll(ZipArchiveEntry entry)
    {
        var bytes = new byte[entry.Length];
        using var s = entry.Open();
        s.ReadExactly(bytes);
        if (s.ReadByte() >= 0) throw new InvalidDataException($"entry '{entry.FullName}' is longer than its header says.");
        return bytes;
    }

    private static string ReadText(ZipArchiveEntry entry) =>
        entry.Length > 64 ? throw new InvalidDataException($"entry '{entry.FullName}' is too long.") : System.Text.Encoding.ASCII.GetString(ReadAll(entry)).Trim();

    private static Tensor ReadStorage(ZipArchive zip, string prefix, Unpickler.StorageRef storage)
    {
        var entry = zip.GetEntry($"{prefix}data/{storage.Key}")
            ?? throw new InvalidDataException($"the checkpoint has no data for storage '{storage.Key}'.");
        var bytes = TensorBytes.ByteCount(storage.Dtype, [storage.Count], $"storage '{storage.Key}'");
        if (entry.Length != bytes)
            throw new InvalidDataException($"storage '{storage.Key}' holds {entry.Length} bytes, but {storage.Count} elements of {storage.Dtype} need {bytes}.");
        using var s = entry.Open();
        return TensorBytes.Read(s, storage.Dtype, [storage.Count], $"storage '{storage.Key}'");
    }

    // The tensor as _rebuild_tensor_v2 makes it (storage.as_strided), copied into its own contiguous memory.
    private static Tensor View(Tensor flat, long offset, long[] shape, long[] stride, string key)
    {
        if (shape.Length != stride.Length) throw new InvalidDataException($"a tensor of storage '{key}' has {shape.Length} sizes but {stride.Length} strides.");
        TensorBytes.ByteCount(flat.dtype, shape, $"a tensor of storage '{key}'");
        var count = flat.numel();
        if (offset < 0 || offset > count) throw new InvalidDataException($"a tensor of storage '{key}' starts at {offset}, outside its {count} elements.");
        long last = offset;
        var noElements = false;
        for (var d = 0; d < shape.Length; d++)
        {
            if (stride[d] < 0) throw new InvalidDataException($"a tensor of storage '{key}' has a negative stride.");
            if (shape[d] == 0) noElements = true;
            else if (stride[d] > 0 && shape[d] - 1 > (long.MaxValue - last) / stride[d]) throw new InvalidDataException($"a tensor of storage '{key}' overflows.");
            else last += (shape[d] - 1) * stride[d];
        }
        if (!noElements && last >= count)
            throw new InvalidDataException($"a tensor of storage '{key}' reaches element {last}, beyond its {count} elements.");
        var result = empty(shape, flat.dtype);
        if (!noElements)
        {
            using var view = flat.as_strided(shape, stride, offset);
            result.copy_(view);
        }
        return result;
    }

    /// <summary>
    /// Writes <paramref name="root"/> as <c>torch.save</c> does (pickle protocol 2, each tensor's bytes in its own
    /// 64-byte-aligned, uncompressed entry), so that <c>torch.load(weights_only=True)</c> reads it.
    /// </summary>
    public static void Write(Stream stream, object? root)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var tensors = new List<Tensor>();
        var pickle = Pickler.Dump(root, tensors);
        var zip = new AlignedZipWriter(stream, Alignment);
        const string prefix = "archive/";
        zip.Add(prefix + "data.pkl", pickle);
        zip.Add(prefix + "byteorder", "little"u8.ToArray());
        for (var i = 0; i < tensors.Count; i++)
        {
            var tensor = tensors[i];
            zip.Add($"{prefix}data/{i}", tensor.numel() * tensor.ElementSize, s => TensorBytes.Write(s, tensor));
        }
        zip.Add(prefix + "version", "3\n"u8.ToArray());
        zip.Finish();
    }
}
