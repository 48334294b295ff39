using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Optim.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim.Utils;

/// <summary>
/// Gradient clipping as PyTorch 2.x's <c>torch.nn.utils</c>: <see cref="clip_grad_norm_"/>,
/// <see cref="clip_grad_value_"/>, <see cref="get_total_norm"/> and <see cref="clip_grads_with_norm_"/>, with the same
/// op order (so the same bits on CPU) and the foreach path through ATen's <c>_foreach_norm</c>,
/// <c>_foreach_mul_</c> and <c>_foreach_clamp_*_</c>, one call per (device, dtype).
/// </summary>
/// <remarks>
/// <para>
/// <c>foreach</c>: null (the default) uses the foreach kernels for CPU and CUDA tensors and per-tensor ops elsewhere;
/// true requires them; false always runs per tensor. On CPU both give the same bits.
/// </para>
/// <para>
/// Unlike TorchSharp's <c>torch.nn.utils.clip_grad_norm_</c> (libtorch's C++ version, which reads the norm back to the
/// host, computes the clip coefficient in double and multiplies only when it is below 1), the norm stays a tensor and
/// the coefficient is PyTorch's float tensor <c>clamp(max_norm / (total_norm + 1e-6), max=1)</c>, applied always: no
/// host synchronization, and PyTorch's bits.
/// </para>
/// </remarks>
public static class ClipGrad
{
    /// <summary>
    /// Scales the gradients of <paramref name="parameters"/> in place so that their total norm (the norm of all
    /// gradients as one vector) is at most <paramref name="max_norm"/>.
    /// </summary>
    /// <param name="parameters">The parameters (or any tensors) whose gradients to clip; ones without a gradient are skipped.</param>
    /// <param name="max_norm">The largest total norm.</param>
    /// <param name="norm_type">The p of the p-norm; <see cref="double.PositiveInfinity"/> for the max norm.</param>
    /// <param name="error_if_nonfinite">Throw, changing nothing, when the total norm is NaN or infinite (reads the device).</param>
    /// <param name="foreach">See the class remarks.</param>
    /// <returns>The total norm of the gradients before clipping, a 0-dim tensor in the caller's dispose scope.</returns>
    /// <exception cref="InvalidOperationException">The norm is not finite and <paramref name="error_if_nonfinite"/> is set.</exception>
    public static Tensor clip_grad_norm_(IEnumerable<Tensor> parameters, double max_norm, double norm_type = 2.0,
        bool error_if_nonfinite = false, bool? @foreach = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var list = parameters.ToList();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var groups = ByDeviceAndDtype(Gradients(list));
        var totalNorm = TotalNorm(groups, norm_type, error_if_nonfinite, @foreach);
        ClipWithNorm(groups, max_norm, totalNorm, @foreach);
        return totalNorm.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The norm of <paramref name="tensors"/> taken together as one vector: the <paramref name="norm_type"/>-norm of
    /// their individual norms.
    /// </summary>
    /// <param name="tensors">The tensors (typically gradients).</param>
    /// <param name="norm_type">The p of the p-norm; <see cref="double.PositiveInfinity"/> for the max norm.</param>
    /// <param name="error_if_nonfinite">Throw when the total norm is NaN or infinite (reads the device).</param>
    /// <param name="foreach">See the class remarks.</param>
    /// <returns>A 0-dim tensor on the first tensor's device, in the caller's dispose scope; 0.0 for no tensors.</returns>
    public static Tensor get_total_norm(IEnumerable<Tensor> tensors, double norm_type = 2.0, bool error_if_nonfinite = false, bool? @foreach = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return TotalNorm(ByDeviceAndDtype(tensors.ToList()), norm_type, error_if_nonfinite, @foreach).MoveToOuterDisposeScope();
    }

    // get_total_norm over tensors already grouped (in the current dispose scope).
    private static Tensor TotalNorm(List<List<Tensor>> groups, double norm_type, bool error_if_nonfinite, bool? @foreach)
    {
        if (groups.Count == 0) return torch.zeros(Array.Empty<long>(), get_default_dtype());
        var firstDevice = groups[0][0].device;
        // PyTorch stacks the per-tensor norms of every group, group after group; concatenating each group's vector of
        // norms gives that same vector.
        var norms = groups.Select(group => GroupNorms(group, norm_type, UseForeach(@foreach, group[0]))).ToList();
        var allNorms = norms.Count == 1 ? norms[0] : torch.cat(norms.Select(n => n.to(firstDevice)).ToList(), 0);
        var totalNorm = Aten.VectorNorm(allNorms, norm_type);
        if (error_if_nonfinite && torch.logical_or(totalNorm.isnan(), totalNorm.isinf()).item<bool>())
            throw new InvalidOperationException(
                $"The total norm of order {PythonFloat(norm_type)} for gradients from `parameters` is non-finite, so it cannot be clipped. " +
                "To disable this error and scale the gradients by the non-finite norm anyway, set `error_if_nonfinite=False`");
        return totalNorm;
    }

    /// <summary>
    /// Scales the gradients of <paramref name="parameters"/> in place by <c>min(1, max_norm / (total_norm + 1e-6))</c>,
    /// a norm computed beforehand (<see cref="get_total_norm"/>, possibly over more parameters).
    /// </summary>
    /// <param name="parameters">The parameters whose gradients to scale.</param>
    /// <param name="max_norm">The largest total norm.</param>
    /// <param name="total_norm">The total norm, a one-element tensor.</param>
    /// <param name="foreach">See the class remarks.</param>
    public static void clip_grads_with_norm_(IEnumerable<Tensor> parameters, double max_norm, Tensor total_norm, bool? @foreach = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(total_norm);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        ClipWithNorm(ByDeviceAndDtype(Gradients(parameters.ToList())), max_norm, total_norm, @foreach);
    }

    /// <summary>Clamps every gradient of <paramref name="parameters"/> to [-clip_value, clip_value] in place.</summary>
    /// <param name="parameters">The parameters whose gradients to clamp.</param>
    /// <param name="clip_value">The largest absolute value.</param>
    /// <param name="foreach">See the class remarks.</param>
    public static void clip_grad_value_(IEnumerable<Tensor> parameters, double clip_value, bool? @foreach = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var group in ByDeviceAndDtype(Gradients(parameters.ToList())))
        {
            if (UseForeach(@foreach, group[0]))
            {
                Aten.ForeachClampMin_(group, -clip_value);
                Aten.ForeachClampMax_(group, clip_value);
            }
            else
            {
                foreach (var g in group) g.clamp_(S(-clip_value), S(clip_value));
            }
        }
    }

    /// <summary>Tensors of at most this many elements are normed in batches on the CPU foreach path (see <see cref="GroupNorms"/>).</summary>
    internal const long BatchedNormMaxElements = 16_384;

    /// <summary>
    /// A batch holds at most this many elements: ATen's grain size (at::internal::GRAIN_SIZE), below which its CPU
    /// kernels stay on the calling thread. Larger batches were no faster on two cores, and on a loaded machine a parallel
    /// region that waits for a descheduled worker made the batched path slower than TorchSharp's (57 vs 37 ms for
    /// 2,000 × 100 floats with two ATen threads, measured).
    /// </summary>
    private const long BatchedNormChunkElements = 32_768;

    // The norms of one (device, dtype) group, in order, as a 1-D tensor: `_foreach_norm` (or one vector_norm per tensor
    // without foreach). On the CPU, ATen's _foreach_norm runs one full reduction per tensor (about a microsecond of set-up
    // each, which is most of the time for small tensors); instead, tensors of one size are stacked and normed row by row
    // in one vector_norm(dim=1), which gives the same bits as a reduction per tensor (tested for every dtype and norm
    // type, ClipGradTests) at a fraction of the cost. Tensors of a size met once, or large ones, take _foreach_norm.
    private static Tensor GroupNorms(List<Tensor> group, double ord, bool @foreach)
    {
        if (!@foreach) return torch.stack(group.Select(t => Aten.VectorNorm(t, ord)).ToList());
        if (group[0].device_type != DeviceType.CPU) return torch.stack(Aten.ForeachNorm(group, ord));

        var bySize = new Dictionary<long, List<int>>();
        var sizes = new long[group.Count];
        for (var i = 0; i < group.Count; i++)
        {
            sizes[i] = group[i].numel();
            if (sizes[i] > BatchedNormMaxElements || sizes[i] == 0) continue;
            if (!bySize.TryGetValue(sizes[i], out var indices)) bySize[sizes[i]] = indices = new List<int>();
            indices.Add(i);
        }
        var batched = bySize.Where(e => e.Value.Count > 1).ToList();
        if (batched.Count == 0) return torch.stack(Aten.ForeachNorm(group, ord));
        if (batched.Count == 1 && batched[0].Value.Count == group.Count && (long)group.Count * sizes[0] <= BatchedNormChunkElements)
            return RowNorms(group, ord);

        Tensor? result = null;
        void Place(IReadOnlyList<int> indices, Tensor norms)
        {
            result ??= torch.empty(group.Count, norms.dtype, norms.device);
            result.index_copy_(0, torch.tensor(indices.Select(i => (long)i).ToArray()), norms);
        }
        foreach (var (size, indices) in batched)
        {
            var rowsPerChunk = (int)Math.Max(1, BatchedNormChunkElements / size);
            foreach (var chunk in indices.Chunk(rowsPerChunk)) Place(chunk, RowNorms(chunk.Select(i => group[i]).ToList(), ord));
        }
        var rest = Enumerable.Range(0, group.Count).Where(i => !bySize.TryGetValue(sizes[i], out var l) || l.Count < 2).ToList();
        if (rest.Count > 0) Place(rest, torch.stack(Aten.ForeachNorm(rest.Select(i => group[i]).ToList(), ord)));
        return result!;
    }

    // Tensors of one element count, stacked as rows. Tensors of one shape (the common case) are stacked as they are and
    // the stack flattened once; otherwise each is flattened first.
    private static Tensor RowNorms(IReadOnlyList<Tensor> sameSize, double ord)
    {
        var stacked = sameSize.All(t => SameShape(t, sameSize[0]))
            ? torch.stack(sameSize).reshape(sameSize.Count, -1)
            : torch.stack(sameSize.Select(t => t.reshape(-1)).ToList());
        return Aten.VectorNorm(stacked, ord, 1);
    }

    // Without Tensor.shape, which allocates through a native call.
    private static bool SameShape(Tensor a, Tensor b)
    {
        var ndim = a.ndim;
        if (ndim != b.ndim) return false;
        for (var d = 0; d < ndim; d++)
        {
            if (a.size(d) != b.size(d)) return false;
        }
        return true;
    }

    private static void ClipWithNorm(List<List<Tensor>> groups, double maxNorm, Tensor totalNorm, bool? @foreach)
    {
        if (groups.Count == 0) return;
        // PyTorch's `max_norm / (total_norm + 1e-6)` is Tensor.__rtruediv__: reciprocal, then a multiply.
        var clipCoef = totalNorm.add(S(1e-6), One).reciprocal().mul(S(maxNorm));
        // Multiplying by a coefficient clamped to 1 avoids reading it back to decide whether to clip.
        var clipCoefClamped = clipCoef.clamp_max(S(1.0));
        foreach (var group in groups)
        {
            var coef = clipCoefClamped.to(group[0].device);
            if (UseForeach(@foreach, group[0])) Aten.ForeachMulTensor_(group, coef);
            else foreach (var g in group) g.mul_(coef);
        }
    }

    // The gradients that exist, as PyTorch's `[p.grad for p in parameters if p.grad is not None]`.
    private static List<Tensor> Gradients(List<Tensor> parameters)
    {
        var grads = new List<Tensor>(parameters.Count);
        foreach (var p in parameters)
        {
            ArgumentNullException.ThrowIfNull(p, nameof(parameters));
            var g = p.grad;
            if (g is not null) grads.Add(g);
        }
        return grads;
    }

    // PyTorch's _group_tensors_by_device_and_dtype: order of first appearance, order kept inside a group.
    private static List<List<Tensor>> ByDeviceAndDtype(List<Tensor> tensors)
    {
        var groups = new Dictionary<(DeviceType, int, ScalarType), List<Tensor>>();
        var order = new List<List<Tensor>>();
        foreach (var t in tensors)
        {
            var key = (t.device_type, t.device_index, t.dtype);
            if (!groups.TryGetValue(key, out var group))
            {
                groups[key] = group = new List<Tensor>();
                order.Add(group);
            }
            group.Add(t);
        }
        return order;
    }

    // ATen has foreach kernels for CPU and CUDA tensors (PyTorch's _device_has_foreach_support).
    private static bool UseForeach(bool? @foreach, Tensor first)
    {
        var supported = first.device_type is DeviceType.CPU or DeviceType.CUDA;
        if (@foreach == true && !supported)
            throw new InvalidOperationException(
                $"foreach=True was passed, but can't use the foreach API on {first.device_type.ToString().ToLowerInvariant()} tensors");
        return @foreach != false && supported;
    }

    // How Python prints a float: 2.0, inf, -inf, 0.5.
    private static string PythonFloat(double v) =>
        double.IsPositiveInfinity(v) ? "inf"
        : double.IsNegativeInfinity(v) ? "-inf"
        : double.IsNaN(v) ? "nan"
        : v == Math.Floor(v) && Math.Abs(v) < 1e16 ? v.ToString("0.0", CultureInfo.InvariantCulture)
        : v.ToString("R", CultureInfo.InvariantCulture);
}
