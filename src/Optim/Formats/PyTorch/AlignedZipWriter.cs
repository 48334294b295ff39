using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Optim.Formats.PyTorch;

/// <summary>
/// Writes a zip archive as PyTorch's <c>PyTorchStreamWriter</c> does: every entry stored (not compressed), its data
/// starting at a multiple of the alignment (padding in an extra field, id "FB"), so that PyTorch can read or map the
/// tensors in place. Works on streams that cannot seek: each entry's CRC is computed before its header is written.
/// Archives are limited to 4 GiB and 65,535 entries (no zip64).
/// </summary>
internal sealed class AlignedZipWriter(Stream stream, int alignment)
{
    private const ushort DosDate = (1 << 5) | 1; // 1980-01-01, the earliest date zip can say

    private readonly List<(string Name, uint Crc, uint Size, uint Offset)> _central = new();
    private long _position;
    private bool _finished;

    /// <summary>Adds an entry holding <paramref name="data"/>.</summary>
    public void Add(string name, byte[] data) => Add(name, data.Length, s => s.Write(data));

    /// <summary>Adds an entry of <paramref name="length"/> bytes that <paramref name="write"/> writes (called twice: once for the CRC).</summary>
    /// <exception cref="NotSupportedException">The archive would pass 4 GiB or 65,535 entries.</exception>
    public void Add(string name, long length, Action<Stream> write)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var headerEnd = _position + 30 + nameBytes.Length + 4;
        var padding = (int)((alignment - headerEnd % alignment) % alignment);
        if (headerEnd + padding + length > uint.MaxValue || _central.Count == ushort.MaxValue)
            throw new NotSupportedException("PyTorch checkpoints over 4 GiB (zip64) are not supported yet.");
        var crc = new Crc32Stream();
        write(crc);
        if (crc.Length != length) throw new InvalidOperationException($"entry '{name}' wrote {crc.Length} bytes, not {length}.");
        var offset = (uint)_position;
        Span<byte> header = stackalloc byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0x04034b50);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 20);      // version needed
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 0);       // flags
        BinaryPrimitives.WriteUInt16LittleEndian(header[8..], 0);       // stored
        BinaryPrimitives.WriteUInt16LittleEndian(header[10..], 0);      // time
        BinaryPrimitives.WriteUInt16LittleEndian(header[12..], DosDate);
        BinaryPrimitives.WriteUInt32LittleEndian(header[14..], crc.Value);
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
        var counting = new CountingStream(stream);
        write(counting);
        if (counting.Length != length) throw new InvalidOperationException($"entry '{name}' wrote {counting.Length} bytes, not {length}.");
        _position += length;
        _central.Add((name, crc.Value, (uint)length, offset));
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

    // A write-only sink that passes bytes on and counts them.
    private sealed class CountingStream(Stream inner) : WriteOnlyStream
    {
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Count += buffer.Length;
        }
    }

    // A write-only sink that computes the CRC-32 (the zip polynomial) of what is written.
    private sealed class Crc32Stream : WriteOnlyStream
    {
        private static readonly uint[] Table = MakeTable();
        private uint _crc = 0xffffffff;

        public uint Value => ~_crc;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            var crc = _crc;
            foreach (var b in buffer) crc = Table[(crc ^ b) & 0xff] ^ (crc >> 8);
            _crc = crc;
            Count += buffer.Length;
        }

        private static uint[] MakeTable()
        {
            var table = new uint[256];
            for (uint i = 0; i < 256; i++)
            {
                var c = i;
                for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xedb88320 ^ (c >> 1) : c >> 1;
                table[i] = c;
            }
            return table;
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
