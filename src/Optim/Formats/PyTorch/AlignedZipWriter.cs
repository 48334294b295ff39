using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.IO.Hashing;
using System.Text;

namespace Optim.Formats.PyTorch;

/// <summary>
/// Writes a zip archive as PyTorch's <c>PyTorchStreamWriter</c> does: every entry stored (not compressed), its data
/// starting at a multiple of the alignment (padding in an extra field, id "FB"), so that PyTorch can read or map the
/// tensors in place. Works on streams that cannot seek too: there each entry's CRC is computed before its header is written.
/// Archives are limited to 4 GiB and 65,535 entries (no zip64).
/// </summary>
internal sealed class AlignedZipWriter(Stream stream, int alignment)
{
    private const ushort DosDate = (1 << 5) | 1; // 1980-01-01, the earliest date zip can say

    // Where a local header holds the entry's CRC-32.
    private const int CrcField = 14;

    private readonly List<(string Name, uint Crc, uint Size, uint Offset)> _central = new();
    private long _position;
    private bool _finished;

    /// <summary>Adds an entry holding <paramref name="data"/>.</summary>
    public void Add(string name, byte[] data) => Add(name, data.Length, s => s.Write(data));

    /// <summary>
    /// Adds an entry of <paramref name="length"/> bytes that <paramref name="write"/> writes: once, and the CRC patched
    /// into the header afterwards, on a stream that can seek; twice (first for the CRC) on one that cannot.
    /// </summary>
    /// <exception cref="NotSupportedException">The archive would pass 4 GiB or 65,535 entries.</exception>
    public void Add(string name, long length, Action<Stream> write)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var headerEnd = _position + 30 + nameBytes.Length + 4;
        var padding = (int)((alignment - headerEnd % alignment) % alignment);
        if (headerEnd + padding + length > uint.MaxValue || _central.Count == ushort.MaxValue)
            throw new NotSupportedException("PyTorch checkpoints over 4 GiB (zip64) are not supported yet.");
        var seekable = stream.CanSeek;
        uint crc = 0;
        if (!seekable) crc = Written(name, length, write, inner: null);
        var offset = (uint)_position;
        var headerAt = seekable ? stream.Position : 0;
        Span<byte> header = stackalloc byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 20);      // version needed
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 0);       // flags
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], 0);       // stored
        BinaryPrimitives.WriteUInt16LittleEndian(header[10..], 0);      // time
        BinaryPrimitives.WriteUInt16LittleEndian(header[12..], DosDate);
        BinaryPrimitives.WriteUInt32LittleEndian(header[CrcField..], crc);
        BinaryPrimitives.WriteUInt32LittleEndian(header[18..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[22..], (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(header[26..], (ushort)nameBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(header[28..], (ushort)(4 + padding));
        Emit(header);
        Emit(nameBytes);
        Span<byte> extra = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(extra, 0x4246); // "FB"
        BinaryPrimitives.WriteUInt16LittleEndian(extra[2..], (ushort)padding);
        Emit(extra);
        for (var i = 0; i < padding; i++) Emit("Z"u8);
        var written = Written(name, length, write, stream);
        _position += length;
        if (seekable)
        {
            var end = stream.Position;
            stream.Position = headerAt + CrcField;
            Span<byte> field = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(field, written);
            stream.Write(field);
            stream.Position = end;
            crc = written;
        }
        else if (written != crc)
        {
            throw new InvalidOperationException($"entry '{name}' wrote different bytes on its second pass.");
        }
        _central.Add((name, crc, (uint)length, offset));
    }

    // Runs an entry's writer into `inner` (or nowhere) and returns the CRC-32 of what it wrote, which must be `length` bytes.
    private static uint Written(string name, long length, Action<Stream> write, Stream? inner)
    {
        var sink = new CrcStream(inner);
        write(sink);
        if (sink.Length != length) throw new InvalidOperationException($"entry '{name}' wrote {sink.Length} bytes, not {length}.");
        return sink.Value;
    }

    /// <summary>Writes the central directory; the archive is complete after this.</summary>
    public void Finish()
    {
        if (_finished) return;
        _finished = true;
        var start = _position;
        Span<byte> entry = stackalloc byte[46];
        foreach (var (name, crc, length, offset) in _central)
        {
            var nameBytes = Encoding.UTF8.GetBytes(name);
            BinaryPrimitives.WriteUInt32LittleEndian(entry, 0x02014b50);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[4..], 20);   // made by
            BinaryPrimitives.WriteUInt16LittleEndian(entry[6..], 20);   // needed
            BinaryPrimitives.WriteUInt16LittleEndian(entry[8..], 0);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[10..], 0);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[12..], 0);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[14..], DosDate);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[16..], crc);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[20..], length);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[24..], length);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[28..], (ushort)nameBytes.Length);
            entry[30..42].Clear();                                      // extra, comment, disk, attributes
            BinaryPrimitives.WriteUInt32LittleEndian(entry[42..], offset);
            Emit(entry);
            Emit(nameBytes);
        }
        var size = _position - start;
        if (_position > uint.MaxValue) throw new NotSupportedException("PyTorch checkpoints over 4 GiB (zip64) are not supported yet.");
        Span<byte> end = stackalloc byte[22];
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
        BinaryPrimitives.WriteUInt16LittleEndian(end[4..], 0);
        BinaryPrimitives.WriteUInt16LittleEndian(end[6..], 0);
        BinaryPrimitives.WriteUInt16LittleEndian(end[8..], (ushort)_central.Count);
        BinaryPrimitives.WriteUInt16LittleEndian(end[10..], (ushort)_central.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(end[12..], (uint)size);
        BinaryPrimitives.WriteUInt32LittleEndian(end[16..], (uint)start);
        BinaryPrimitives.WriteUInt16LittleEndian(end[20..], 0);
        Emit(end);
        stream.Flush();
    }

    private void Emit(ReadOnlySpan<byte> bytes)
    {
        stream.Write(bytes);
        _position += bytes.Length;
    }

    // A write-only sink that computes the CRC-32 (the zip polynomial) of what is written, counts it, and passes it on.
    private sealed class CrcStream(Stream? inner) : WriteOnlyStream
    {
        private readonly Crc32 _crc = new();

        public uint Value => _crc.GetCurrentHashAsUInt32();

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _crc.Append(buffer);
            inner?.Write(buffer);
            Count += buffer.Length;
        }
    }

    private abstract class WriteOnlyStream : Stream
    {
        protected long Count { get; set; }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Count;
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public abstract override void Write(ReadOnlySpan<byte> buffer);
    }
}
