using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>The hyperparameters of <see cref="Adafactor"/>. A new instance holds PyTorch's defaults (<c>lr</c> 1e-2).</summary>
public sealed record AdafactorOptions : OptimizerOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, beta2_decay, eps1, eps2, d, weight_decay).</summary>
    public static OptionSchema<AdafactorOptions> Schema { get; } = new OptionSchema<AdafactorOptions>()
        .Lr()
        .Double("beta2_decay", o => o.Beta2Decay, (o, v) => o with { Beta2Decay = v }, Rules.NonPositive("beta2_decay should be <= 0 but is"))
        .NullableDouble("eps1", o => o.Eps1, (o, v) => o with { Eps1 = v }, Rules.NullOrNonNegative("epsilon1 should be >= 0 but is"))
        .Double("eps2", o => o.Eps2, (o, v) => o with { Eps2 = v }, Rules.NonNegative("epsilon2 should be >= 0 but is"))
        .Double("d", o => o.D, (o, v) => o with { D = v }, Rules.Minimum(1.0, "Clipping threshold d should be >= 1 but is"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("weight_decay should be >= 0 but is"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates the defaults: PyTorch's <c>lr</c> 1e-2 and, as PyTorch, the for-loop unless foreach is asked for.</summary>
    public AdafactorOptions()
    {
        Lr = 1e-2;
    }

    /// <summary>The decay rate of beta2 (<c>1 - beta2_t = t ** beta2_decay</c>), at most 0.</summary>
    public double Beta2Decay { get; init; } = -0.8;

    /// <summary>Term that keeps the denominator of the update away from 0 (PyTorch's <c>eps[0]</c>); null: the dtype's machine epsilon.</summary>
    public double? Eps1 { get; init; }

    /// <summary>Lower bound of the parameter scale (PyTorch's <c>eps[1]</c>).</summary>
    public double Eps2 { get; init; } = 1e-3;

    /// <summary>The clipping threshold of the update's RMS, at least 1.</summary>
    public double D { get; init; } = 1.0;

    /// <summary>Decoupled weight decay coefficient (the parameter is scaled by <c>1 - lr * weight_decay</c>).</summary>
    public double WeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;
}

/// <summary>
/// Adafactor (factored second moments for parameters of two or more dimensions, a full one otherwise): PyTorch 2.x's
/// <c>torch.optim.Adafactor</c>, op for op. PyTorch's <c>eps</c> pair is <c>eps1</c> and <c>eps2</c> here.
/// </summary>
public sealed class Adafactor : Optimizer<AdafactorOptions>
{
    /// <summary>
    /// The algorithm's catalog entry. PyTorch's foreach path scales the update by <c>-alpha / denom</c> and then adds it,
    /// where its for-loop adds with <c>alpha</c>, so the two differ in the last bits.
    /// </summary>
    public static AlgorithmInfo<AdafactorOptions> Info { get; } =
        AlgorithmInfo.Of<Adafactor, AdafactorOptions>("Adafactor", g => new Adafactor(g), foreachMatchesForLoop: false);

    /// <summary>Creates Adafactor over <paramref name="parameters"/>; arguments as PyTorch's <c>torch.optim.Adafactor</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate: the cap of the relative step size and the weight decay's factor (PyTorch's default 1e-2).</param>
    /// <param name="beta2_decay">The decay rate of beta2, at most 0.</param>
    /// <param name="eps1">Term that keeps the update's denominator away from 0; null (PyTorch's None) for the dtype's epsilon.</param>
    /// <param name="eps2">Lower bound of the parameter scale.</param>
    /// <param name="d">The clipping threshold of the update's RMS.</param>
    /// <param name="weight_decay">Decoupled weight decay coefficient.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public Adafactor(IEnumerable<Parameter> parameters, double lr = 1e-2, double beta2_decay = -0.8, double? eps1 = null, double eps2 = 1e-3,
        double d = 1.0, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<AdafactorOptions>(parameters), lr, beta2_decay, eps1, eps2, d, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Adafactor over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Adafactor(IEnumerable{Parameter}, double, double, double?, double, double, double, bool, Implementation, bool)"/>
    public Adafactor(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-2, double beta2_decay = -0.8, double? eps1 = null,
        double eps2 = 1e-3, double d = 1.0, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<AdafactorOptions>(parameters), lr, beta2_decay, eps1, eps2, d, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Adafactor over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Adafactor(IEnumerable{Parameter}, double, double, double?, double, double, double, bool, Implementation, bool)"/>
    public Adafactor(IEnumerable<ParamGroupSpec<AdafactorOptions>> groups, double lr = 1e-2, double beta2_decay = -0.8, double? eps1 = null,
        double eps2 = 1e-3, double d = 1.0, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new AdafactorOptions
        {
            Lr = lr, Beta2Decay = beta2_decay, Eps1 = eps1, Eps2 = eps2, D = d, WeightDecay = weight_decay, Maximize = maximize,
            Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <inheritdoc/>
    protected override string SparseGradientMessage => "Adafactor does not support sparse gradients";

    /// <inheritdoc/>
    protected override bool ForeachMatchesForLoop => Info.ForeachMatchesForLoop;

    private const string RowVar = "row_var";
    private const string ColVar = "col_var";
    private const string Variance = "variance";

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step)
        .Reduced(RowVar, required: false).Reduced(ColVar, required: false).LikeParameter(Variance, required: false)
        .RequiredWhen(RowVar, p => p.dim() > 1).RequiredWhen(ColVar, p => p.dim() > 1).RequiredWhen(Variance, p => p.dim() <= 1);

    // Its factored moments and its step size (the parameter's RMS) reduce over each parameter: no flat step.
    /// <inheritdoc/>
    protected override bool UpdateIsElementWise => false;

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(AdafactorOptions options, Parameter parameter, ParameterState state)
    {
        if (parameter.is_complex()) throw new ArgumentException("Adafactor does not support complex parameters", nameof(parameter));
        // PyTorch's key order: step, then row_var and col_var (two or more dims) or variance.
        state.Set(StateKeys.Step, StateTensors.NewStep());
        if (parameter.dim() > 1)
        {
            var rowShape = parameter.shape.ToArray();
            rowShape[^1] = 1;
            state.Set(RowVar, zeros(rowShape, parameter.dtype, parameter.device));
            var colShape = parameter.shape.ToArray();
            colShape[^2] = 1;
            state.Set(ColVar, zeros(colShape, parameter.dtype, parameter.device));
        }
        else
        {
            state.Set(Variance, zeros_like(parameter));
        }
    }

    /// <inheritdoc/>
    protected override void SingleTensorStep(AdafactorOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(AdafactorOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    // Python's max and min: the first argument unless the second compares above (below) it, so a NaN second argument
    // gives the first, as in PyTorch (a non-finite gradient element leaves the clipping denominator at 1).
    private static double PyMax(double a, double b) => b > a ? b : a;

    private static double PyMin(double a, double b) => b < a ? b : a;

    // torch.finfo(dtype).eps.
    private static double MachineEps(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => 2.220446049250313e-16,
        ScalarType.Float16 => 0.0009765625,
        ScalarType.BFloat16 => 0.0078125,
        _ => 1.1920928955078125e-07,
    };

    // param.norm().item() / (param.numel() ** 0.5), as Python floats.
    private static double Rms(Tensor t) => t.norm().to(ScalarType.Float64).item<double>() / Math.Pow(t.numel(), 0.5);

    // The variance estimate (a new tensor) after updating the moments with grad.
    private static Tensor VarEstimate(ParameterState state, Tensor grad, double oneMinusBeta2, double eps1)
    {
        if (grad.dim() > 1)
        {
            var rowVar = state[RowVar];
            var colVar = state[ColVar];
            // (g * g).mean(dim=-1) as PyTorch computes it, through the vector norm.
            var rowMean = Aten.VectorNorm(grad, 2, -1, keepdim: true).pow_(S(2)).div_(S(grad.size(-1)));
            Aten.Lerp_(rowVar, rowMean, oneMinusBeta2);
            var colMean = Aten.VectorNorm(grad, 2, -2, keepdim: true).pow_(S(2)).div_(S(grad.size(-2)));
            Aten.Lerp_(colVar, colMean, oneMinusBeta2);
            var varEstimate = rowVar.matmul(colVar);
            return varEstimate.div_(rowVar.mean(new long[] { -2 }, keepdim: true).clamp_min_(S(eps1)));
        }
        var variance = state[Variance];
        Aten.Lerp_(variance, grad.mul(grad), oneMinusBeta2);
        return variance.clone();
    }

    // PyTorch's _single_tensor_adafactor (real params). eps1 None takes the first parameter's dtype, as PyTorch's loop.
    private static void SingleTensor(StepBatch batch, AdafactorOptions o)
    {
        var eps1 = o.Eps1;
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var grad = o.Maximize ? batch.Grads[i].neg() : batch.Grads[i];
            eps1 ??= MachineEps(param.dtype);

            var step = StateTensors.IncrementStep(state[StateKeys.Step]);
            var oneMinusBeta2 = Math.Pow(step, o.Beta2Decay);
            var rho = PyMin(o.Lr, 1 / Math.Pow(step, 0.5));
            var alpha = PyMax(o.Eps2, Rms(param)) * rho;

            if (o.WeightDecay != 0) param.mul_(S(1 - o.Lr * o.WeightDecay));

            var update = VarEstimate(state, grad, oneMinusBeta2, eps1.Value).clamp_min_(S(eps1.Value * eps1.Value)).rsqrt_();
            update.mul_(grad);
            var denom = PyMax(1.0, update.norm().to(ScalarType.Float64).item<double>() / (Math.Pow(update.numel(), 0.5) * o.D));
            param.add_(update, S(-alpha / denom));
        }
    }

    // PyTorch's _multi_tensor_adafactor: the same per-tensor arithmetic, the update scaled then added.
    private static void MultiTensor(StepBatch bucket, AdafactorOptions o)
    {
        if (bucket.Count == 0) return;
        using var scope = NewDisposeScope();
        var eps1 = o.Eps1 ?? MachineEps(bucket.Params[0].dtype);
        var grads = o.Maximize ? bucket.Grads.Select(g => g.neg()).ToList() : bucket.Grads.ToList();
        var steps = bucket.States.Select(s => s[StateKeys.Step]).ToList();
        Aten.ForeachAdd_(steps, 1.0);
        var stepValues = steps.Select(StateTensors.Value).ToList();
        var alphas = bucket.Params.Select((p, i) => PyMax(o.Eps2, Rms(p)) * PyMin(o.Lr, 1 / Math.Pow(stepValues[i], 0.5))).ToList();

        if (o.WeightDecay != 0) Aten.ForeachMul_(bucket.Params.Cast<Tensor>().ToList(), 1 - o.Lr * o.WeightDecay);

        for (var i = 0; i < bucket.Count; i++)
        {
            var update = VarEstimate(bucket.States[i], grads[i], Math.Pow(stepValues[i], o.Beta2Decay), eps1).clamp_min_(S(eps1 * eps1)).rsqrt_();
            update.mul_(grads[i]);
            var denom = PyMax(1.0, update.norm().to(ScalarType.Float64).item<double>() / (Math.Pow(update.numel(), 0.5) * o.D));
            update.mul_(S(-alphas[i] / denom));
            bucket.Params[i].add_(update, One);
        }
    }
}
