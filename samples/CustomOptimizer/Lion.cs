using System.Collections.Generic;
using System.Linq;
using Optim;
using Optim.Kernels;
using TorchSharp.Modules;
using static Optim.Kernels.Scalars;
using static TorchSharp.torch;
// TorchSharp.Modules (for Parameter) has an OptimizerOptions of its own.
using OptimizerOptions = Optim.OptimizerOptions;

namespace CustomOptimizer;

/// <summary>
/// The hyperparameters of <see cref="Lion"/>. Declared once, in <see cref="Schema"/>: state dicts, checkpoints, group
/// overrides and validation all read that table, so nothing else has to list them.
/// </summary>
public sealed record LionOptions : OptimizerOptions, IBetasOptions
{
    /// <summary>Name, type, rule and message of each hyperparameter, in validation order (PyTorch's style of messages).</summary>
    public static OptionSchema<LionOptions> Schema { get; } = new OptionSchema<LionOptions>()
        .Lr()
        .Double("beta1", o => o.Beta1, (o, v) => o with { Beta1 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 0"))
        .Double("beta2", o => o.Beta2, (o, v) => o with { Beta2 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 1"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with Lion's usual defaults (lr 1e-4: the paper uses a rate 3-10x smaller than AdamW's).</summary>
    public LionOptions() => Lr = 1e-4;

    /// <summary>Interpolation factor of the update direction: <c>sign(beta1 * m + (1 - beta1) * g)</c>.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Decay of the momentum: <c>m = beta2 * m + (1 - beta2) * g</c>.</summary>
    public double Beta2 { get; init; } = 0.99;

    /// <summary>Decoupled weight decay: the parameter is scaled by <c>1 - lr * weight_decay</c> before the update.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    // Lets Optim's OneCycleLR (and TorchSharp's) cycle beta1 like Adam's.
    OptimizerOptions IBetasOptions.WithBetas(double beta1, double beta2) => this with { Beta1 = beta1, Beta2 = beta2 };
}

/// <summary>
/// Lion, "EvoLved Sign Momentum" (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"), written on Optim's
/// public extension API: per parameter, with <c>g</c> its gradient and <c>m</c> its momentum,
/// <code>
/// p = p * (1 - lr * weight_decay)
/// p = p - lr * sign(beta1 * m + (1 - beta1) * g)
/// m = beta2 * m + (1 - beta2) * g
/// </code>
/// The base class brings parameter groups, validation, lazy state, state dicts, checkpoints, schedulers and hooks; this
/// class brings the options, the state's shape and the update, once as a for-loop and once over lists with ATen's foreach
/// kernels. Both paths run the same ops in the same order, so on the CPU they give the same bits.
/// </summary>
public sealed class Lion : Optimizer<LionOptions>
{
    /// <summary>The key of the momentum in each parameter's state (the name other Lion implementations use).</summary>
    public const string ExpAvg = "exp_avg";

    private static readonly StateSchema States = new StateSchema().LikeParameter(ExpAvg);

    /// <summary>Creates Lion over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="beta1">Interpolation factor of the update direction.</param>
    /// <param name="beta2">Decay of the momentum.</param>
    /// <param name="weight_decay">Decoupled weight decay.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">For-loop, foreach, or Auto (the base picks, as for the built-in algorithms).</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (the base does it all: Lion's
    /// update is element-wise, so its paths run once per buffer unchanged).</param>
    public Lion(IEnumerable<Parameter> parameters, double lr = 1e-4, double beta1 = 0.9, double beta2 = 0.99, double weight_decay = 0,
        bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(new[] { new ParamGroupSpec<LionOptions>(parameters) }, lr, beta1, beta2, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Lion over named parameters: names appear in messages and in state dicts (<c>param_names</c>).</summary>
    /// <inheritdoc cref="Lion(IEnumerable{Parameter}, double, double, double, double, bool, Implementation, bool)"/>
    public Lion(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-4, double beta1 = 0.9, double beta2 = 0.99,
        double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Named(parameters), lr, beta1, beta2, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Lion over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Lion(IEnumerable{Parameter}, double, double, double, double, bool, Implementation, bool)"/>
    public Lion(IEnumerable<ParamGroupSpec<LionOptions>> groups, double lr = 1e-4, double beta1 = 0.9, double beta2 = 0.99,
        double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new LionOptions
        {
            Lr = lr, Beta1 = beta1, Beta2 = beta2, WeightDecay = weight_decay, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(LionOptions options, Parameter parameter, ParameterState state) =>
        state.Set(ExpAvg, zeros_like(parameter));

    /// <inheritdoc/>
    protected override void SingleTensorStep(LionOptions o, StepBatch batch)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var expAvg = batch.States[i][ExpAvg];
            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize, decoupled: true);

            // S(x): a Scalar kept alive through the native call (a temporary one can be finalized during it).
            var update = expAvg.mul(S(o.Beta1)).add_(grad, S(1 - o.Beta1)).sign_();
            param.add_(update, S(-o.Lr));
            expAvg.mul_(S(o.Beta2)).add_(grad, S(1 - o.Beta2));
        }
    }

    /// <inheritdoc/>
    protected override void MultiTensorStep(LionOptions o, StepBatch bucket)
    {
        var expAvgs = bucket.States.Select(s => s[ExpAvg]).ToList();
        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize, decoupled: true);

        var updates = Aten.ForeachMul(expAvgs, o.Beta1);
        Aten.ForeachAdd_(updates, grads, 1 - o.Beta1);
        Aten.ForeachSign_(updates);
        Aten.ForeachAdd_(bucket.Params, updates, -o.Lr);
        Aten.ForeachMul_(expAvgs, o.Beta2);
        Aten.ForeachAdd_(expAvgs, grads, 1 - o.Beta2);
    }

    private static IEnumerable<ParamGroupSpec<LionOptions>> Named(IEnumerable<(string name, Parameter parameter)> parameters)
    {
        var list = parameters.ToList();
        return new[] { new ParamGroupSpec<LionOptions>(list.Select(p => p.parameter).ToList(), Names: list.Select(p => p.name).ToList()) };
    }
}
