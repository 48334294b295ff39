using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Text;
using static TorchSharp.torch;

namespace Optim.Formats;

/// <summary>A named, ordered map of values (any value a checkpoint entry can hold, nested maps included).</summary>
/// <param name="Name">What the map is (e.g. a scheduler's class name).</param>
/// <param name="Entries">The entries, in order.</param>
internal sealed record CheckpointMap(string Name, IReadOnlyList<KeyValuePair<string, object?>> Entries);

/// <summary>
/// Writes Optim's checkpoint container, version 2: named sections of named values and tensors, streamed straight to the
/// destination and checksummed as they go. Any checkpoint (an optimizer's state, a scheduler's, a gradient scaler's, a
/// whole training run's) uses this container and gets the same guarantees from <see cref="CheckpointReader"/>.
/// </summary>
/// <remarks>
/// <para>Layout (little-endian; strings are an i32 byte count and UTF-8):</para>
/// <code>
/// header:  magic "OPTIMCKP" (8 bytes) | version (u16) = 2 | kind (string, e.g. "optimizer")
/// records: 0x01 section: name (string)
///          0x02 entry:   name (string) | value
///          0x7F end
/// trailer: SHA-256 of every byte before it, header included (32 bytes)
/// value:   type (u8) | payload
///          0x01 double f64 | 0x02 bool u8 (0 or 1) | 0x03 int i32 | 0x04 long i64 | 0x05 string | 0x06 null
///          0x07 enum: type's full name (string) | member name (string)
///          0x08 pair of doubles: f64 f64 | 0x09 list of doubles: count (i32), f64 each
///          0x0A list of longs: count (i32), i64 each
///          0x0B tensor: dtype (i32, TorchSharp's ScalarType) | ndim (i32) | dims (i64 each) | byte count (i64) | raw
///               elements in C order
///          0x0C list of tensors: count (i32) | tensors as above, without the type byte
///          0x0D map: name (string) | count (i32) | count times: key (string) | value
///          0x0E list of maps: count (i32) | maps as above, without the type byte
///          0x0F list of strings: count (i32) | strings
/// </code>
/// <para>Maps nest (a map's value may be a map or a list of maps) to a depth of <see cref="MaxMapDepth"/>.</para>
/// <para>
/// Memory while writing is a small buffer: tensor bytes go from the tensor's memory to the stream in slices of
/// <see cref="TensorBytes.ChunkBytes"/> (tensors on other devices are staged slice by slice). Nothing limits the size of
/// a tensor or of the file.
/// </para>
/// </remarks>
internal sealed class CheckpointWriter : IDisposable
{
    /// <summary>The first eight bytes of every Optim checkpoint.</summary>
    public static ReadOnlySpan<byte> Magic => "OPTIMCKP"u8;

    /// <summary>The container version this writer produces.</summary>
    public const ushort Version = 2;

    /// <summary>How deep maps may nest (a map at the top of an entry is depth 1).</summary>
    public const int MaxMapDepth = 32;

    private readonly BufferedStream _buffer;
    private readonly HashingStream _hashing;
    private bool _finished;

    /// <summary>Starts a checkpoint of <paramref name="kind"/> on <paramref name="stream"/> (left open).</summary>
    public CheckpointWriter(Stream stream, string kind)
    {
        ArgumentNullException.ThrowIfNull(stream);
        _buffer = new BufferedStream(new NonClosingStream(stream), 1 << 16);
        _hashing = new HashingStream(_buffer, writing: true);
        _hashing.Write(Magic);
        WriteUInt16(Version);
        WriteString(kind);
    }

    /// <summary>Starts a section; the entries that follow belong to it.</summary>
    public void BeginSection(string name)
    {
        WriteByte(Tags.Section);
        WriteString(name);
    }

    /// <summary>
    /// Writes one named value: a double, bool, int, long, string or null, enum, (double, double), list of doubles, list
    /// of longs, list of strings, tensor or list of tensors.
    /// </summary>
    /// <exception cref="ArgumentException">Another type of value.</exception>
    public void Write(string name, object? value)
    {
        WriteByte(Tags.Entry);
        WriteString(name);
        WriteValue(name, value, depth: 0);
    }

    private void WriteValue(string name, object? value, int depth)
    {
        switch (value)
        {
            case null: WriteByte(Tags.Null); break;
            case double d: WriteByte(Tags.Double); WriteDouble(d); break;
            case bool b: WriteByte(Tags.Bool); WriteByte(b ? (byte)1 : (byte)0); break;
            case int i: WriteByte(Tags.Int); WriteInt32(i); break;
            case long l: WriteByte(Tags.Long); WriteInt64(l); break;
            case string s: WriteByte(Tags.String); WriteString(s); break;
            case Enum e:
                WriteByte(Tags.Enum);
                WriteString(e.GetType().FullName!);
                WriteString(e.ToString());
                break;
            case ValueTuple<double, double> pair: WriteByte(Tags.Pair); WriteDouble(pair.Item1); WriteDouble(pair.Item2); break;
            case Tensor t: WriteByte(Tags.Tensor); WriteTensor(t); break;
            case CheckpointMap map: WriteByte(Tags.Map); WriteMap(name, map, depth + 1); break;
            case IReadOnlyList<CheckpointMap> maps:
                WriteByte(Tags.MapList);
                WriteInt32(maps.Count);
                foreach (var map in maps) WriteMap(name, map, depth + 1);
                break;
            case IReadOnlyList<Tensor> tensors:
                WriteByte(Tags.TensorList);
                WriteInt32(tensors.Count);
                foreach (var t in tensors) WriteTensor(t);
                break;
            case IReadOnlyList<double> doubles:
                WriteByte(Tags.DoubleList);
                WriteInt32(doubles.Count);
                foreach (var d in doubles) WriteDouble(d);
                break;
            case IReadOnlyList<string> strings:
                WriteByte(Tags.StringList);
                WriteInt32(strings.Count);
                foreach (var s in strings) WriteString(s);
                break;
            case IReadOnlyList<long> longs:
                WriteByte(Tags.LongList);
                WriteInt32(longs.Count);
                foreach (var l in longs) WriteInt64(l);
                break;
            default:
                throw new ArgumentException($"'{name}' is a {value.GetType().Name}, which checkpoints cannot hold.", nameof(value));
        }
    }

    /// <summary>Ends the checkpoint: the end record and the checksum, then flushes.</summary>
    public void Finish()
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        WriteByte(Tags.End);
        _buffer.Write(_hashing.CurrentHash());
        _buffer.Flush();
        _finished = true;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _hashing.Dispose();
        _buffer.Dispose();
    }

    private void WriteMap(string name, CheckpointMap map, int depth)
    {
        ArgumentNullException.ThrowIfNull(map, name);
        if (depth > MaxMapDepth) throw new ArgumentException($"'{name}' nests maps deeper than {MaxMapDepth}.", nameof(map));
        WriteString(map.Name);
        WriteInt32(map.Entries.Count);
        foreach (var (key, value) in map.Entries)
        {
            WriteString(key);
            WriteValue($"{name}.{key}", value, depth);
        }
    }

    private void WriteTensor(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.IsInvalid) throw new ObjectDisposedException(nameof(Tensor), "a checkpoint cannot hold a disposed tensor");
        var shape = tensor.shape;
        WriteInt32((int)tensor.dtype);
        WriteInt32(shape.Length);
        foreach (var d in shape) WriteInt64(d);
        WriteInt64(TensorBytes.ByteCount(tensor.dtype, shape, "tensor"));
        TensorBytes.Write(_hashing, tensor);
    }

    private void WriteByte(byte value) => _hashing.Write(new ReadOnlySpan<byte>(in value));

    private void WriteUInt16(ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        _hashing.Write(b);
    }

    private void WriteInt32(int value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, value);
        _hashing.Write(b);
    }

    private void WriteInt64(long value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, value);
        _hashing.Write(b);
    }

    private void WriteDouble(double value) => WriteInt64(BitConverter.DoubleToInt64Bits(value));

    private void WriteString(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        WriteInt32(bytes.Length);
        _hashing.Write(bytes);
    }

    /// <summary>The record and value type bytes.</summary>
    internal static class Tags
    {
        public const byte Section = 0x01, Entry = 0x02, End = 0x7F;
        public const byte Double = 0x01, Bool = 0x02, Int = 0x03, Long = 0x04, String = 0x05, Null = 0x06, Enum = 0x07,
            Pair = 0x08, DoubleList = 0x09, LongList = 0x0A, Tensor = 0x0B, TensorList = 0x0C, Map = 0x0D, MapList = 0x0E,
            StringList = 0x0F;
    }

    // The writer's buffer must not close the caller's stream.
    private sealed class NonClosingStream(Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);
    }
}
