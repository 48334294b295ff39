namespace Optim;

/// <summary>
/// Which kernels an optimizer step runs on. One enum instead of PyTorch's two booleans (<c>foreach</c>, <c>fused</c>),
/// so a contradictory pair cannot be expressed.
/// </summary>
public enum Implementation
{
    /// <summary>
    /// PyTorch's default, so PyTorch's numbers: on CPU the for-loop, or foreach where it gives the same bits and is
    /// faster (smaller tensors); on other devices foreach. Never the fused kernels, which round differently: ask for
    /// <see cref="Fused"/> to get them.
    /// </summary>
    Auto,

    /// <summary>One ATen call per operation per tensor: PyTorch's <c>_single_tensor_*</c> path.</summary>
    ForLoop,

    /// <summary>ATen's <c>_foreach_*</c> kernels over lists of tensors: PyTorch's <c>_multi_tensor_*</c> path.</summary>
    Foreach,

    /// <summary>ATen's <c>_fused_*</c> kernels (one kernel per device and dtype): PyTorch's <c>fused=True</c>.</summary>
    Fused,
}
