using System;
using System.Collections.Generic;
using Optim.Kernels;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>
/// The first ops of a step in PyTorch's algorithms that share them: negate the gradient for maximize, then weight
/// decay, either decoupled (the parameter scaled by <c>1 - lr * weight_decay</c>) or coupled (an L2 term added to the
/// gradient). One method per path, with PyTorch's op sequence for that path, so an algorithm's two paths give the same
/// bits on the CPU. Call it first in <c>SingleTensorStep</c> (per parameter) and <c>MultiTensorStep</c> (per bucket).
/// </summary>
public static class GradientPreparation
{
    /// <summary>
    /// The for-loop's <c>grad = grad if not maximize else -grad</c>, then <c>param.mul_(1 - lr * weight_decay)</c>
    /// (decoupled) or <c>grad = grad.add(param, alpha=weight_decay)</c>. Returns the gradient the update uses; the
    /// caller's gradient is never written.
    /// </summary>
    /// <param name="param">The parameter (scaled in place for decoupled decay).</param>
    /// <param name="grad">Its gradient.</param>
    /// <param name="lr">The learning rate (decoupled decay scales by <c>1 - lr * weight_decay</c>).</param>
    /// <param name="weightDecay">The weight decay; 0 skips it.</param>
    /// <param name="maximize">Whether to negate the gradient.</param>
    /// <param name="decoupled">Decoupled (AdamW-style) rather than coupled (L2) decay.</param>
    public static Tensor SingleTensor(Tensor param, Tensor grad, double lr, double weightDecay, bool maximize, bool decoupled = false)
    {
        ArgumentNullException.ThrowIfNull(param);
        ArgumentNullException.ThrowIfNull(grad);
        if (maximize) grad = grad.neg();
        if (weightDecay != 0)
        {
            if (decoupled) param.mul_(S(1 - lr * weightDecay));
            else grad = grad.add(param, S(weightDecay));
        }
        return grad;
    }

    /// <summary>
    /// The foreach path's <c>_foreach_neg</c> for maximize, then <c>_foreach_mul_(params, 1 - lr * weight_decay)</c>
    /// (decoupled) or the L2 term: added in place to the negated copy when maximize made one, out of place otherwise,
    /// so the caller's gradients are never written. The result is the bucket's own gradients only when neither
    /// maximize nor coupled decay made a copy (never write into it then).
    /// </summary>
    /// <param name="bucket">Parameters of one device and dtype, with their gradients.</param>
    /// <param name="lr">The learning rate.</param>
    /// <param name="weightDecay">The weight decay; 0 skips it.</param>
    /// <param name="maximize">Whether to negate the gradients.</param>
    /// <param name="decoupled">Decoupled rather than coupled decay.</param>
    public static IReadOnlyList<Tensor> MultiTensor(StepBatch bucket, double lr, double weightDecay, bool maximize, bool decoupled = false)
    {
        ArgumentNullException.ThrowIfNull(bucket);
        IReadOnlyList<Tensor> grads = bucket.Grads;
        if (maximize) grads = Aten.ForeachNeg(grads);
        if (weightDecay != 0)
        {
            if (decoupled) Aten.ForeachMul_(bucket.Params, 1 - lr * weightDecay);
            else if (maximize) Aten.ForeachAdd_(grads, bucket.Params, weightDecay);
            else grads = Aten.ForeachAdd(grads, bucket.Params, weightDecay);
        }
        return grads;
    }
}
