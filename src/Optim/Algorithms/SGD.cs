using System.Collections.Generic;
using Optim.Validation;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim;

/// <summary>The hyperparameters of <see cref="SGD"/>.</summary>
public sealed record SGDOptions : OptimizerOptions, IMomentumOptions
{
    private readonly double _momentum;
    private readonly double _dampening;
    private readonly double _weightDecay;

    /// <summary>Momentum factor, in [0, 1].</summary>
    public double Momentum { get => _momentum; init => _momentum = Check.ClosedUnitInterval(value, "momentum", "Invalid momentum value"); }

    /// <summary>Dampening of the momentum, in [0, 1].</summary>
    public double Dampening { get => _dampening; init => _dampening = Check.ClosedUnitInterval(value, "dampening", "Invalid dampening value"); }

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get => _weightDecay; init => _weightDecay = Check.NonNegative(value, "weight_decay", "Invalid weight_decay value"); }

    /// <summary>Nesterov momentum; needs momentum &gt; 0 and zero dampening.</summary>
    public bool Nesterov { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    protected internal override void Validate() => Check.Nesterov(Nesterov, Momentum, Dampening);

    OptimizerOptions IMomentumOptions.WithMomentum(double momentum) => this with { Momentum = momentum };
}

/// <summary>
/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum, weight decay and maximization:
/// PyTorch 2.x's <c>torch.optim.SGD</c>, op for op.
/// </summary>
public sealed class SGD : Optimizer<SGDOptions>, IMomentum
{
    /// <summary>Creates SGD over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.SGD</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="dampening">Dampening for momentum.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="nesterov">Use Nesterov momentum.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    public SGD(IEnumerable<Parameter> parameters, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false, Implementation implementation = Implementation.Auto)
        : this(Groups.Single<SGDOptions>(parameters), lr, momentum, dampening, weight_decay, nesterov, maximize, implementation) { }

    /// <summary>Creates SGD over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="SGD(IEnumerable{Parameter}, double, double, double, double, bool, bool, Implementation)"/>
    public SGD(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false, Implementation implementation = Implementation.Auto)
        : this(Groups.Named<SGDOptions>(parameters), lr, momentum, dampening, weight_decay, nesterov, maximize, implementation) { }

    /// <summary>Creates SGD over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="SGD(IEnumerable{Parameter}, double, double, double, double, bool, bool, Implementation)"/>
    public SGD(IEnumerable<ParamGroupSpec<SGDOptions>> groups, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false, Implementation implementation = Implementation.Auto)
        : base(groups, new SGDOptions
        {
            // PyTorch's validation order.
            Lr = lr, Momentum = momentum, WeightDecay = weight_decay, Dampening = dampening,
            Nesterov = nesterov, Maximize = maximize, Implementation = implementation,
        })
    { }

    /// <summary>The first group's momentum; setting it sets every group's (TorchSharp's schedulers use this).</summary>
    public double Momentum
    {
        get => ParamGroups[0].Options.Momentum;
        set => SetOnAllGroups(o => o with { Momentum = value });
    }

    /// <inheritdoc/>
    protected override void InitializeState(SGDOptions options, Parameter parameter, ParameterState state)
    {
        // momentum_buffer is created from the first gradient, in the update.
    }

    /// <inheritdoc/>
    protected override void Update(SGDOptions options, StepBatch batch) =>
        SingleTensor(batch, options.Lr, options.Momentum, options.Dampening, options.WeightDecay, options.Nesterov, options.Maximize,
            decoupledWeightDecay: false);

    /// <summary>
    /// PyTorch's <c>_single_tensor_sgd</c>, shared with <see cref="SGDMomentumNesterov"/>. With
    /// <paramref name="decoupledWeightDecay"/> the parameter is first scaled by <c>1 - lr * weight_decay</c> instead of
    /// the decay being added to the gradient; everything else is SGD's update.
    /// </summary>
    internal static void SingleTensor(StepBatch batch, double lr, double momentum, double dampening, double weightDecay,
        bool nesterov, bool maximize, bool decoupledWeightDecay)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var grad = maximize ? batch.Grads[i].neg() : batch.Grads[i];
            if (weightDecay != 0)
            {
                if (decoupledWeightDecay) param.mul_(1 - lr * weightDecay);
                else grad = grad.add(param, weightDecay);
            }

            if (momentum != 0)
            {
                var buf = batch.States[i].Get("momentum_buffer");
                if (buf is null)
                {
                    // The first step copies the gradient: no dampening.
                    buf = grad.detach().clone();
                    batch.States[i].Set("momentum_buffer", buf);
                }
                else
                {
                    buf.mul_(momentum).add_(grad, 1 - dampening);
                }
                grad = nesterov ? grad.add(buf, momentum) : buf;
            }

            param.add_(grad, -lr);
        }
    }
}
