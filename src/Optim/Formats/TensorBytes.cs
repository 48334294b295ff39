using System;
using System.IO;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Formats;

/// <summary>
/// A tensor's raw bytes to and from a stream in slices of at most <see cref="ChunkBytes"/>, straight between the stream
/// and the tensor's memory (no managed copy of the data), and the checks that come before a tensor is created from
/// untrusted dimensions.
/// </summary>
internal static class TensorBytes
{
    /// <summary>The largest slice copied at once (CPU tensors) or staged on the CPU (tensors on other devices).</summary>
    public const int ChunkBytes = 4 << 20;

    /// <summary>The most dimensions a file may declare (libtorch's own limit is lower in practice).</summary>
    public const int MaxDimensions = 64;

    /// <summary>The element size of the dtypes files may carry, or 0 for any other (refused before anything is created).</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int32 or ScalarType.Float32 => 4,
        ScalarType.Int64 or ScalarType.Float64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.ComplexFloat64 => 16,
        _ => 0,
    };

    /// <summary>
    /// The byte count of a tensor of <paramref name="dtype"/> and <paramref name="shape"/>, overflow-checked, or an
    /// <see cref="InvalidDataException"/> naming <paramref name="what"/>: an unknown dtype, a negative dimension, or a size
    /// that does not fit in 63 bits, even counting zero dimensions as 1 (libtorch would fail with "Storage size
    /// calculation overflowed").
    /// </summary>
    public static long ByteCount(ScalarType dtype, ReadOnlySpan<long> shape, string what)
    {
        var size = ElementSize(dtype);
        if (size == 0) throw new InvalidDataException($"{what} has unsupported dtype {(int)dtype}.");
        // libtorch computes strides from every dimension (zeros counted as 1), so those products must fit as well.
        long bytes = size, span = size;
        foreach (var d in shape)
        {
            if (d < 0) throw new InvalidDataException($"{what} has a negative dimension ({d}).");
            if (d > 1 && span > long.MaxValue / d) throw new InvalidDataException($"{what} has dimensions whose size overflows.");
            span *= Math.Max(d, 1);
            bytes *= d;
        }
        return bytes;
    }

    /// <summary>Writes <paramref name="tensor"/>'s elements in C order as raw bytes.</summary>
    public static void Write(Stream stream, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var flat = tensor.detach();
        // A non-contiguous tensor is copied once (state tensors are contiguous; checkpoints of views are rare).
        if (!flat.is_contiguous()) flat = flat.contiguous();
        flat = flat.reshape(-1);
        var total = flat.numel();
        if (total == 0) return;
        var elementsPerChunk = Math.Max(1, ChunkBytes / (int)flat.ElementSize);
        for (long start = 0; start < total; start += elementsPerChunk)
        {
            using var inner = NewDisposeScope();
            var slice = flat.narrow(0, start, Math.Min(elementsPerChunk, total - start));
            if (slice.device_type != DeviceType.CPU) slice = slice.cpu();
            stream.Write(slice.bytes);
        }
    }

    /// <summary>
    /// Creates a CPU tensor of <paramref name="dtype"/> and <paramref name="shape"/> (already checked with
    /// <see cref="ByteCount"/>) and fills it from <paramref name="stream"/>; end of stream is an
    /// <see cref="EndOfStreamException"/>. The caller owns the tensor.
    /// </summary>
    public static Tensor Read(Stream stream, ScalarType dtype, long[] shape, string what)
    {
        Tensor tensor;
        try
        {
            tensor = empty(shape, dtype);
        }
        catch (ExternalException e)
        {
            // Only a stream whose length is unknown gets here with a size the file cannot hold; a real file is checked first.
            throw new InvalidDataException($"{what} of shape [{string.Join(", ", shape)}] cannot be allocated; the file is damaged or too large for this machine.", e);
        }
        try
        {
            using var scope = NewDisposeScope();
            var flat = tensor.reshape(-1);
            var total = flat.numel();
            var elementsPerChunk = Math.Max(1, ChunkBytes / (int)flat.ElementSize);
            for (long start = 0; start < total; start += elementsPerChunk)
            {
                using var inner = NewDisposeScope();
                stream.ReadExactly(flat.narrow(0, start, Math.Min(elementsPerChunk, total - start)).bytes);
            }
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }
}
