using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Optim.Kernels;
using TorchSharp;
using static TorchSharp.torch;

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
        using var scope = NewDisposeScope();
        var grads = Gradients(list);
        var totalNorm = get_total_norm(grads, norm_type, error_if_nonfinite, @foreach);
        ClipWithNorm(grads, max_norm, totalNorm, @foreach);
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
        var list = tensors.ToList();
        if (list.Count == 0) return torch.zeros(Array.Empty<long>(), get_default_dtype());
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var firstDevice = list[0].device;
        var norms = new List<Tensor>(list.Count);
        foreach (var group in ByDeviceAndDtype(list))
        {
            if (UseForeach(@foreach, group[0])) norms.AddRange(Aten.ForeachNorm(group, norm_type));
            else norms.AddRange(group.Select(t => torch.linalg.vector_norm(t, norm_type)));
        }
        var totalNorm = torch.linalg.vector_norm(torch.stack(norms.Select(n => n.to(firstDevice))), norm_type);
        if (error_if_nonfinite && torch.logical_or(totalNorm.isnan(), totalNorm.isinf()).item<bool>())
            throw new InvalidOperationException(
                $"The total norm of order {PythonFloat(norm_type)} for gradients from `parameters` is non-finite, so it cannot be clipped. " +
                "To disable this error and scale the gradients by the non-finite norm anyway, set `error_if_nonfinite=False`");
        return totalNorm.MoveToOuterDisposeScope();
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
        using var scope = NewDisposeScope();
        ClipWithNorm(Gradients(parameters.ToList()), max_norm, total_norm, @foreach);
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
                foreach (var g in group) g.clamp_(-clip_value, clip_value);
            }
        }
    }

    private static void ClipWithNorm(List<Tensor> grads, double maxNorm, Tensor totalNorm, bool? @foreach)
    {
        if (grads.Count == 0) return;
        using var _ = no_grad();
        // PyTorch's `max_norm / (total_norm + 1e-6)` is Tensor.__rtruediv__: reciprocal, then a multiply.
        var clipCoef = totalNorm.add(1e-6).reciprocal().mul(maxNorm);
        // Multiplying by a coefficient clamped to 1 avoids reading it back to decide whether to clip.
        var clipCoefClamped = clipCoef.clamp_max(1.0);
        foreach (var group in ByDeviceAndDtype(grads))
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
    private static IEnumerable<List<Tensor>> ByDeviceAndDtype(List<Tensor> tensors)
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
