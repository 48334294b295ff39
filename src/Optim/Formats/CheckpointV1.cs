using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;

namespace Optim.Formats;

/// <summary>
/// Reads checkpoints of format version 1 (written by the first releases; nothing writes them any more). Layout after
/// the magic number and version (little-endian):
/// <code>
/// payload length (i64) | payload | SHA-256 of payload (32 bytes)
/// payload: optimizer type (string)
///          group count (i32), per group: hyperparameter count (i32), per hyperparameter: name (string), tag (u8:
///            0 double, 1 bool, 2 Implementation as i32), value; initial_lr (double); param count (i32), ids (i32 each)
///          state count (i32), per parameter: id (i32), entry count (i32), per entry: key (string), tensor
///          tensor: dtype (i32, TorchSharp's ScalarType) | ndim (i32) | dims (i64 each) | byte count (i64) | raw bytes
/// </code>
/// Strings are .NET's length-prefixed UTF-8. Version 1 holds at most 2 GiB of payload and no optimizer-wide state.
/// </summary>
internal static class CheckpointV1
{
    private const int HashLength = 32;

    /// <summary>Reads the rest of a version-1 checkpoint whose magic number and version have been read.</summary>
    /// <returns>The state dict; its tensors are new CPU tensors the caller owns (detached from dispose scopes).</returns>
    public static OptimizerStateDict ReadAfterHeader(Stream stream)
    {
        var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        byte[] payload;
        try
        {
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
        using var buffer = new MemoryStream();
        while (buffer.Length < length)
        {
            var part = reader.ReadBytes((int)Math.Min(Chunk, length - buffer.Length));
            if (part.Length == 0) break;
            buffer.Write(part);
        }
        return buffer.ToArray();
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
                    entries.Set(key, tensor);
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

    private static Tensor ReadTensor(BinaryReader r)
    {
        var dtype = (ScalarType)r.ReadInt32();
        var ndim = Count(r, "dimension");
        if (ndim > TensorBytes.MaxDimensions) throw new InvalidDataException($"tensor has {ndim} dimensions.");
        var shape = new long[ndim];
        for (var i = 0; i < ndim; i++) shape[i] = r.ReadInt64();
        var expected = TensorBytes.ByteCount(dtype, shape, "tensor");
        var byteCount = r.ReadInt64();
        if (byteCount < 0 || byteCount > r.BaseStream.Length - r.BaseStream.Position)
            throw new InvalidDataException($"tensor byte count {byteCount} is invalid.");
        if (expected != byteCount)
            throw new InvalidDataException($"tensor of {dtype} [{string.Join(", ", shape)}] needs {expected} bytes, the checkpoint has {byteCount}.");
        return TensorBytes.Read(r.BaseStream, dtype, shape, "tensor");
    }
}
