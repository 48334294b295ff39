using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Kernels;

/// <summary>
/// Which tensors share memory. TorchSharp binds no <c>data_ptr</c>; its native library exports the storage's data
/// pointer, which with the storage offset, sizes and strides gives each tensor's byte range.
/// </summary>
internal static class TensorMemory
{
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSStorage_data_ptr(IntPtr tensor);

    // A flat step calls these three per parameter: each returns at once and never calls back, blocks or throws across
    // the boundary (libtorch errors are caught on the native side), so the GC transition is skipped.
    [DllImport("LibTorchSharp")]
    [SuppressGCTransition]
    private static extern IntPtr THSTensor_data(IntPtr tensor);

    [DllImport("LibTorchSharp")]
    [SuppressGCTransition]
    private static extern IntPtr THSTensor_grad(IntPtr tensor);

    [DllImport("LibTorchSharp")]
    [SuppressGCTransition]
    private static extern void THSTensor_dispose(IntPtr tensor);

    private static bool? _available;

    /// <summary>
    /// The address of the tensor's first element (libtorch's <c>data_ptr()</c>), read without creating a managed
    /// tensor: what a flat buffer compares against, thousands of times per step.
    /// </summary>
    public static IntPtr DataPointer(Tensor t) => THSTensor_data(t.Handle);

    /// <summary>
    /// The address of the first element of the parameter's gradient, or <see cref="IntPtr.Zero"/> when it has none.
    /// <see cref="Tensor.grad"/> would create (and a dispose scope later free) a managed tensor per call.
    /// </summary>
    public static IntPtr GradDataPointer(Tensor parameter)
    {
        var grad = THSTensor_grad(parameter.Handle);
        if (grad == IntPtr.Zero) return IntPtr.Zero;
        try
        {
            return THSTensor_data(grad);
        }
        finally
        {
            THSTensor_dispose(grad);
        }
    }

    /// <summary>
    /// The pairs of tensors (indices into <paramref name="tensors"/>) whose memory overlaps, or null where the pointer
    /// cannot be read (then nothing is known). Tensors without memory (meta, empty) overlap nothing.
    /// </summary>
    public static (int First, int Second)? FirstOverlap(IReadOnlyList<Tensor> tensors)
    {
        var ranges = new List<(ulong Start, ulong End, int Index, DeviceType Device, int DeviceIndex)>(tensors.Count);
        for (var i = 0; i < tensors.Count; i++)
        {
            var range = ByteRange(tensors[i]);
            if (range is null)
            {
                if (_available == false) return null;
                continue;
            }
            ranges.Add((range.Value.Start, range.Value.End, i, tensors[i].device_type, tensors[i].device_index));
        }
        ranges.Sort((a, b) => a.Start.CompareTo(b.Start));
        for (var i = 1; i < ranges.Count; i++)
        {
            // Sorted by start: any overlap shows between neighbours or with an earlier, longer range.
            for (var j = i - 1; j >= 0 && ranges[j].End > ranges[i].Start; j--)
            {
                if (ranges[j].Device == ranges[i].Device && ranges[j].DeviceIndex == ranges[i].DeviceIndex)
                    return (Math.Min(ranges[i].Index, ranges[j].Index), Math.Max(ranges[i].Index, ranges[j].Index));
            }
        }
        return null;
    }

    // [start, end) of the bytes the tensor's elements occupy, or null.
    private static (ulong Start, ulong End)? ByteRange(Tensor t)
    {
        if (t.device_type == DeviceType.META || t.numel() == 0 || _available == false) return null;
        IntPtr data;
        try
        {
            data = THSStorage_data_ptr(t.Handle);
            _available = true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _available = false;
            return null;
        }
        if (data == IntPtr.Zero) return null;
        long extent = 1;
        for (var d = 0; d < t.ndim; d++) extent += (t.size(d) - 1) * Math.Abs(t.stride(d));
        var elementSize = (long)t.ElementSize;
        var start = (ulong)data + (ulong)(t.storage_offset() * elementSize);
        return (start, start + (ulong)(extent * elementSize));
    }
}
