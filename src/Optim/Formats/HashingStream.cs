using System;
using System.IO;
using System.Security.Cryptography;

namespace Optim.Formats;

/// <summary>
/// A pass-through stream that feeds every byte written (or read) to an incremental SHA-256 and counts them. Reads ask
/// the inner stream for exactly what the caller asked, never more, so a checkpoint inside a longer stream is read to
/// its end and no further.
/// </summary>
internal sealed class HashingStream : Stream
{
    private readonly Stream _inner;
    private readonly bool _writing;
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public HashingStream(Stream inner, bool writing)
    {
        _inner = inner;
        _writing = writing;
    }

    /// <summary>The bytes that went through so far.</summary>
    public long Count { get; private set; }

    /// <summary>What the inner stream still holds when it knows its length, else <see cref="long.MaxValue"/>.</summary>
    public long Remaining => _inner.CanSeek ? Math.Max(0, _inner.Length - _inner.Position) : long.MaxValue;

    /// <summary>Whether <see cref="Remaining"/> is known.</summary>
    public bool KnowsRemaining => _inner.CanSeek;

    /// <summary>The hash of every byte so far; hashing continues afterwards.</summary>
    public byte[] CurrentHash() => _hash.GetCurrentHash();

    public override bool CanRead => !_writing;

    public override bool CanSeek => false;

    public override bool CanWrite => _writing;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => Count;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (!_writing) throw new NotSupportedException();
        _hash.AppendData(buffer);
        _inner.Write(buffer);
        Count += buffer.Length;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_writing) throw new NotSupportedException();
        var n = _inner.Read(buffer);
        _hash.AppendData(buffer[..n]);
        Count += n;
        return n;
    }

    public override void Flush() => _inner.Flush();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}
