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

/// <summary>The hyperparameters of <see cref="Adamax"/>. A new instance holds PyTorch's defaults.</summary>
public sealed record AdamaxOptions : OptimizerOptions, IBetasOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, eps, betas, weight_decay).</summary>
    public static OptionSchema<AdamaxOptions> Schema { get; } = new OptionSchema<AdamaxOptions>()
        .Lr()
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Double("beta1", o => o.Beta1, (o, v) => o with { Beta1 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 0"))
        .Double("beta2", o => o.Beta2, (o, v) => o with { Beta2 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 1"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with PyTorch's Adamax defaults (<c>lr</c> 2e-3).</summary>
    public AdamaxOptions() => Lr = 2e-3;

    /// <summary>Coefficient of the running average of the gradient, in [0, 1) (PyTorch's <c>betas[0]</c>).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Decay of the infinity norm, in [0, 1) (PyTorch's <c>betas[1]</c>).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Term added to <c>|grad|</c> before the running maximum, for numerical stability.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    OptimizerOptions IBetasOptions.WithBetas(double beta1, double beta2) => this with { Beta1 = beta1, Beta2 = beta2 };
}

/// <summary>
/// Adamax (Adam with the infinity norm) with optional weight decay and maximization: PyTorch 2.x's
/// <c>torch.optim.Adamax</c>, op for op. ATen has no fused Adamax kernel.
/// </summary>
public sealed class Adamax : Optimizer<AdamaxOptions>, IBetas
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<AdamaxOptions> Info { get; } = AlgorithmInfo.Of<Adamax, AdamaxOptions>("Adamax", g => new Adamax(g),
        hasFusedKernel: true, torchSharpLayout: new AdamaxTorchSharpLayout());

    /// <summary>Creates Adamax over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.Adamax</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="beta1">Coefficient of the running average of the gradient.</param>
    /// <param name="beta2">Decay of the infinity norm.</param>
    /// <param name="eps">Term added to <c>|grad|</c> for numerical stability.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="maximize">Maximize the objective (PyTorch's; TorchSharp's Adamax has none).</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public Adamax(IEnumerable<Parameter> parameters, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<AdamaxOptions>(parameters), lr, beta1, beta2, eps, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Adamax over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Adamax(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Adamax(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<AdamaxOptions>(parameters), lr, beta1, beta2, eps, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Adamax over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Adamax(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Adamax(IEnumerable<ParamGroupSpec<AdamaxOptions>> groups, double lr = 2e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new AdamaxOptions
        {
            Lr = lr, Eps = eps, Beta1 = beta1, Beta2 = beta2, WeightDecay = weight_decay, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates Adamax over TorchSharp's parameter groups (<c>new Adamax.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.Adamax</c>): each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="Adamax(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Adamax(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.Adamax.Options>> groups, double lr = 2e-3, double beta1 = 0.9,
        double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<AdamaxOptions, TorchSharp.Modules.Adamax.Options>(groups, (o, t) => o with
        {
            Beta1 = t.beta1 ?? o.Beta1, Beta2 = t.beta2 ?? o.Beta2, Eps = t.eps ?? o.Eps, WeightDecay = t.weight_decay ?? o.WeightDecay,
        }), lr, beta1, beta2, eps, weight_decay, maximize, implementation, flat) { }

    /// <summary>The first group's (beta1, beta2); setting them sets every group's (TorchSharp's <c>OneCycleLR</c> uses this).</summary>
    public (double, double) Betas
    {
        get => (ParamGroups[0].Options.Beta1, ParamGroups[0].Options.Beta2);
        set => SetOnAllGroups(o => o with { Beta1 = value.Item1, Beta2 = value.Item2 });
    }

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.ExpAvg).LikeParameter(StateKeys.ExpInf);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(AdamaxOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, exp_avg, exp_inf.
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.ExpAvg, zeros_like(parameter));
        state.Set(StateKeys.ExpInf, zeros_like(parameter));
    }

    /// <inheritdoc/>
    protected override void SingleTensorStep(AdamaxOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(AdamaxOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    private protected override bool FusedByThisLibrary => true;

    /// <inheritdoc/>
    protected override void FusedStep(AdamaxOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        CSharpFused.Step(bucket, new[] { StateKeys.ExpAvg, StateKeys.ExpInf }, gradScale, foundInf,
            (_, step) => new AdamaxUpdate<float>(o, step), (_, step) => new AdamaxUpdate<double>(o, step));

    // PyTorch's _single_tensor_adamax (not differentiable: torch.maximum, not cat + amax; same values).
    private static void SingleTensor(StepBatch batch, AdamaxOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var expAvg = state[StateKeys.ExpAvg];
            var expInf = state[StateKeys.ExpInf];
            var step = StateTensors.IncrementStep(state[StateKeys.Step]);

            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize);

            Aten.Lerp_(expAvg, grad, 1 - o.Beta1);
            // torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps), out=exp_inf): TorchSharp has no out=; same bits.
            expInf.copy_(maximum(expInf.mul_(S(o.Beta2)), grad.abs().add_(S(o.Eps), One)));

            // Python floats: beta1 ** step is C's pow, as Math.Pow is.
            var biasCorrection = 1 - Math.Pow(o.Beta1, step);
            var clr = o.Lr / biasCorrection;
            param.addcdiv_(expAvg, expInf, S(-clr));
        }
    }

    // PyTorch's _multi_tensor_adamax: the for-loop's ops over lists, so the same bits on CPU.
    private static void MultiTensor(StepBatch bucket, AdamaxOptions o)
    {
        var expAvgs = bucket.States.Select(s => s[StateKeys.ExpAvg]).ToList();
        var expInfs = bucket.States.Select(s => s[StateKeys.ExpInf]).ToList();
        var steps = bucket.States.Select(s => s[StateKeys.Step]).ToList();

        Aten.ForeachAdd_(steps, 1.0);
        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize);

        Aten.ForeachLerp_(expAvgs, grads, 1 - o.Beta1);
        Aten.ForeachMul_(expInfs, o.Beta2);

        // |grad| + eps: into a copy unless maximize or weight decay already made one (never the caller's gradients).
        if (!o.Maximize && o.WeightDecay == 0) grads = Aten.ForeachAbs(grads);
        else Aten.ForeachAbs_(grads);
        Aten.ForeachAdd_(grads, o.Eps);
        Aten.ForeachMaximum_(expInfs, grads);

        var stepSizes = steps.Select(s => o.Lr / (1 - Math.Pow(o.Beta1, StateTensors.Value(s))) * -1).ToList();
        Aten.ForeachAddcdiv_(bucket.Params, expAvgs, expInfs, stepSizes);
    }
}

/// <summary>
/// One element of <see cref="Adamax"/>'s for-loop update, in one pass (ATen has no fused Adamax): its operations in its
/// order, each rounded to <typeparamref name="T"/>, with <c>lr / (1 - β1^t)</c> computed in double as Python does and
/// rounded once. Streams: S0 exp_avg, S1 exp_inf.
/// </summary>
internal readonly unsafe struct AdamaxUpdate<T> : IFusedUpdate<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FusedGradient<T> _gradient;
    private readonly LerpInPlace<T> _expAvg;
    private readonly T _beta2, _eps, _negativeClr;

    public AdamaxUpdate(AdamaxOptions o, double step)
    {
        _gradient = new FusedGradient<T>(o.Maximize, o.Lr, o.WeightDecay);
        _expAvg = new LerpInPlace<T>(1 - o.Beta1);
        _beta2 = CpuFused.Scalar<T>(o.Beta2);
        _eps = CpuFused.Scalar<T>(o.Eps);
        _negativeClr = CpuFused.Scalar<T>(-(o.Lr / (1 - Math.Pow(o.Beta1, step))));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Update(in Streams<T> at)
    {
        var g = _gradient.Of(at, out var p);
        var expAvg = _expAvg.Apply(at.S0, g);
        var expInf = CpuFused.Maximum(CpuFused.Load(at.S1) * _beta2, Vector.Abs(g) + new Vector<T>(_eps));
        CpuFused.Store(at.S1, expInf);
        CpuFused.Store(at.Param, p + expAvg / expInf * _negativeClr);
    }
}

/// <summary>
/// Adamax's state in the checkpoint format of TorchSharp's <c>Adamax</c>. Options: beta1, beta2, eps, weight_decay
/// (f64). State: step (i64) | exp_avg | exp_inf.
/// </summary>
/// <remarks>
/// The state is PyTorch's, with TorchSharp's whole-number step. TorchSharp's Adamax has no <c>maximize</c> (it always
/// minimizes): reading sets maximize=false, writing refuses a maximizing group. Its update runs exp_avg as
/// <c>mul_(beta1).add_(grad, 1 - beta1)</c> where PyTorch uses <c>lerp_</c>, an ulp apart now and then. A parameter
/// TorchSharp never stepped (step 0, all-zero buffers) has no state in PyTorch.
/// </remarks>
internal sealed class AdamaxTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "Adamax";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "beta1", "beta2", "eps", "weight_decay" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = new KeyValuePair<string, object?>[] { new("maximize", false) };

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var read = new Dictionary<string, Tensor> { ["exp_avg"] = reader.ReadTensor("exp_avg"), ["exp_inf"] = reader.ReadTensor("exp_inf") };
        if (step == 0 && StateTensors.AllZeroExceptStep(read)) return null;
        var state = new ParameterState();
        state.Set("step", StateTensors.NewStep(step));
        state.Set("exp_avg", read["exp_avg"]);
        state.Set("exp_inf", read["exp_inf"]);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get("step"));
        writer.WriteTensor(Get("exp_avg") ?? zeros_like(parameter));
        writer.WriteTensor(Get("exp_inf") ?? zeros_like(parameter));
    }
}
