using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Runtime.CompilerServices;
using Optim.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>The hyperparameters of <see cref="NAdam"/>. A new instance holds PyTorch's defaults (<c>lr</c> 2e-3).</summary>
public sealed record NAdamOptions : OptimizerOptions, IBetasOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, eps, betas, weight_decay, momentum_decay).</summary>
    public static OptionSchema<NAdamOptions> Schema { get; } = new OptionSchema<NAdamOptions>()
        .Lr()
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Double("beta1", o => o.Beta1, (o, v) => o with { Beta1 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 0"))
        .Double("beta2", o => o.Beta2, (o, v) => o with { Beta2 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 1"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Double("momentum_decay", o => o.MomentumDecay, (o, v) => o with { MomentumDecay = v }, Rules.NonNegative("Invalid momentum_decay value"))
        .Bool("decoupled_weight_decay", o => o.DecoupledWeightDecay, (o, v) => o with { DecoupledWeightDecay = v })
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with PyTorch's NAdam defaults (<c>lr</c> 2e-3).</summary>
    public NAdamOptions() => Lr = 2e-3;

    /// <summary>Coefficient of the running average of the gradient, in [0, 1) (PyTorch's <c>betas[0]</c>).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Coefficient of the running average of the squared gradient, in [0, 1) (PyTorch's <c>betas[1]</c>).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Term added to the denominator for numerical stability.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>Weight decay: an L2 penalty added to the gradient, or with <see cref="DecoupledWeightDecay"/> AdamW-style decay.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Momentum decay ψ of the momentum schedule <c>μ_t = β1 (1 - 0.5 · 0.96^(t ψ))</c>.</summary>
    public double MomentumDecay { get; init; } = 4e-3;

    /// <summary>Scale the parameter by <c>1 - lr * weight_decay</c> instead of adding the penalty to the gradient (NAdamW).</summary>
    public bool DecoupledWeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    OptimizerOptions IBetasOptions.WithBetas(double beta1, double beta2) => this with { Beta1 = beta1, Beta2 = beta2 };
}

/// <summary>
/// NAdam (Adam with Nesterov momentum and a momentum schedule), with optional decoupled weight decay and maximization:
/// PyTorch 2.x's <c>torch.optim.NAdam</c>, op for op. Unlike TorchSharp's <c>NAdam</c>, <c>mu_product</c> is PyTorch's
/// float32 scalar tensor (so the numbers are PyTorch's in float64 too) and the first moment is updated with <c>lerp_</c>.
/// </summary>
public sealed class NAdam : Optimizer<NAdamOptions>, IBetas
{
    /// <summary>
    /// The algorithm's catalog entry. PyTorch's foreach path divides <c>sqrt(exp_avg_sq)</c> by <c>sqrt(bias_correction2)</c>
    /// where its for-loop takes <c>sqrt(exp_avg_sq / bias_correction2)</c>, so the two differ in the last bit.
    /// </summary>
    public static AlgorithmInfo<NAdamOptions> Info { get; } =
        AlgorithmInfo.Of<NAdam, NAdamOptions>("NAdam", g => new NAdam(g), foreachMatchesForLoop: false, hasFusedKernel: true,
            torchSharpLayout: new NAdamTorchSharpLayout());

    /// <summary>Creates NAdam over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.NAdam</c>, then PyTorch's.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="beta1">Coefficient of the running average of the gradient.</param>
    /// <param name="beta2">Coefficient of the running average of the squared gradient.</param>
    /// <param name="eps">Term added to the denominator for numerical stability.</param>
    /// <param name="weight_decay">Weight decay (L2 penalty, or decoupled with <paramref name="decoupled_weight_decay"/>).</param>
    /// <param name="momentum_decay">Momentum decay ψ.</param>
    /// <param name="decoupled_weight_decay">Decouple the weight decay as in AdamW (NAdamW).</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public NAdam(IEnumerable<Parameter> parameters, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, double momentum_decay = 4e-3, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<NAdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates NAdam over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="NAdam(IEnumerable{Parameter}, double, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public NAdam(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, double momentum_decay = 4e-3, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<NAdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates NAdam over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="NAdam(IEnumerable{Parameter}, double, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public NAdam(IEnumerable<ParamGroupSpec<NAdamOptions>> groups, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, double momentum_decay = 4e-3, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new NAdamOptions
        {
            Lr = lr, Eps = eps, Beta1 = beta1, Beta2 = beta2, WeightDecay = weight_decay, MomentumDecay = momentum_decay,
            DecoupledWeightDecay = decoupled_weight_decay, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates NAdam over TorchSharp's parameter groups (<c>new NAdam.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.NAdam</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="NAdam(IEnumerable{Parameter}, double, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public NAdam(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.NAdam.Options>> groups, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, double momentum_decay = 4e-3, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<NAdamOptions, TorchSharp.Modules.NAdam.Options>(groups, (o, t) => o with
        {
            Beta1 = t.beta1 ?? o.Beta1, Beta2 = t.beta2 ?? o.Beta2, Eps = t.eps ?? o.Eps, WeightDecay = t.weight_decay ?? o.WeightDecay,
            MomentumDecay = t.momentum_decay ?? o.MomentumDecay,
        }), lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize, implementation, flat) { }

    /// <summary>The first group's (beta1, beta2); setting them sets every group's (TorchSharp's <c>OneCycleLR</c> uses this).</summary>
    public (double, double) Betas
    {
        get => (ParamGroups[0].Options.Beta1, ParamGroups[0].Options.Beta2);
        set => SetOnAllGroups(o => o with { Beta1 = value.Item1, Beta2 = value.Item2 });
    }

    /// <inheritdoc/>
    protected override string SparseGradientMessage => "NAdam does not support sparse gradients";

    /// <inheritdoc/>
    protected override bool ForeachMatchesForLoop => Info.ForeachMatchesForLoop;

    // mu_product is Scalar state: a load keeps it as saved (a float32 CPU scalar). PyTorch's load casts it to the
    // parameter's dtype, so a float64 run resumed there multiplies it in float64 and leaves the uninterrupted run's bits.
    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).Scalar(StateKeys.MuProduct).LikeParameter(StateKeys.ExpAvg).LikeParameter(StateKeys.ExpAvgSq);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(NAdamOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, mu_product (both 0-dim CPU tensors of the scalar dtype), exp_avg, exp_avg_sq.
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.MuProduct, StateTensors.NewScalar(1.0));
        state.Set(StateKeys.ExpAvg, zeros_like(parameter));
        state.Set(StateKeys.ExpAvgSq, zeros_like(parameter));
    }

    // μ_t = β1 (1 - 0.5 · 0.96^(t ψ)), in Python floats (0.96 ** x is C's pow, as Math.Pow is).
    private static double Mu(NAdamOptions o, double step) => o.Beta1 * (1.0 - 0.5 * Math.Pow(0.96, step * o.MomentumDecay));

    /// <inheritdoc/>
    protected override void SingleTensorStep(NAdamOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(NAdamOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    private protected override bool FusedByThisLibrary => true;

    /// <inheritdoc/>
    protected override void FusedStep(NAdamOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        CSharpFused.Step(bucket, new[] { StateKeys.ExpAvg, StateKeys.ExpAvgSq }, gradScale, foundInf,
            (i, step) => new NAdamUpdate<float>(o, StepScalars(o, bucket.States[i], step)), (i, step) => new NAdamUpdate<double>(o, StepScalars(o, bucket.States[i], step)));

    // The for-loop's scalars of one step, mu_product advanced as it advances it: 1 - β2^t and the two addcdiv values.
    private static (double BiasCorrection2, double GradValue, double ExpAvgValue) StepScalars(NAdamOptions o, ParameterState state, double step)
    {
        var mu = Mu(o, step);
        var muNext = Mu(o, step + 1);
        var muProduct = state[StateKeys.MuProduct];
        muProduct.mul_(S(mu));
        var muProductValue = StateTensors.Value(muProduct);
        return (1 - Math.Pow(o.Beta2, step), -o.Lr * (1.0 - mu) / (1.0 - muProductValue), -o.Lr * muNext / (1.0 - muProductValue * muNext));
    }

    // PyTorch's _single_tensor_nadam (real params, capturable=False, differentiable=False).
    private static void SingleTensor(StepBatch batch, NAdamOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var expAvg = state[StateKeys.ExpAvg];
            var expAvgSq = state[StateKeys.ExpAvgSq];
            var muProduct = state[StateKeys.MuProduct];
            var step = StateTensors.IncrementStep(state[StateKeys.Step]);

            var biasCorrection2 = 1 - Math.Pow(o.Beta2, step);

            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize, o.DecoupledWeightDecay);

            var mu = Mu(o, step);
            var muNext = Mu(o, step + 1);

            // mu_product *= mu: a float32 (float64) scalar tensor times a Python float, rounded to the tensor's dtype.
            muProduct.mul_(S(mu));

            Aten.Lerp_(expAvg, grad, 1 - o.Beta1);
            expAvgSq.mul_(S(o.Beta2)).addcmul_(grad, grad, S(1 - o.Beta2));
            var denom = expAvgSq.div(S(biasCorrection2)).sqrt();

            var muProductValue = StateTensors.Value(muProduct);
            var muProductNext = muProductValue * muNext;
            denom.add_(S(o.Eps), One);
            param.addcdiv_(grad, denom, S(-o.Lr * (1.0 - mu) / (1.0 - muProductValue)));
            param.addcdiv_(expAvg, denom, S(-o.Lr * muNext / (1.0 - muProductNext)));
        }
    }

    // PyTorch's _multi_tensor_nadam (non-capturable).
    private static void MultiTensor(StepBatch bucket, NAdamOptions o)
    {
        var expAvgs = bucket.States.Select(s => s[StateKeys.ExpAvg]).ToList();
        var expAvgSqs = bucket.States.Select(s => s[StateKeys.ExpAvgSq]).ToList();
        var muProducts = bucket.States.Select(s => s[StateKeys.MuProduct]).ToList();
        var steps = bucket.States.Select(s => s[StateKeys.Step]).ToList();

        Aten.ForeachAdd_(steps, 1.0);

        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize, o.DecoupledWeightDecay);

        Aten.ForeachLerp_(expAvgs, grads, 1 - o.Beta1);
        Aten.ForeachMul_(expAvgSqs, o.Beta2);
        Aten.ForeachAddcmul_(expAvgSqs, grads, grads, 1 - o.Beta2);

        var expAvgSqSqrt = Aten.ForeachSqrt(expAvgSqs);

        var stepValues = steps.Select(StateTensors.Value).ToList();
        var biasCorrectionSqrt = stepValues.Select(step => Math.Pow(1 - Math.Pow(o.Beta2, step), 0.5)).ToList();
        var mus = stepValues.Select(step => Mu(o, step)).ToList();
        var muNexts = stepValues.Select(step => Mu(o, step + 1)).ToList();

        Aten.ForeachMul_(muProducts, mus);

        Aten.ForeachDiv_(expAvgSqSqrt, biasCorrectionSqrt);
        Aten.ForeachAdd_(expAvgSqSqrt, o.Eps);

        var muProductValues = muProducts.Select(StateTensors.Value).ToList();
        var stepSizeGrads = muProductValues.Select((mp, i) => o.Lr * (1.0 - mus[i]) / (1.0 - mp) * -1).ToList();
        var stepSizeExpAvg = muProductValues.Select((mp, i) => o.Lr * muNexts[i] / (1.0 - mp * muNexts[i]) * -1).ToList();

        Aten.ForeachAddcdiv_(bucket.Params, grads, expAvgSqSqrt, stepSizeGrads);
        Aten.ForeachAddcdiv_(bucket.Params, expAvgs, expAvgSqSqrt, stepSizeExpAvg);
    }
}

/// <summary>
/// One element of <see cref="NAdam"/>'s for-loop update, in one pass (ATen has no fused NAdam): its operations in its
/// order, each rounded to <typeparamref name="T"/>, with the step's scalars (computed in double as Python does) rounded
/// once. Streams: S0 exp_avg, S1 exp_avg_sq.
/// </summary>
internal readonly unsafe struct NAdamUpdate<T> : IFusedUpdate<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FusedGradient<T> _gradient;
    private readonly LerpInPlace<T> _expAvg;
    private readonly SquareAverage<T> _expAvgSq;
    private readonly T _eps, _biasCorrection2, _gradValue, _expAvgValue;

    public NAdamUpdate(NAdamOptions o, (double BiasCorrection2, double GradValue, double ExpAvgValue) step)
    {
        _gradient = new FusedGradient<T>(o.Maximize, o.Lr, o.WeightDecay, o.DecoupledWeightDecay);
        _expAvg = new LerpInPlace<T>(1 - o.Beta1);
        _expAvgSq = new SquareAverage<T>(o.Beta2);
        _eps = CpuFused.Scalar<T>(o.Eps);
        _biasCorrection2 = CpuFused.Scalar<T>(step.BiasCorrection2);
        _gradValue = CpuFused.Scalar<T>(step.GradValue);
        _expAvgValue = CpuFused.Scalar<T>(step.ExpAvgValue);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Update(in Streams<T> at)
    {
        var g = _gradient.Of(at, out var p);
        var expAvg = _expAvg.Apply(at.S0, g);
        var expAvgSq = _expAvgSq.Apply(at.S1, g);
        var denom = Vector.SquareRoot(expAvgSq / new Vector<T>(_biasCorrection2)) + new Vector<T>(_eps);
        p += g / denom * _gradValue;
        CpuFused.Store(at.Param, p + expAvg / denom * _expAvgValue);
    }
}

/// <summary>
/// NAdam's state in the checkpoint format of TorchSharp's <c>NAdam</c>. Options: beta1, beta2, eps, weight_decay,
/// momentum_decay (f64). State: step (i64) | mu_product (f64) | exp_avg | exp_avg_sq.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp keeps <c>mu_product</c> as a double; PyTorch (and this library) as a 0-dim tensor of the scalar dtype
/// (float32 unless the default dtype is float64), multiplied in that dtype each step. Reading rounds TorchSharp's double
/// to that dtype (exact under float64); writing widens ours exactly. So a float32 run's mu_product differs from
/// TorchSharp's by the float32 rounding, and the two updates drift apart by an ulp now and then (so does TorchSharp's
/// exp_avg <c>mul_().add_()</c> against PyTorch's <c>lerp_</c>).
/// </para>
/// <para>
/// TorchSharp's NAdam has neither <c>maximize</c> nor <c>decoupled_weight_decay</c>: reading sets both false, writing
/// refuses a group with either. A parameter TorchSharp never stepped (step 0, mu_product 1, all-zero buffers) has no
/// state in PyTorch; one with no state is written as TorchSharp creates it.
/// </para>
/// </remarks>
internal sealed class NAdamTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "NAdam";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "beta1", "beta2", "eps", "weight_decay", "momentum_decay" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = new KeyValuePair<string, object?>[]
    {
        new("decoupled_weight_decay", false), new("maximize", false),
    };

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var muProduct = reader.ReadDouble();
        var read = new Dictionary<string, Tensor> { ["exp_avg"] = reader.ReadTensor("exp_avg"), ["exp_avg_sq"] = reader.ReadTensor("exp_avg_sq") };
        if (step == 0 && muProduct == 1 && StateTensors.AllZeroExceptStep(read)) return null;
        var state = new ParameterState();
        state.Set("step", StateTensors.NewStep(step));
        state.Set("mu_product", StateTensors.NewScalar(muProduct));
        state.Set("exp_avg", read["exp_avg"]);
        state.Set("exp_avg_sq", read["exp_avg_sq"]);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get("step"));
        writer.WriteDouble(Get("mu_product") is { } muProduct ? StateTensors.Value(muProduct) : 1.0);
        writer.WriteTensor(Get("exp_avg") ?? zeros_like(parameter));
        writer.WriteTensor(Get("exp_avg_sq") ?? zeros_like(parameter));
    }
}
