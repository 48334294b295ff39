using System;
using System.Collections.Generic;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim;

/// <summary>
/// The base of every Optim optimizer. It derives from TorchSharp's <see cref="torch.optim.Optimizer"/>, so TorchSharp's
/// LR schedulers and any code typed against TorchSharp's optimizers accept it. The algorithm-independent API lives
/// here; <see cref="Optimizer{TOptions}"/> owns the bookkeeping.
/// </summary>
/// <remarks>
/// An optimizer is used from one thread at a time, like PyTorch's. Disposing it frees its state tensors (a state dict
/// taken earlier references them: copy it with <see cref="OptimizerStateDict.DeepCopy"/> first); afterwards every
/// method throws <see cref="ObjectDisposedException"/>, while the properties (groups, options, defaults) stay readable
/// for schedulers that still hold the optimizer.
/// </remarks>
public abstract partial class Optimizer : torch.optim.Optimizer
{
    private protected Optimizer() : base(IntPtr.Zero) { }

    /// <summary>Whether <see cref="IDisposable.Dispose"/> has run.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>
    /// When true, <c>step</c> checks every gradient for NaN and infinity first and throws, naming the first parameter
    /// whose gradient is not finite, before anything changes. Off by default: like PyTorch, non-finite gradients
    /// otherwise propagate into the parameters. The check costs one reduction per parameter.
    /// </summary>
    public bool CheckFiniteGradients { get; set; }

    /// <summary>
    /// The loss scale the gradients carry (for a gradient scaler), or null. Fused kernels divide the gradients by it
    /// inside the kernel, as PyTorch's <c>optimizer.grad_scale</c>; other paths require it to be null.
    /// </summary>
    public Tensor? GradScale { get; set; }

    /// <summary>
    /// A one-element float tensor that is non-zero when the scaled gradients overflowed, or null. Fused kernels then
    /// skip the update and the step count is not advanced, as PyTorch's <c>optimizer.found_inf</c>.
    /// </summary>
    public Tensor? FoundInf { get; set; }

    /// <summary>The state key under which <see cref="MasterWeights"/> keeps a parameter's float32 copy.</summary>
    public const string MasterWeightsKey = "master_param";

    private protected bool _masterWeights;

    /// <summary>
    /// Float32 master weights (off by default). When on, the optimizer keeps a float32 copy of every float16 and bfloat16
    /// parameter in its state (under <see cref="MasterWeightsKey"/>), runs the algorithm on that copy with a float32 copy
    /// of the gradient, and writes the rounded result back into the parameter after each step, so updates smaller than
    /// the parameter's precision accumulate instead of being lost. The algorithm's state of such a parameter is float32,
    /// like its copy. Float32 and float64 parameters are not affected. The copy is authoritative: a change made to the
    /// parameter outside the optimizer is overwritten by the next step. State dicts and checkpoints carry the copies.
    /// </summary>
    /// <exception cref="InvalidOperationException">Changed after a step or a load (set it right after construction).</exception>
    /// <exception cref="NotSupportedException">A closure-driven algorithm (LBFGS), which has no master-weight path.</exception>
    public bool MasterWeights
    {
        get => _masterWeights;
        set
        {
            ThrowIfDisposed();
            if (value != _masterWeights) ChangeMasterWeights(value);
        }
    }

    private protected abstract void ChangeMasterWeights(bool value);

    /// <summary>Per-parameter state (PyTorch's <c>optimizer.state</c>); a parameter has an entry once it has state.</summary>
    public abstract IReadOnlyDictionary<Parameter, ParameterState> State { get; }

    /// <summary>
    /// Whether <c>step</c> takes <see cref="GradScale"/> and <see cref="FoundInf"/> (PyTorch's
    /// <c>_step_supports_amp_scaling</c>): true when every group asks for <see cref="Implementation.Fused"/>. A gradient
    /// scaler then hands them to the fused kernels instead of unscaling the gradients and reading the overflow flag back.
    /// Computed from the groups' current options on each read.
    /// </summary>
    public abstract bool StepSupportsAmpScaling { get; }

    /// <summary>The parameter groups, as TorchSharp's schedulers see them (stable order and count).</summary>
    public sealed override IEnumerable<ILearningRateController> ParamGroups => GroupControllers;

    private protected abstract IEnumerable<ILearningRateController> GroupControllers { get; }

    /// <summary>Sets every gradient to null (PyTorch 2.x's default, <c>set_to_none=True</c>).</summary>
    public override void zero_grad() => zero_grad(set_to_none: true);

    /// <summary>Clears the gradients: to null when <paramref name="set_to_none"/>, else zeroed in place.</summary>
    /// <param name="set_to_none">Release the gradient tensors instead of zeroing them.</param>
    public abstract void zero_grad(bool set_to_none);

    /// <summary>The hyperparameters' schema (what checkpoint readers decode enum values with).</summary>
    internal abstract OptionSchema OptionSchema { get; }

    /// <summary>Throws <see cref="ObjectDisposedException"/> once the optimizer is disposed.</summary>
    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>Frees the state tensors.</summary>
    /// <param name="disposing">Called from <see cref="IDisposable.Dispose"/> rather than a finalizer.</param>
    protected override void Dispose(bool disposing)
    {
        if (!IsDisposed && disposing) ReleaseState();
        IsDisposed = true;
        base.Dispose(disposing);
    }

    private protected abstract void ReleaseState();
}
