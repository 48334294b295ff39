using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;

namespace Optim.Serialization;

/// <summary>
/// Optim's checkpoint file format. Layout (little-endian):
/// <code>
/// magic "OPTIMCKP" (8 bytes) | format version (u16) | payload length (i64) | payload | SHA-256 of payload (32 bytes)
/// payload: optimizer type (string)
///          group count (i32), per group: hyperparameter count (i32), per hyperparameter: name (string), tag (u8:
///            0 double, 1 bool, 2 Implementation as i32), value; initial_lr (double); param count (i32), ids (i32 each)
///          state count (i32), per parameter: id (i32), entry count (i32), per entry: key (string), tensor
///          tensor: dtype (i32, TorchSharp's ScalarType), ndim (i32), dims (i64 each), byte count (i64), raw bytes
/// </code>
/// Strings are .NET's length-prefixed UTF-8. Every value round-trips bit for bit. Reads verify everything before
/// returning, so a truncated or corrupted file is an <see cref="InvalidDataException"/>, never a half-read state.
/// </summary>
public static class CheckpointFormat
{
    /// <summary>The format version this build writes; it reads this and older versions.</summary>
    public const ushort Version = 1;

    private static readonly byte[] Magic = "OPTIMCKP"u8.ToArray();
    private const int HashLength = 32;

    /// <summary>Writes <paramref name="stateDict"/> to <paramref name="stream"/>.</summary>
    /// <param name="stream">A writable stream.</param>
    /// <param name="stateDict">The state to write.</param>
    public static void Write(Stream stream, OptimizerStateDict stateDict)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(stateDict);
        stateDict.ThrowIfDisposed();
        if (stateDict.Global.Count > 0)
            throw new NotSupportedException("checkpoint format version 1 has no place for optimizer-wide state.");
        var payload = EncodePayload(stateDict);
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write(Magic);
        writer.Write(Version);
        writer.Write((long)payload.Length);
        writer.Write(payload);
        writer.Write(SHA256.HashData(payload));
        writer.Flush();
    }

    /// <summary>
    /// Writes a checkpoint file atomically: a temporary file in the same folder, flushed to disk, renamed over
    /// <paramref name="path"/>. On failure the temporary file is removed and any previous file is untouched.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="stateDict">The state to write.</param>
    public static void WriteFileAtomically(string path, OptimizerStateDict stateDict) =>
        WriteFileAtomically(path, stream => Write(stream, stateDict));

    internal static void WriteFileAtomically(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
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
    }

    /// <summary>
    /// Reads a checkpoint. Its tensors are new CPU tensors owned by the caller (or the current dispose scope).
    /// </summary>
    /// <param name="stream">A readable stream positioned at a checkpoint.</param>
    /// <returns>The state dict it holds.</returns>
    /// <exception cref="InvalidDataException">Not a checkpoint, an unsupported version, truncated or corrupted.</exception>
    public static OptimizerStateDict Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        byte[] payload;
        try
        {
            var magic = reader.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException("not an Optim checkpoint (bad magic number).");
            var version = reader.ReadUInt16();
            if (version == 0 || version > Version)
                throw new InvalidDataException($"checkpoint format version {version} is not supported; this build reads versions 1 to {Version}.");
            var length = reader.ReadInt64();
            if (length < 0 || length > int.MaxValue)
                throw new InvalidDataException($"checkpoint payload length {length} is invalid.");
            payload = ReadPayload(reader, (int)length);
            var hash = reader.ReadBytes(HashLength);
            if (payload.Length != length || hash.Length != HashLength)
                throw new InvalidDataException("checkpoint is truncated.");
            if (!SHA256.HashData(payload).AsSpan().SequenceEqual(hash))
                throw new InvalidDataException("checkpoint is corrupted (checksum mismatch).");
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("checkpoint is truncated.", e);
        }
        return DecodePayload(payload);
    }

    // A corrupted length field must not allocate what it claims: read in chunks, so memory follows the bytes that exist.
    private static byte[] ReadPayload(BinaryReader reader, int length)
    {
        const int Chunk = 1 << 20;
        if (length <= Chunk) return reader.ReadBytes(length);
        var stream = reader.BaseStream;
        if (stream.CanSeek && length > stream.Length - stream.Position) throw new InvalidDataException("checkpoint is truncated.");
        using var buffer = new MemoryStream();
        while (buffer.Length < length)
        {
            var part = reader.ReadBytes((int)Math.Min(Chunk, length - buffer.Length));
            if (part.Length == 0) break;
            buffer.Write(part);
        }
        return buffer.ToArray();
    }

    private static byte[] EncodePayload(OptimizerStateDict sd)
    {
        using var memory = new MemoryStream();
        using var w = new BinaryWriter(memory, Encoding.UTF8);
        w.Write(sd.OptimizerType);
        w.Write(sd.ParamGroups.Count);
        foreach (var group in sd.ParamGroups)
        {
            w.Write(group.Hyperparameters.Count);
            foreach (var (name, value) in group.Hyperparameters)
            {
                w.Write(name);
                switch (value)
                {
                    case double d: w.Write((byte)0); w.Write(d); break;
                    case bool b: w.Write((byte)1); w.Write(b); break;
                    case Implementation i: w.Write((byte)2); w.Write((int)i); break;
                    default: throw new ArgumentException($"hyperparameter '{name}' has unsupported type {value?.GetType().Name}.", nameof(sd));
                }
            }
            w.Write(group.InitialLr);
            w.Write(group.Params.Count);
            foreach (var id in group.Params) w.Write(id);
        }
        w.Write(sd.State.Count);
        foreach (var (id, entries) in sd.State)
        {
            w.Write(id);
            w.Write(entries.Count);
            foreach (var (key, tensor) in entries)
            {
                w.Write(key);
                WriteTensor(w, tensor);
            }
        }
        w.Flush();
        return memory.ToArray();
    }

    private static OptimizerStateDict DecodePayload(byte[] payload)
    {
        using var memory = new MemoryStream(payload, writable: false);
        using var r = new BinaryReader(memory, Encoding.UTF8);
        var created = new List<Tensor>();
        try
        {
            var type = r.ReadString();
            var groups = new List<ParamGroupState>();
            var groupCount = Count(r, "group");
            for (var g = 0; g < groupCount; g++)
            {
                var hyper = new List<KeyValuePair<string, object?>>();
                var hyperCount = Count(r, "hyperparameter");
                for (var h = 0; h < hyperCount; h++)
                {
                    var name = r.ReadString();
                    object value = r.ReadByte() switch
                    {
                        0 => r.ReadDouble(),
                        1 => r.ReadBoolean(),
                        2 => (Implementation)r.ReadInt32(),
                        var tag => throw new InvalidDataException($"unknown value tag {tag} for hyperparameter '{name}'."),
                    };
                    hyper.Add(new(name, value));
                }
                var initialLr = r.ReadDouble();
                var ids = new List<int>();
                var paramCount = Count(r, "parameter");
                for (var i = 0; i < paramCount; i++) ids.Add(r.ReadInt32());
                groups.Add(new ParamGroupState(hyper, initialLr, ids));
            }
            var state = new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>();
            var stateCount = Count(r, "state");
            for (var s = 0; s < stateCount; s++)
            {
                var id = r.ReadInt32();
                var entries = new ParameterState();
                var entryCount = Count(r, "state entry");
                for (var e = 0; e < entryCount; e++)
                {
                    var key = r.ReadString();
                    var tensor = ReadTensor(r);
                    created.Add(tensor);
                    if (entries.ContainsKey(key)) throw new InvalidDataException($"parameter id {id} has state '{key}' twice.");
                    entries.AddWithoutDetaching(key, tensor);
                }
                entries.IsInitialized = true;
                if (!state.TryAdd(id, entries)) throw new InvalidDataException($"parameter id {id} has state twice.");
            }
            if (memory.Position != memory.Length) throw new InvalidDataException("checkpoint has trailing bytes in its payload.");
            return new OptimizerStateDict(type, state, groups);
        }
        catch (Exception e) when (e is EndOfStreamException or ArgumentException or OverflowException)
        {
            foreach (var t in created) t.Dispose();
            throw new InvalidDataException($"checkpoint payload is malformed: {e.Message}", e);
        }
        catch
        {
            foreach (var t in created) t.Dispose();
            throw;
        }
    }

    private static int Count(BinaryReader r, string what)
    {
        var count = r.ReadInt32();
        // A count can never exceed the bytes left; this keeps corrupted counts from allocating wildly.
        if (count < 0 || count > r.BaseStream.Length - r.BaseStream.Position)
            throw new InvalidDataException($"checkpoint has an invalid {what} count ({count}).");
        return count;
    }

    private static void WriteTensor(BinaryWriter w, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        w.Write((int)cpu.dtype);
        w.Write(checked((int)cpu.ndim)); // Tensor.ndim is a long; the format stores an i32.
        foreach (var d in cpu.shape) w.Write(d);
        var bytes = cpu.bytes;
        w.Write((long)bytes.Length);
        w.Write(bytes);
    }

    private static Tensor ReadTensor(BinaryReader r)
    {
        var dtype = (ScalarType)r.ReadInt32();
        if (!Enum.IsDefined(dtype)) throw new InvalidDataException($"unknown tensor dtype {(int)dtype}.");
        var ndim = Count(r, "dimension");
        var shape = new long[ndim];
        for (var i = 0; i < ndim; i++)
        {
            shape[i] = r.ReadInt64();
            if (shape[i] < 0) throw new InvalidDataException($"tensor dimension {shape[i]} is negative.");
        }
        var byteCount = r.ReadInt64();
        if (byteCount < 0 || byteCount > r.BaseStream.Length - r.BaseStream.Position)
            throw new InvalidDataException($"tensor byte count {byteCount} is invalid.");
        long elementSize;
        using (var probe = empty(0, dtype)) elementSize = probe.ElementSize;
        long expected = elementSize;
        foreach (var d in shape) expected = checked(expected * d);
        if (expected != byteCount)
            throw new InvalidDataException($"tensor of {dtype} [{string.Join(", ", shape)}] needs {expected} bytes, the checkpoint has {byteCount}.");
        var data = r.ReadBytes((int)byteCount);
        var tensor = empty(shape, dtype);
        try
        {
            data.CopyTo(tensor.bytes);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }
}
