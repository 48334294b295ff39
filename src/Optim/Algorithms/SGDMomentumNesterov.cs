using System.Collections.Generic;
using Optim.Validation;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim;

/// <summary>The hyperparameters of <see cref="SGDMomentumNesterov"/>. A new instance holds its defaults.</summary>
public sealed record SGDMomentumNesterovOptions : OptimizerOptions, IMomentumOptions
{
    /// <summary>The declared hyperparameters, in validation order.</summary>
    public static OptionSchema<SGDMomentumNesterovOptions> Schema { get; } = new OptionSchema<SGDMomentumNesterovOptions>()
        .Lr()
        .Double("momentum", o => o.Momentum, (o, v) => o with { Momentum = v }, Rules.ClosedUnit("Invalid momentum value"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Double("dampening", o => o.Dampening, (o, v) => o with { Dampening = v }, Rules.ClosedUnit("Invalid dampening value"))
        .Bool("nesterov", o => o.Nesterov, (o, v) => o with { Nesterov = v })
        .Bool("decoupled_weight_decay", o => o.DecoupledWeightDecay, (o, v) => o with { DecoupledWeightDecay = v })
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Momentum factor, in [0, 1].</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Dampening of the momentum, in [0, 1]; must be 0 with Nesterov momentum.</summary>
    public double Dampening { get; init; }

    /// <summary>Weight decay: an L2 penalty added to the gradient, or decoupled (see <see cref="DecoupledWeightDecay"/>).</summary>
    public double WeightDecay { get; init; }

    /// <summary>Nesterov momentum (the default); needs momentum &gt; 0 and zero dampening.</summary>
    public bool Nesterov { get; init; } = true;

    /// <summary>
    /// Scale the parameter by <c>1 - lr * weight_decay</c> before the momentum update (as AdamW does) instead of adding
    /// <c>weight_decay * param</c> to the gradient.
    /// </summary>
    public bool DecoupledWeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    /// <inheritdoc/>
    protected override void ValidateCombination() => Check.Nesterov(Nesterov, Momentum, Dampening);

    OptimizerOptions IMomentumOptions.WithMomentum(double momentum) => this with { Momentum = momentum };
}

/// <summary>
/// SGD with Nesterov momentum by default and a choice of coupled or decoupled weight decay. Not part of torch.optim:
/// with coupled decay it is exactly <c>torch.optim.SGD(momentum=..., nesterov=True, weight_decay=...)</c>; with decoupled
/// decay the parameter is first scaled by <c>1 - lr * weight_decay</c>, then SGD's momentum update runs on the gradient.
/// State: <c>momentum_buffer</c> (when momentum is not 0), created from the first gradient as in SGD.
/// </summary>
public sealed class SGDMomentumNesterov : Optimizer<SGDMomentumNesterovOptions>, IMomentum
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<SGDMomentumNesterovOptions> Info { get; } = AlgorithmInfo.Of<SGDMomentumNesterov, SGDMomentumNesterovOptions>("SGDMomentumNesterov", g => new SGDMomentumNesterov(g), hasFusedKernel: true);

    /// <summary>Creates the optimizer over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="dampening">Dampening for momentum (must be 0 with Nesterov momentum).</param>
    /// <param name="nesterov">Use Nesterov momentum.</param>
    /// <param name="weight_decay">Weight decay coefficient.</param>
    /// <param name="decoupled_weight_decay">Decay the parameter directly instead of adding an L2 term to the gradient.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public SGDMomentumNesterov(IEnumerable<Parameter> parameters, double lr = 1e-3, double momentum = 0.9, double dampening = 0,
        bool nesterov = true, double weight_decay = 0, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<SGDMomentumNesterovOptions>(parameters), lr, momentum, dampening, nesterov, weight_decay, decoupled_weight_decay,
            maximize, implementation, flat) { }

    /// <summary>Creates the optimizer over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="SGDMomentumNesterov(IEnumerable{Parameter}, double, double, double, bool, double, bool, bool, Implementation, bool)"/>
    public SGDMomentumNesterov(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double momentum = 0.9,
        double dampening = 0, bool nesterov = true, double weight_decay = 0, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<SGDMomentumNesterovOptions>(parameters), lr, momentum, dampening, nesterov, weight_decay, decoupled_weight_decay,
            maximize, implementation, flat) { }

    /// <summary>Creates the optimizer over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="SGDMomentumNesterov(IEnumerable{Parameter}, double, double, double, bool, double, bool, bool, Implementation, bool)"/>
    public SGDMomentumNesterov(IEnumerable<ParamGroupSpec<SGDMomentumNesterovOptions>> groups, double lr = 1e-3, double momentum = 0.9,
        double dampening = 0, bool nesterov = true, double weight_decay = 0, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new SGDMomentumNesterovOptions
        {
            // SGD's validation order.
            Lr = lr, Momentum = momentum, WeightDecay = weight_decay, Dampening = dampening,
            Nesterov = nesterov, DecoupledWeightDecay = decoupled_weight_decay, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>The first group's momentum; setting it sets every group's (TorchSharp's schedulers use this).</summary>
    public double Momentum
    {
        get => ParamGroups[0].Options.Momentum;
        set => SetOnAllGroups(o => o with { Momentum = value });
    }

    private static readonly StateSchema States = new StateSchema().LikeParameter(StateKeys.MomentumBuffer, required: false);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(SGDMomentumNesterovOptions options, Parameter parameter, ParameterState state)
    {
        // momentum_buffer is created from the first gradient, in the update.
    }

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    protected override void SingleTensorStep(SGDMomentumNesterovOptions o, StepBatch batch) => SGD.SingleTensor(batch, Hyper(o));

    /// <inheritdoc/>
    protected override void MultiTensorStep(SGDMomentumNesterovOptions o, StepBatch bucket) => SGD.MultiTensor(bucket, Hyper(o));

    /// <inheritdoc/>
    protected override void FusedStep(SGDMomentumNesterovOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        SGD.Fused(bucket, Hyper(o), gradScale, foundInf);

    private static SGD.SgdHyperparameters Hyper(SGDMomentumNesterovOptions o) =>
        new(o.Lr, o.Momentum, o.Dampening, o.WeightDecay, o.Nesterov, o.Maximize, o.DecoupledWeightDecay);
}
