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

    // A flat step calls these per parameter: each returns at once and never calls back, blocks or throws across the
    // boundary (libtorch errors are caught on the native side), so the GC transition is skipped.
    [DllImport("LibTorchSharp")]
    [SuppressGCTransition]
    private static extern IntPtr THSTensor_data(IntPtr tensor);

    [DllImport("LibTorchSharp")]
    [SuppressGCTransition]
    private static extern IntPtr THSTensor_grad(IntPtr tensor);

    [DllImport("LibTorchSharp")]
    [SuppressGCTransition]
    private static extern void THSTensor_dispose(IntPtr tensor);

    // c10::TensorImpl::grad() const: a reference to the gradient the tensor's autograd metadata holds (an undefined tensor
    // when there is none). Unlike THSTensor_grad it copies nothing: no handle is allocated, no reference count touched.
    // It never throws. libc10 exports it (TensorImpl is part of its API); it is looked up through LibTorchSharp, whose
    // dependency it is, so the copy of libc10 that made the tensors is the one called. The name is the Itanium C++ ABI's
    // (Linux, macOS); elsewhere the entry point is missing and the self-test below turns the direct reads off.
    [DllImport("LibTorchSharp", EntryPoint = "_ZNK3c1010TensorImpl4gradEv")]
    [SuppressGCTransition]
    private static extern IntPtr TensorImpl_grad(IntPtr tensorImpl);

    private static bool? _available;

    /// <summary>
    /// Whether <see cref="GradIdentity"/> may read gradients directly: <c>c10::TensorImpl::grad()</c> is found, and the
    /// startup self-test found what the direct reads rely on.
    /// </summary>
    public static bool DirectGradientReads { get; } = DirectReadsHold();

    /// <summary>
    /// The address of the tensor's first element (libtorch's <c>data_ptr()</c>), read without creating a managed
    /// tensor: what a flat buffer compares against, thousands of times per step.
    /// </summary>
    public static IntPtr DataPointer(Tensor t) => THSTensor_data(t.Handle);

    /// <summary>
    /// The tensor's identity: the address of the TensorImpl its native handle refers to. A TorchSharp handle is an
    /// <c>at::Tensor*</c>, and an <c>at::Tensor</c> is a single <c>intrusive_ptr&lt;TensorImpl&gt;</c> (PyTorch keeps
    /// that layout fixed: it is how tensors cross its C++/Python boundary); handles to the same tensor share it.
    /// Stable only while a reference to the tensor is held (a freed TensorImpl's address can be reused).
    /// </summary>
    public static IntPtr Identity(Tensor t) => Marshal.ReadIntPtr(t.Handle);

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
    /// The identity (<see cref="Identity"/>) of the parameter's gradient, read in place: one call, no allocation; when
    /// it has none, that of libtorch's undefined tensor. Only where <see cref="DirectGradientReads"/>.
    /// </summary>
    public static IntPtr GradIdentity(Tensor parameter) => Marshal.ReadIntPtr(GradReference(parameter));

    // The at::Tensor that is the tensor's gradient, read in place (it lives in the tensor's autograd metadata, or is a
    // static undefined tensor).
    private static IntPtr GradReference(Tensor tensor) => TensorImpl_grad(Identity(tensor));

    // The direct reads rely on at::Tensor being one TensorImpl pointer and on TensorImpl::grad() returning the autograd
    // metadata's gradient: checked once, against THSTensor_data and TorchSharp's own handles, on known tensors.
    private static bool DirectReadsHold()
    {
        try
        {
            using var scope = NewDisposeScope();
            var buffer = zeros(8, ScalarType.Float32);
            var view = buffer.narrow(0, 2, 3);
            var sameMemory = buffer.narrow(0, 2, 3);
            var parameter = new TorchSharp.Modules.Parameter(zeros(3));
            var none = GradIdentity(parameter);
            parameter.grad = view;
            var grad = GradReference(parameter);
            using var handle = parameter.grad;
            var holds = Marshal.ReadIntPtr(grad) == Identity(view) && Identity(handle!) == Identity(view)
                && Identity(sameMemory) != Identity(view) && none != Identity(view)
                && THSTensor_data(grad) == DataPointer(view) && DataPointer(view) == DataPointer(buffer) + 2 * sizeof(float);
            parameter.grad = sameMemory;
            holds &= GradIdentity(parameter) == Identity(sameMemory);
            parameter.grad = null;
            holds &= GradIdentity(parameter) == none;
            return holds;
        }
#pragma warning disable CA1031 // Any failure of the self-test means the direct reads are not to be trusted; the fallback is exact.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
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
