using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
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

    [DllImport("LibTorchSharp")]
    private static extern long THSTensor_storage_offset(IntPtr tensor);

    [DllImport("LibTorchSharp")]
    private static extern long THSTensor_numel(IntPtr tensor);

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

    // Where a dense c10::TensorImpl keeps its storage (an intrusive pointer to the c10::StorageImpl), its storage offset
    // and its element count, and where the StorageImpl keeps its data pointer: the layout of the libtorch TorchSharp
    // 0.107 ships (2.10; the refcounted base's vtable pointer and two counts come first). THSTensor_data reads the same
    // fields through data_ptr(), whose copy-on-write and access checks cost about as much as the rest of a flat step's
    // checks together. Verified by the self-test below against the exported accessors before any use.
    private const int ImplStorage = 16;
    private const int ImplStorageOffset = 152;
    private const int ImplNumel = 160;
    private const int StorageData = 16;

    // Where it keeps its autograd metadata (a unique pointer, null for a tensor that never took part in autograd), and
    // where torch::autograd::AutogradMeta keeps the gradient (an at::Tensor: one TensorImpl pointer).
    private const int ImplAutogradMeta = 24;
    private const int AutogradMetaGrad = 40;

    private static bool? _available;

    /// <summary>
    /// Whether <see cref="GradIdentity"/> and <see cref="DirectDataPointer(Tensor, int)"/> may read tensors in place:
    /// <c>c10::TensorImpl::grad()</c> is found, and the startup self-test found what the direct reads rely on.
    /// </summary>
    public static bool DirectGradientReads { get; } = SelfTest();

    /// <summary>
    /// The address of the tensor's first element (libtorch's <c>data_ptr()</c>), read without creating a managed
    /// tensor: what a flat buffer compares against, thousands of times per step.
    /// </summary>
    public static IntPtr DataPointer(Tensor t) => THSTensor_data(t.Handle);

    /// <summary>
    /// <see cref="DataPointer"/> read in place from the tensor's fields (storage's data plus offset times
    /// <paramref name="elementSize"/>, the tensor's element size in bytes): no call into native code. Zero, as
    /// <c>data_ptr()</c> gives, for a tensor without elements or without storage. Only where
    /// <see cref="DirectGradientReads"/>.
    /// </summary>
    public static IntPtr DirectDataPointer(Tensor t, int elementSize) => DirectDataPointer(Identity(t), elementSize);

    /// <summary><see cref="DirectDataPointer(Tensor, int)"/> of the tensor whose <see cref="Identity"/> is <paramref name="impl"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IntPtr DirectDataPointer(IntPtr impl, int elementSize)
    {
        var storage = Word(impl + ImplStorage);
        return storage == IntPtr.Zero || Int64(impl + ImplNumel) == 0
            ? IntPtr.Zero
            : Word(storage + StorageData) + (nint)(Int64(impl + ImplStorageOffset) * elementSize);
    }

    /// <summary>
    /// Starts loading what <see cref="IdentityOf"/> reads (the handle's <c>at::Tensor</c>) into the cache: a hint, never a
    /// fault, whatever the address holds.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void PrefetchHandle(IntPtr handle) => Prefetch((void*)handle);

    /// <summary>
    /// Starts loading what <see cref="DirectDataPointer(Tensor, int)"/> and <see cref="GradIdentity"/> read from the TensorImpl at
    /// <paramref name="impl"/> (an <see cref="Identity"/>): its first cache line (storage, autograd metadata) and the one
    /// with the storage offset.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void PrefetchImpl(IntPtr impl)
    {
        Prefetch((void*)impl);
        Prefetch((void*)(impl + ImplStorageOffset));
    }

    /// <summary>
    /// Starts loading the autograd metadata of the TensorImpl at <paramref name="impl"/>, which <see cref="GradIdentity"/>
    /// reads; the impl's first line should be in cache already (<see cref="PrefetchImpl"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void PrefetchAutogradMeta(IntPtr impl)
    {
        var meta = Word(impl + ImplAutogradMeta);
        Prefetch((void*)(meta + AutogradMetaGrad));
    }

    /// <summary>
    /// <see cref="GradIdentity"/> of the tensor whose <see cref="Identity"/> is <paramref name="impl"/>, read in place from
    /// its autograd metadata without a call; <see cref="IntPtr.Zero"/> where it has no autograd metadata (then it has no
    /// gradient). Only where <see cref="DirectGradientReads"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IntPtr DirectGradIdentity(IntPtr impl)
    {
        var meta = Word(impl + ImplAutogradMeta);
        return meta == IntPtr.Zero ? IntPtr.Zero : Word(meta + AutogradMetaGrad);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe IntPtr Word(IntPtr address) => *(IntPtr*)address;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe long Int64(IntPtr address) => *(long*)address;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch(void* address)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch0(address);
    }

    /// <summary>
    /// The tensor's identity: the address of the TensorImpl its native handle refers to. A TorchSharp handle is an
    /// <c>at::Tensor*</c>, and an <c>at::Tensor</c> is a single <c>intrusive_ptr&lt;TensorImpl&gt;</c> (PyTorch keeps
    /// that layout fixed: it is how tensors cross its C++/Python boundary); handles to the same tensor share it.
    /// Stable only while a reference to the tensor is held (a freed TensorImpl's address can be reused).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IntPtr Identity(Tensor t) => IdentityOf(t.Handle);

    /// <summary><see cref="Identity"/> of the tensor whose TorchSharp handle is <paramref name="handle"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IntPtr IdentityOf(IntPtr handle) => Word(handle);

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
    public static IntPtr GradIdentity(Tensor parameter) => Word(GradReference(parameter));

    // The at::Tensor that is the tensor's gradient, read in place (it lives in the tensor's autograd metadata, or is a
    // static undefined tensor).
    private static IntPtr GradReference(Tensor tensor) => TensorImpl_grad(Identity(tensor));

    // The direct reads rely on at::Tensor being one TensorImpl pointer, on TensorImpl::grad() returning the autograd
    // metadata's gradient and on the field offsets above: checked once, against libtorch's exported accessors and
    // TorchSharp's own handles, on known tensors. Any mismatch turns every direct read off.
    internal static bool SelfTest()
    {
        try
        {
            using var scope = NewDisposeScope();
            var buffer = zeros(8, ScalarType.Float32);
            var view = buffer.narrow(0, 2, 3);
            var sameMemory = buffer.narrow(0, 2, 3);
            // A leaf that requires gradients, as a parameter is natively: TorchSharp's Parameter constructor would leave
            // behind the wrapper it takes the tensor from, which never counts as disposed.
            var parameter = zeros(3, requires_grad: true);
            var none = GradIdentity(parameter);
            parameter.grad = view;
            var grad = GradReference(parameter);
            using var handle = parameter.grad;
            var holds = Word(grad) == Identity(view) && Identity(handle!) == Identity(view)
                && Identity(sameMemory) != Identity(view) && none != Identity(view)
                && THSTensor_data(grad) == DataPointer(view) && DataPointer(view) == DataPointer(buffer) + 2 * sizeof(float);
            parameter.grad = sameMemory;
            holds &= GradIdentity(parameter) == Identity(sameMemory);
            // DirectGradIdentity's fields: the autograd metadata's gradient lies where TensorImpl::grad() said (compared
            // as addresses before anything is read through them), and a tensor outside autograd has no metadata.
            holds = holds && Word(Identity(parameter) + ImplAutogradMeta) + AutogradMetaGrad == GradReference(parameter)
                && Word(Identity(buffer) + ImplAutogradMeta) == IntPtr.Zero
                && DirectGradIdentity(Identity(parameter)) == Identity(sameMemory);
            parameter.grad = null;
            holds = holds && GradIdentity(parameter) == none && DirectGradIdentity(Identity(parameter)) == none;
            return holds && LayoutHolds();
        }
#pragma warning disable CA1031 // Any failure of the self-test means the direct reads are not to be trusted; the fallback is exact.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    // DirectDataPointer's fields, checked on tensors of several dtypes, offsets and sizes, views, and a parameter moved by
    // set_ (as flat mode moves them). The offset and count fields are compared with the exported accessors. No accessor
    // exports the StorageImpl's address, so the storage field is recognised by how it is shared before it is followed:
    // views of one buffer and a tensor set_ to another share it, other tensors do not (the other field shared by views,
    // the version counter, is not shared after set_).
    private static bool LayoutHolds()
    {
        using var scope = NewDisposeScope();
        var floats = zeros(4096, ScalarType.Float32);
        var doubles = zeros(64, ScalarType.Float64);
        var bytes = zeros(300, ScalarType.Int8);
        var probes = new[]
        {
            floats, floats.narrow(0, 1237, 5), floats.narrow(0, 3001, 17).view(1, 17), doubles.narrow(0, 41, 3), bytes.narrow(0, 257, 2),
            floats.narrow(0, 99, 0),
        };
        foreach (var t in probes)
        {
            if (Int64(Identity(t) + ImplStorageOffset) != THSTensor_storage_offset(t.Handle)
                || Int64(Identity(t) + ImplNumel) != THSTensor_numel(t.Handle))
                return false;
        }
        IntPtr StorageOf(Tensor t) => Word(Identity(t) + ImplStorage);
        var reSet = zeros(3, ScalarType.Float64);
        using (no_grad()) reSet.set_(doubles);
        if (StorageOf(probes[1]) != StorageOf(floats) || StorageOf(probes[2]) != StorageOf(floats) || StorageOf(reSet) != StorageOf(doubles)
            || StorageOf(doubles) == StorageOf(floats) || StorageOf(bytes) == StorageOf(floats) || StorageOf(bytes) == StorageOf(doubles))
            return false;
        foreach (var t in probes)
        {
            if (Word(StorageOf(t) + StorageData) != THSStorage_data_ptr(t.Handle)
                || DirectDataPointer(t, (int)t.ElementSize) != THSTensor_data(t.Handle))
                return false;
        }
        var parameter = zeros(5, requires_grad: true);
        var before = DirectDataPointer(parameter, sizeof(float));
        if (before != THSTensor_data(parameter.Handle)) return false;
        using (no_grad()) parameter.set_(probes[1]);
        var after = DirectDataPointer(parameter, sizeof(float));
        return after != before && after == THSTensor_data(parameter.Handle) && after == THSTensor_data(probes[1].Handle);
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
