using System.Collections.Generic;
using Optim.Kernels;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// The first ops of a step in PyTorch's algorithms that share them: negate the gradient for maximize, then weight
/// decay, either decoupled (the parameter scaled by <c>1 - lr * weight_decay</c>) or coupled (an L2 term added to the
/// gradient). One method per path, with PyTorch's op sequence for that path.
/// </summary>
internal static class GradientPreparation
{
    /// <summary>
    /// The for-loop's <c>grad = grad if not maximize else -grad</c>, then <c>param.mul_(1 - lr * weight_decay)</c>
    /// (decoupled) or <c>grad = grad.add(param, alpha=weight_decay)</c>. Returns the gradient the update uses; the
    /// caller's gradient is never written.
    /// </summary>
    public static Tensor SingleTensor(Tensor param, Tensor grad, double lr, double weightDecay, bool maximize, bool decoupled = false)
    {
        if (maximize) grad = grad.neg();
        if (weightDecay != 0)
        {
            if (decoupled) param.mul_(1 - lr * weightDecay);
            else grad = grad.add(param, weightDecay);
        }
        return grad;
    }

    /// <summary>
    /// The foreach path's <c>_foreach_neg</c> for maximize, then <c>_foreach_mul_(params, 1 - lr * weight_decay)</c>
    /// (decoupled) or the L2 term: added in place to the negated copy when maximize made one, out of place otherwise,
    /// so the caller's gradients are never written. The result is the bucket's own gradients only when neither
    /// maximize nor coupled decay made a copy.
    /// </summary>
    public static IReadOnlyList<Tensor> MultiTensor(StepBatch bucket, double lr, double weightDecay, bool maximize, bool decoupled = false)
    {
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
