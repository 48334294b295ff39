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

/// <summary>The hyperparameters of <see cref="RAdam"/>. A new instance holds PyTorch's defaults (<c>lr</c> 1e-3).</summary>
public sealed record RAdamOptions : OptimizerOptions, IBetasOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, eps, betas, weight_decay).</summary>
    public static OptionSchema<RAdamOptions> Schema { get; } = new OptionSchema<RAdamOptions>()
        .Lr()
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Double("beta1", o => o.Beta1, (o, v) => o with { Beta1 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 0"))
        .Double("beta2", o => o.Beta2, (o, v) => o with { Beta2 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 1"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Bool("decoupled_weight_decay", o => o.DecoupledWeightDecay, (o, v) => o with { DecoupledWeightDecay = v })
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Coefficient of the running average of the gradient, in [0, 1) (PyTorch's <c>betas[0]</c>).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Coefficient of the running average of the squared gradient, in [0, 1) (PyTorch's <c>betas[1]</c>).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Term added to the denominator for numerical stability.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>Weight decay: an L2 penalty added to the gradient, or with <see cref="DecoupledWeightDecay"/> AdamW-style decay.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Scale the parameter by <c>1 - lr * weight_decay</c> instead of adding the penalty to the gradient (RAdamW).</summary>
    public bool DecoupledWeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    OptimizerOptions IBetasOptions.WithBetas(double beta1, double beta2) => this with { Beta1 = beta1, Beta2 = beta2 };
}

/// <summary>
/// RAdam (Adam with a rectified adaptive learning rate), with optional decoupled weight decay and maximization: PyTorch
/// 2.x's <c>torch.optim.RAdam</c>, op for op. The default learning rate is PyTorch's 1e-3 (TorchSharp's factory: 2e-3).
/// </summary>
public sealed class RAdam : Optimizer<RAdamOptions>, IBetas
{
    /// <summary>
    /// The algorithm's catalog entry. PyTorch's foreach path folds the step sizes into one buffer
    /// (<c>1 / ((sqrt(v) + eps) / step_size)</c>, then <c>addcmul</c>) where its for-loop multiplies them out, so the two
    /// differ in the last bits.
    /// </summary>
    public static AlgorithmInfo<RAdamOptions> Info { get; } =
        AlgorithmInfo.Of<RAdam, RAdamOptions>("RAdam", g => new RAdam(g), foreachMatchesForLoop: false, hasFusedKernel: true,
            torchSharpLayout: new RAdamTorchSharpLayout());

    /// <summary>Creates RAdam over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.RAdam</c>, then PyTorch's.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate (PyTorch's default 1e-3; TorchSharp's factory has 2e-3).</param>
    /// <param name="beta1">Coefficient of the running average of the gradient.</param>
    /// <param name="beta2">Coefficient of the running average of the squared gradient.</param>
    /// <param name="eps">Term added to the denominator for numerical stability.</param>
    /// <param name="weight_decay">Weight decay (L2 penalty, or decoupled with <paramref name="decoupled_weight_decay"/>).</param>
    /// <param name="decoupled_weight_decay">Decouple the weight decay as in AdamW (RAdamW).</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public RAdam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, bool decoupled_weight_decay = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<RAdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates RAdam over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="RAdam(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public RAdam(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<RAdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates RAdam over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="RAdam(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public RAdam(IEnumerable<ParamGroupSpec<RAdamOptions>> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new RAdamOptions
        {
            Lr = lr, Eps = eps, Beta1 = beta1, Beta2 = beta2, WeightDecay = weight_decay,
            DecoupledWeightDecay = decoupled_weight_decay, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates RAdam over TorchSharp's parameter groups (<c>new RAdam.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.RAdam</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="RAdam(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public RAdam(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.RAdam.Options>> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool decoupled_weight_decay = false, bool maximize = false,
        Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<RAdamOptions, TorchSharp.Modules.RAdam.Options>(groups, (o, t) => o with
        {
            Beta1 = t.beta1 ?? o.Beta1, Beta2 = t.beta2 ?? o.Beta2, Eps = t.eps ?? o.Eps, WeightDecay = t.weight_decay ?? o.WeightDecay,
        }), lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize, implementation, flat) { }

    /// <summary>The first group's (beta1, beta2); setting them sets every group's (TorchSharp's <c>OneCycleLR</c> uses this).</summary>
    public (double, double) Betas
    {
        get => (ParamGroups[0].Options.Beta1, ParamGroups[0].Options.Beta2);
        set => SetOnAllGroups(o => o with { Beta1 = value.Item1, Beta2 = value.Item2 });
    }

    /// <inheritdoc/>
    protected override string SparseGradientMessage => "RAdam does not support sparse gradients";

    /// <inheritdoc/>
    protected override bool ForeachMatchesForLoop => Info.ForeachMatchesForLoop;

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.ExpAvg).LikeParameter(StateKeys.ExpAvgSq);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(RAdamOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, exp_avg, exp_avg_sq.
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.ExpAvg, zeros_like(parameter));
        state.Set(StateKeys.ExpAvgSq, zeros_like(parameter));
    }

    // The maximum length of the approximated SMA, ρ∞ = 2 / (1 - β2) - 1, in Python floats.
    private static double RhoInf(RAdamOptions o) => 2 / (1 - o.Beta2) - 1;

    // ρ_t = ρ∞ - 2 t β2^t / (1 - β2^t), evaluated left to right as Python does.
    private static double RhoT(RAdamOptions o, double rhoInf, double step) =>
        rhoInf - 2 * step * Math.Pow(o.Beta2, step) / (1 - Math.Pow(o.Beta2, step));

    // The variance rectification term r_t; ** 0.5 is C's pow, as Math.Pow is.
    private static double Rect(double rhoT, double rhoInf) =>
        Math.Pow((rhoT - 4) * (rhoT - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rhoT), 0.5);

    /// <inheritdoc/>
    protected override void SingleTensorStep(RAdamOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(RAdamOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    private protected override bool FusedByThisLibrary => true;

    /// <inheritdoc/>
    protected override void FusedStep(RAdamOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf)
    {
        var rhoInf = RhoInf(o);
        CSharpFused.Step(bucket, new[] { StateKeys.ExpAvg, StateKeys.ExpAvgSq }, gradScale, foundInf,
            (_, step) => new RAdamUpdate<float>(o, Scalars(o, rhoInf, step)), (_, step) => new RAdamUpdate<double>(o, Scalars(o, rhoInf, step)));
    }

    // The for-loop's Python-float scalars of one step: 1 - β1^t, (1 - β2^t) ** 0.5, and r_t where ρ_t > 5 (else null).
    private static (double BiasCorrection1, double BiasCorrection2Sqrt, double? Rect) Scalars(RAdamOptions o, double rhoInf, double step)
    {
        var rhoT = RhoT(o, rhoInf, step);
        return (1 - Math.Pow(o.Beta1, step), Math.Pow(1 - Math.Pow(o.Beta2, step), 0.5), rhoT > 5.0 ? Rect(rhoT, rhoInf) : null);
    }

    // PyTorch's _single_tensor_radam (real params, capturable=False, differentiable=False).
    private static void SingleTensor(StepBatch batch, RAdamOptions o)
    {
        var rhoInf = RhoInf(o);
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var expAvg = state[StateKeys.ExpAvg];
            var expAvgSq = state[StateKeys.ExpAvgSq];
            var step = StateTensors.IncrementStep(state[StateKeys.Step]);

            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize, o.DecoupledWeightDecay);

            Aten.Lerp_(expAvg, grad, 1 - o.Beta1);
            expAvgSq.mul_(S(o.Beta2)).addcmul_(grad, grad, S(1 - o.Beta2));

            var biasCorrection1 = 1 - Math.Pow(o.Beta1, step);
            var biasCorrection2 = 1 - Math.Pow(o.Beta2, step);
            var biasCorrectedExpAvg = expAvg.div(S(biasCorrection1));
            var rhoT = RhoT(o, rhoInf, step);

            if (rhoT > 5.0)
            {
                // bias_corrected_exp_avg * lr * _compute_adaptive_lr() * _compute_rect(), left to right; the adaptive
                // rate is `(bias_correction2 ** 0.5) / (sqrt(v) + eps)`, a Python float over a tensor, which PyTorch
                // evaluates as `tensor.reciprocal() * float`.
                var scaled = biasCorrectedExpAvg.mul(S(o.Lr));
                var adaptiveLr = expAvgSq.sqrt().add_(S(o.Eps), One).reciprocal().mul(S(Math.Pow(biasCorrection2, 0.5)));
                param.add_(scaled.mul(adaptiveLr).mul(S(Rect(rhoT, rhoInf))), S(-1.0));
            }
            else
            {
                param.add_(biasCorrectedExpAvg.mul(S(o.Lr)), S(-1.0));
            }
        }
    }

    // PyTorch's _multi_tensor_radam (non-capturable).
    private static void MultiTensor(StepBatch bucket, RAdamOptions o)
    {
        var expAvgs = bucket.States.Select(s => s[StateKeys.ExpAvg]).ToList();
        var expAvgSqs = bucket.States.Select(s => s[StateKeys.ExpAvgSq]).ToList();
        var steps = bucket.States.Select(s => s[StateKeys.Step]).ToList();

        Aten.ForeachAdd_(steps, 1.0);

        var rhoInf = RhoInf(o);
        var stepValues = steps.Select(StateTensors.Value).ToList();
        var rhoTs = stepValues.Select(step => RhoT(o, rhoInf, step)).ToList();

        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize, o.DecoupledWeightDecay);

        Aten.ForeachLerp_(expAvgs, grads, 1 - o.Beta1);
        Aten.ForeachMul_(expAvgSqs, o.Beta2);
        Aten.ForeachAddcmul_(expAvgSqs, grads, grads, 1 - o.Beta2);

        // PyTorch: rect = ... if rho_t > 5 else 0; unrectified = 0 if rect > 0 else 1.0.
        var rects = rhoTs.Select(rhoT => rhoT > 5 ? Rect(rhoT, rhoInf) : 0.0).ToList();
        var unrectified = rects.Select(rect => rect > 0 ? 0.0 : 1.0).ToList();
        var biasCorrection1 = stepValues.Select(step => 1 - Math.Pow(o.Beta1, step)).ToList();
        var unrectStepSize = unrectified.Select((u, i) => o.Lr * u / biasCorrection1[i] * -1).ToList();
        var biasCorrection2 = stepValues.Select((step, i) => Math.Pow(1 - Math.Pow(o.Beta2, step), 0.5) * (o.Lr * rects[i] / biasCorrection1[i]) * -1).ToList();

        // buffer = sqrt(1 - β2^t) · rect_step_size / (sqrt(v) + eps) + unrect_step_size
        var buffer = Aten.ForeachSqrt(expAvgSqs);
        Aten.ForeachAdd_(buffer, o.Eps);
        Aten.ForeachDiv_(buffer, biasCorrection2);
        Aten.ForeachReciprocal_(buffer);
        Aten.ForeachAdd_(buffer, unrectStepSize);
        Aten.ForeachAddcmul_(bucket.Params, expAvgs, buffer);
    }
}

/// <summary>
/// One element of <see cref="RAdam"/>'s for-loop update, in one pass (ATen has no fused RAdam): its operations in its
/// order, each rounded to <typeparamref name="T"/>, with the step's scalars (computed in double as Python does) rounded
/// once. Streams: S0 exp_avg, S1 exp_avg_sq.
/// </summary>
internal readonly unsafe struct RAdamUpdate<T> : IFusedUpdate<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FusedGradient<T> _gradient;
    private readonly LerpInPlace<T> _expAvg;
    private readonly SquareAverage<T> _expAvgSq;
    private readonly T _eps, _lr, _biasCorrection1, _biasCorrection2Sqrt, _rect;
    private readonly bool _rectified;

    public RAdamUpdate(RAdamOptions o, (double BiasCorrection1, double BiasCorrection2Sqrt, double? Rect) step)
    {
        _gradient = new FusedGradient<T>(o.Maximize, o.Lr, o.WeightDecay, o.DecoupledWeightDecay);
        _expAvg = new LerpInPlace<T>(1 - o.Beta1);
        _expAvgSq = new SquareAverage<T>(o.Beta2);
        _eps = CpuFused.Scalar<T>(o.Eps);
        _lr = CpuFused.Scalar<T>(o.Lr);
        _biasCorrection1 = CpuFused.Scalar<T>(step.BiasCorrection1);
        _biasCorrection2Sqrt = CpuFused.Scalar<T>(step.BiasCorrection2Sqrt);
        _rectified = step.Rect is not null;
        _rect = CpuFused.Scalar<T>(step.Rect ?? 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Update(in Streams<T> at)
    {
        var g = _gradient.Of(at, out var p);
        var expAvg = _expAvg.Apply(at.S0, g);
        var expAvgSq = _expAvgSq.Apply(at.S1, g);
        var scaled = expAvg / new Vector<T>(_biasCorrection1) * _lr;
        if (_rectified)
        {
            var adaptiveLr = Vector<T>.One / (Vector.SquareRoot(expAvgSq) + new Vector<T>(_eps)) * _biasCorrection2Sqrt;
            scaled = scaled * adaptiveLr * _rect;
        }
        CpuFused.Store(at.Param, p - scaled);
    }
}

/// <summary>
/// RAdam's state in the checkpoint format of TorchSharp's <c>RAdam</c>. Options: beta1, beta2, eps, weight_decay (f64).
/// State: step (i64) | exp_avg | exp_avg_sq.
/// </summary>
/// <remarks>
/// The state is PyTorch's, with TorchSharp's whole-number step. TorchSharp's RAdam has neither <c>maximize</c> nor
/// <c>decoupled_weight_decay</c> (it minimizes, with L2 weight decay): reading sets both false, writing refuses a group
/// with either. Its update differs from PyTorch's where the variance is rectified (rho_t &gt; 5): it multiplies by
/// <c>lr</c> twice; before that it is PyTorch's but for exp_avg's <c>mul_().add_()</c> in place of <c>lerp_</c>. The
/// state (moments and count) does not depend on the update, so it moves between the two unchanged. A parameter
/// TorchSharp never stepped (step 0, all-zero buffers) has no state in PyTorch.
/// </remarks>
internal sealed class RAdamTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "RAdam";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "beta1", "beta2", "eps", "weight_decay" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = new KeyValuePair<string, object?>[]
    {
        new("decoupled_weight_decay", false), new("maximize", false),
    };

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var read = new Dictionary<string, Tensor> { ["exp_avg"] = reader.ReadTensor("exp_avg"), ["exp_avg_sq"] = reader.ReadTensor("exp_avg_sq") };
        if (step == 0 && StateTensors.AllZeroExceptStep(read)) return null;
        var state = new ParameterState();
        state.Set("step", StateTensors.NewStep(step));
        state.Set("exp_avg", read["exp_avg"]);
        state.Set("exp_avg_sq", read["exp_avg_sq"]);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get("step"));
        writer.WriteTensor(Get("exp_avg") ?? zeros_like(parameter));
        writer.WriteTensor(Get("exp_avg_sq") ?? zeros_like(parameter));
    }
}
