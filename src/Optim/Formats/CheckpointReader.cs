using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;
using Tags = Optim.Formats.CheckpointWriter.Tags;

namespace Optim.Formats;

/// <summary>An enum value as a checkpoint stores it: the type's full name and the member's name.</summary>
/// <param name="TypeName">The enum type's full name.</param>
/// <param name="Member">The member's name (or number, for a value without a name).</param>
internal sealed record CheckpointEnum(string TypeName, string Member)
{
    /// <summary>The value as <paramref name="type"/>, or null when the type or member does not match.</summary>
    public object? As(Type type) =>
        type.IsEnum && type.FullName == TypeName && Enum.TryParse(type, Member, ignoreCase: false, out var value) ? value : null;
}

/// <summary>
/// Reads the container <see cref="CheckpointWriter"/> writes, record by record, in one pass over the stream. Tensors are
/// created as they are read (new CPU tensors, filled straight from the stream) and tracked: until
/// <see cref="Finish"/> has verified the checksum, nothing read may be trusted, and <see cref="Dispose"/> frees every
/// tensor not handed over with <see cref="Keep"/>. Every kind of damage (truncation, flipped bits, hostile counts,
/// dimensions or dtypes) is an <see cref="InvalidDataException"/>; nothing is allocated beyond what the stream holds
/// when its length is known, and beyond small buffers otherwise except a tensor's own memory, which is filled only as
/// its bytes arrive.
/// </summary>
internal sealed class CheckpointReader : IDisposable
{
    /// <summary>The longest string a checkpoint may hold, in UTF-8 bytes.</summary>
    public const int MaxStringBytes = 16 << 20;

    private readonly HashingStream _stream;
    private readonly HashSet<Tensor> _created = new(ReferenceEqualityComparer.Instance);
    private bool _ended;

    private CheckpointReader(HashingStream stream, ushort version)
    {
        _stream = stream;
        Version = version;
    }

    /// <summary>The container version of the file.</summary>
    public ushort Version { get; }

    /// <summary>What the checkpoint holds (the writer's kind); null for version 1 files, which have none.</summary>
    public string? Kind { get; private set; }

    /// <summary>The stream after the header (hashing), for readers of version 1, whose layout differs.</summary>
    public Stream Stream => _stream;

    /// <summary>
    /// Reads the header: magic number, version and (from version 2) kind. A version-1 file stops after the version; read
    /// it from <see cref="Stream"/>.
    /// </summary>
    /// <param name="stream">The stream, positioned at the checkpoint (left open).</param>
    /// <param name="newestVersion">The newest version the caller reads.</param>
    /// <exception cref="InvalidDataException">Not a checkpoint, truncated, or a version newer than <paramref name="newestVersion"/>.</exception>
    public static CheckpointReader Open(Stream stream, ushort newestVersion = CheckpointWriter.Version)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var hashing = new HashingStream(stream, writing: false);
        try
        {
            Span<byte> magic = stackalloc byte[8];
            if (hashing.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) != magic.Length || !magic.SequenceEqual(CheckpointWriter.Magic))
                throw new InvalidDataException("not an Optim checkpoint (bad magic number).");
            Span<byte> v = stackalloc byte[2];
            ReadExactly(hashing, v);
            var version = BinaryPrimitives.ReadUInt16LittleEndian(v);
            if (version == 0 || version > newestVersion)
                throw new InvalidDataException($"checkpoint format version {version} is not supported; this build reads versions 1 to {newestVersion}.");
            var reader = new CheckpointReader(hashing, version);
            if (version >= 2) reader.Kind = reader.ReadString("kind");
            return reader;
        }
        catch
        {
            hashing.Dispose();
            throw;
        }
    }

    /// <summary>The next record: a section (<paramref name="name"/> set), an entry (name and value set) or the end.</summary>
    /// <param name="name">The section's or entry's name.</param>
    /// <param name="value">The entry's value (see <see cref="CheckpointWriter.Write"/> for the types; enums are <see cref="CheckpointEnum"/>s, lists arrays).</param>
    public RecordKind Next(out string name, out object? value)
    {
        if (_ended) throw new InvalidOperationException("the checkpoint has ended.");
        name = "";
        value = null;
        var tag = ReadByte();
        switch (tag)
        {
            case Tags.Section:
                name = ReadString("section name");
                return RecordKind.Section;
            case Tags.Entry:
                name = ReadString("entry name");
                value = ReadValue(name, depth: 0);
                return RecordKind.Entry;
            case Tags.End:
                _ended = true;
                return RecordKind.End;
            default:
                throw new InvalidDataException($"checkpoint has unknown record type {tag} at byte {_stream.Count - 1}.");
        }
    }

    /// <summary>
    /// After the end record: reads the trailer and verifies the checksum over everything read. Only then is what was read
    /// trustworthy.
    /// </summary>
    /// <exception cref="InvalidDataException">The checksum does not match, or the trailer is cut short.</exception>
    public void Finish()
    {
        if (!_ended) throw new InvalidOperationException("the end record has not been read.");
        VerifyTrailer(_stream);
    }

    /// <summary>Reads a 32-byte SHA-256 trailer and compares it with the hash of everything read so far.</summary>
    public static void VerifyTrailer(HashingStream stream)
    {
        var expected = stream.CurrentHash();
        Span<byte> trailer = stackalloc byte[32];
        ReadExactly(stream, trailer);
        if (!CryptographicOperations.FixedTimeEquals(trailer, expected))
            throw new InvalidDataException("checkpoint is corrupted (checksum mismatch).");
    }

    /// <summary>Hands <paramref name="tensor"/> (read by this reader) to the caller: <see cref="Dispose"/> no longer frees it.</summary>
    public void Keep(Tensor tensor) => _created.Remove(tensor);

    /// <summary>Frees every tensor read and not kept.</summary>
    public void Dispose()
    {
        foreach (var t in _created) t.Dispose();
        _created.Clear();
        _stream.Dispose();
    }

    private object? ReadValue(string name, int depth)
    {
        var type = ReadByte();
        switch (type)
        {
            case Tags.Null: return null;
            case Tags.Double: return ReadDouble();
            case Tags.Bool:
                return ReadByte() switch
                {
                    0 => false,
                    1 => true,
                    var b => throw new InvalidDataException($"checkpoint entry '{name}' has byte {b} where a boolean belongs."),
                };
            case Tags.Int: return ReadInt32();
            case Tags.Long: return ReadInt64();
            case Tags.String: return ReadString(name);
            case Tags.Enum: return new CheckpointEnum(ReadString(name), ReadString(name));
            case Tags.Pair: return (ReadDouble(), ReadDouble());
            case Tags.DoubleList:
            {
                var count = ReadCount(name, 8);
                var list = new List<double>();
                for (var i = 0; i < count; i++) list.Add(ReadDouble());
                return list.ToArray();
            }
            case Tags.LongList:
            {
                var count = ReadCount(name, 8);
                var list = new List<long>();
                for (var i = 0; i < count; i++) list.Add(ReadInt64());
                return list.ToArray();
            }
            case Tags.StringList:
            {
                // The smallest string is its 4-byte length.
                var count = ReadCount(name, 4);
                var list = new List<string>();
                for (var i = 0; i < count; i++) list.Add(ReadString(name));
                return list.ToArray();
            }
            case Tags.Tensor: return ReadTensor(name);
            case Tags.Map: return ReadMap(name, depth + 1);
            case Tags.MapList:
            {
                // The smallest map is 8 bytes (an empty name and no entries).
                var count = ReadCount(name, 8);
                var list = new List<CheckpointMap>();
                for (var i = 0; i < count; i++) list.Add(ReadMap($"{name}[{i}]", depth + 1));
                return list.ToArray();
            }
            case Tags.TensorList:
            {
                // The smallest tensor frame is 16 bytes (dtype, ndim, byte count).
                var count = ReadCount(name, 16);
                var list = new List<Tensor>();
                for (var i = 0; i < count; i++) list.Add(ReadTensor($"{name}[{i}]"));
                return list.ToArray();
            }
            default:
                throw new InvalidDataException($"checkpoint entry '{name}' has unknown value type {type}.");
        }
    }

    private CheckpointMap ReadMap(string name, int depth)
    {
        if (depth > CheckpointWriter.MaxMapDepth) throw new InvalidDataException($"checkpoint entry '{name}' nests maps deeper than {CheckpointWriter.MaxMapDepth}.");
        var mapName = ReadString(name);
        // The smallest entry is 5 bytes (an empty key and a type byte).
        var count = ReadCount(name, 5);
        var entries = new List<KeyValuePair<string, object?>>();
        for (var i = 0; i < count; i++)
        {
            var key = ReadString(name);
            entries.Add(new(key, ReadValue($"{name}.{key}", depth)));
        }
        return new CheckpointMap(mapName, entries);
    }

    private Tensor ReadTensor(string name)
    {
        var what = $"tensor '{name}'";
        var dtype = (ScalarType)ReadInt32();
        var ndim = ReadInt32();
        if (ndim < 0 || ndim > TensorBytes.MaxDimensions) throw new InvalidDataException($"{what} has {ndim} dimensions.");
        var shape = new long[ndim];
        for (var i = 0; i < ndim; i++) shape[i] = ReadInt64();
        var expected = TensorBytes.ByteCount(dtype, shape, what);
        var byteCount = ReadInt64();
        if (byteCount != expected)
            throw new InvalidDataException($"{what} of {dtype} [{string.Join(", ", shape)}] needs {expected} bytes, the checkpoint says {byteCount}.");
        if (byteCount > _stream.Remaining) throw new InvalidDataException($"checkpoint is truncated ({what} needs {byteCount} bytes).");
        var tensor = Catch(() => TensorBytes.Read(_stream, dtype, shape, what));
        _created.Add(tensor);
        return tensor;
    }

    private int ReadCount(string name, int minimumBytesEach)
    {
        var count = ReadInt32();
        if (count < 0 || (_stream.KnowsRemaining && count > _stream.Remaining / minimumBytesEach))
            throw new InvalidDataException($"checkpoint entry '{name}' has an invalid count ({count}).");
        return count;
    }

    private string ReadString(string what)
    {
        var length = ReadInt32();
        if (length < 0 || length > MaxStringBytes || length > _stream.Remaining)
            throw new InvalidDataException($"checkpoint has an invalid length ({length}) for the string of {what}.");
        Span<byte> bytes = length <= 256 ? stackalloc byte[length] : new byte[length];
        ReadExactly(_stream, bytes);
        try
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"checkpoint has a string of {what} that is not UTF-8.", e);
        }
    }

    private byte ReadByte()
    {
        Span<byte> b = stackalloc byte[1];
        ReadExactly(_stream, b);
        return b[0];
    }

    private int ReadInt32()
    {
        Span<byte> b = stackalloc byte[4];
        ReadExactly(_stream, b);
        return BinaryPrimitives.ReadInt32LittleEndian(b);
    }

    private long ReadInt64()
    {
        Span<byte> b = stackalloc byte[8];
        ReadExactly(_stream, b);
        return BinaryPrimitives.ReadInt64LittleEndian(b);
    }

    private double ReadDouble() => BitConverter.Int64BitsToDouble(ReadInt64());

    private static void ReadExactly(Stream stream, Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("checkpoint is truncated.", e);
        }
    }

    private static T Catch<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("checkpoint is truncated.", e);
        }
    }

    /// <summary>What <see cref="Next"/> read.</summary>
    public enum RecordKind
    {
        /// <summary>The start of a section.</summary>
        Section,

        /// <summary>A named value.</summary>
        Entry,

        /// <summary>The end of the checkpoint (the trailer follows).</summary>
        End,
    }
}
