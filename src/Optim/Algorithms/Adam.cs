using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>
/// The hyperparameters of <see cref="Adam"/> and <see cref="AdamW"/> (the same set, as in PyTorch; the algorithm decides
/// whether <see cref="WeightDecay"/> is an L2 penalty or decoupled decay). A new instance holds PyTorch's Adam defaults.
/// </summary>
public sealed record AdamOptions : OptimizerOptions, IBetasOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, eps, betas, weight_decay).</summary>
    public static OptionSchema<AdamOptions> Schema { get; } = new OptionSchema<AdamOptions>()
        .Lr()
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Double("beta1", o => o.Beta1, (o, v) => o with { Beta1 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 0"))
        .Double("beta2", o => o.Beta2, (o, v) => o with { Beta2 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 1"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Bool("amsgrad", o => o.Amsgrad, (o, v) => o with { Amsgrad = v })
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Coefficient of the running average of the gradient, in [0, 1) (PyTorch's <c>betas[0]</c>).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Coefficient of the running average of the squared gradient, in [0, 1) (PyTorch's <c>betas[1]</c>).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Term added to the denominator for numerical stability.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>
    /// Weight decay: for <see cref="Adam"/> an L2 penalty added to the gradient, for <see cref="AdamW"/> the parameter is
    /// scaled by <c>1 - lr * weight_decay</c> before the update.
    /// </summary>
    public double WeightDecay { get; init; }

    /// <summary>Use the AMSGrad variant (the maximum of the past squared-gradient averages in the denominator).</summary>
    public bool Amsgrad { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    OptimizerOptions IBetasOptions.WithBetas(double beta1, double beta2) => this with { Beta1 = beta1, Beta2 = beta2 };

    internal static AdamOptions Create(double lr, double beta1, double beta2, double eps, double weightDecay, bool amsgrad,
        bool maximize, Implementation implementation) => new()
        {
            Lr = lr, Eps = eps, Beta1 = beta1, Beta2 = beta2, WeightDecay = weightDecay,
            Amsgrad = amsgrad, Maximize = maximize, Implementation = implementation,
        };
}

/// <summary>
/// Adam with optional L2 weight decay, AMSGrad and maximization: PyTorch 2.x's <c>torch.optim.Adam</c>, op for op.
/// <see cref="AdamW"/> derives from it, as PyTorch's AdamW is Adam with decoupled weight decay.
/// </summary>
public class Adam : Optimizer<AdamOptions>, IBetas
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<AdamOptions> Info { get; } = AlgorithmInfo.Of<Adam, AdamOptions>("Adam", g => new Adam(g), hasFusedKernel: true,
        torchSharpLayout: new AdamTorchSharpLayout("Adam"));

    private readonly bool _decoupledWeightDecay;

    /// <summary>Creates Adam over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.Adam</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="beta1">Coefficient of the running average of the gradient.</param>
    /// <param name="beta2">Coefficient of the running average of the squared gradient.</param>
    /// <param name="eps">Term added to the denominator for numerical stability.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="amsgrad">Use the AMSGrad variant.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public Adam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 0, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<AdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation, flat) { }

    /// <summary>Creates Adam over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Adam(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public Adam(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<AdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation, flat) { }

    /// <summary>Creates Adam over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Adam(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public Adam(IEnumerable<ParamGroupSpec<AdamOptions>> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(groups, AdamOptions.Create(lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation), decoupledWeightDecay: false) => UseFlatParameters(flat);

    /// <summary>
    /// Creates Adam over TorchSharp's parameter groups (<c>new Adam.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.Adam</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="Adam(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public Adam(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.Adam.Options>> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<AdamOptions, TorchSharp.Modules.Adam.Options>(groups, (o, t) => o with
        {
            Beta1 = t.beta1 ?? o.Beta1, Beta2 = t.beta2 ?? o.Beta2, Eps = t.eps ?? o.Eps, WeightDecay = t.weight_decay ?? o.WeightDecay,
            Amsgrad = t.amsgrad ?? o.Amsgrad, Maximize = t.maximize ?? o.Maximize,
        }), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation, flat) { }

    /// <summary>Creates Adam, or with <paramref name="decoupledWeightDecay"/> AdamW, over parameter groups.</summary>
    private protected Adam(IEnumerable<ParamGroupSpec<AdamOptions>> groups, AdamOptions defaults, bool decoupledWeightDecay)
        : base(groups, defaults) => _decoupledWeightDecay = decoupledWeightDecay;

    /// <summary>The first group's (beta1, beta2); setting them sets every group's (TorchSharp's <c>OneCycleLR</c> uses this).</summary>
    public (double, double) Betas
    {
        get => (ParamGroups[0].Options.Beta1, ParamGroups[0].Options.Beta2);
        set => SetOnAllGroups(o => o with { Beta1 = value.Item1, Beta2 = value.Item2 });
    }

    /// <inheritdoc/>
    protected override string SparseGradientMessage => "Adam does not support sparse gradients, please consider SparseAdam instead";

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.ExpAvg).LikeParameter(StateKeys.ExpAvgSq).LikeParameter(StateKeys.MaxExpAvgSq, required: false);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(AdamOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, exp_avg, exp_avg_sq, max_exp_avg_sq.
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.ExpAvg, zeros_like(parameter));
        state.Set(StateKeys.ExpAvgSq, zeros_like(parameter));
        if (options.Amsgrad) state.Set(StateKeys.MaxExpAvgSq, zeros_like(parameter));
    }

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    protected override void SingleTensorStep(AdamOptions options, StepBatch batch) => SingleTensor(batch, options, _decoupledWeightDecay);

    /// <inheritdoc/>
    protected override void MultiTensorStep(AdamOptions options, StepBatch bucket) => MultiTensor(bucket, options, _decoupledWeightDecay);

    /// <inheritdoc/>
    protected override void FusedStep(AdamOptions options, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        Fused(bucket, options, _decoupledWeightDecay, gradScale, foundInf);

    // PyTorch's _single_tensor_adam (AdamW: decoupled_weight_decay=True).
    private static void SingleTensor(StepBatch batch, AdamOptions o, bool decoupledWeightDecay)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var expAvg = state[StateKeys.ExpAvg];
            var expAvgSq = state[StateKeys.ExpAvgSq];
            var step = StateTensors.IncrementStep(state[StateKeys.Step]);

            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize, decoupledWeightDecay);

            Aten.Lerp_(expAvg, grad, 1 - o.Beta1);
            expAvgSq.mul_(S(o.Beta2)).addcmul_(grad, grad, S(1 - o.Beta2));

            // Python floats: beta ** step and bias_correction2 ** 0.5 are C's pow, as Math.Pow is.
            var biasCorrection1 = 1 - Math.Pow(o.Beta1, step);
            var biasCorrection2 = 1 - Math.Pow(o.Beta2, step);
            var stepSize = o.Lr / biasCorrection1;
            var biasCorrection2Sqrt = Math.Pow(biasCorrection2, 0.5);

            Tensor denom;
            if (o.Amsgrad)
            {
                var maxExpAvgSq = StateTensors.GetOrAddZeros(state, StateKeys.MaxExpAvgSq, param);
                // torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq): TorchSharp has no out=; same bits.
                maxExpAvgSq.copy_(maximum(maxExpAvgSq, expAvgSq));
                denom = maxExpAvgSq.sqrt().div(S(biasCorrection2Sqrt)).add_(S(o.Eps), One);
            }
            else
            {
                denom = expAvgSq.sqrt().div(S(biasCorrection2Sqrt)).add_(S(o.Eps), One);
            }

            param.addcdiv_(expAvg, denom, S(-stepSize));
        }
    }

    // PyTorch's _multi_tensor_adam (non-capturable): the same ops as the for-loop, over lists.
    private static void MultiTensor(StepBatch bucket, AdamOptions o, bool decoupledWeightDecay)
    {
        var expAvgs = bucket.States.Select(s => s[StateKeys.ExpAvg]).ToList();
        var expAvgSqs = bucket.States.Select(s => s[StateKeys.ExpAvgSq]).ToList();
        var steps = bucket.States.Select(s => s[StateKeys.Step]).ToList();

        Aten.ForeachAdd_(steps, 1.0);
        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize, decoupledWeightDecay);

        Aten.ForeachLerp_(expAvgs, grads, 1 - o.Beta1);
        Aten.ForeachMul_(expAvgSqs, o.Beta2);
        Aten.ForeachAddcmul_(expAvgSqs, grads, grads, 1 - o.Beta2);

        var stepValues = steps.Select(StateTensors.Value).ToList();
        var stepSizes = stepValues.Select(step => o.Lr / (1 - Math.Pow(o.Beta1, step)) * -1).ToList();
        var biasCorrection2Sqrts = stepValues.Select(step => Math.Pow(1 - Math.Pow(o.Beta2, step), 0.5)).ToList();

        Tensor[] denoms;
        if (o.Amsgrad)
        {
            var maxExpAvgSqs = bucket.States.Select((s, i) => StateTensors.GetOrAddZeros(s, StateKeys.MaxExpAvgSq, bucket.Params[i])).ToList();
            Aten.ForeachMaximum_(maxExpAvgSqs, expAvgSqs);
            denoms = Aten.ForeachSqrt(maxExpAvgSqs);
        }
        else
        {
            denoms = Aten.ForeachSqrt(expAvgSqs);
        }
        Aten.ForeachDiv_(denoms, biasCorrection2Sqrts);
        Aten.ForeachAdd_(denoms, o.Eps);
        Aten.ForeachAddcdiv_(bucket.Params, expAvgs, denoms, stepSizes);
    }

    // PyTorch's _fused_adam (the kernel does not count steps: see StateTensors.CountFusedStep).
    private static void Fused(StepBatch bucket, AdamOptions o, bool decoupledWeightDecay, Tensor? gradScale, Tensor? foundInf)
    {
        var maxExpAvgSqs = o.Amsgrad
            ? bucket.States.Select((s, i) => StateTensors.GetOrAddZeros(s, StateKeys.MaxExpAvgSq, bucket.Params[i])).ToList()
            : new List<Tensor>();
        var kernel = decoupledWeightDecay ? (FusedKernel)Aten.FusedAdamW_ : Aten.FusedAdam_;
        StateTensors.CountFusedStep(bucket, foundInf, steps => kernel(bucket.Params, bucket.Grads,
            bucket.States.Select(s => s[StateKeys.ExpAvg]).ToList(), bucket.States.Select(s => s[StateKeys.ExpAvgSq]).ToList(),
            maxExpAvgSqs, steps, o.Lr, o.Beta1, o.Beta2, o.WeightDecay, o.Eps, o.Amsgrad, o.Maximize, gradScale, foundInf));
    }

    private delegate void FusedKernel(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads, IReadOnlyList<Tensor> expAvgs,
        IReadOnlyList<Tensor> expAvgSqs, IReadOnlyList<Tensor> maxExpAvgSqs, IReadOnlyList<Tensor> steps, double lr, double beta1,
        double beta2, double weightDecay, double eps, bool amsgrad, bool maximize, Tensor? gradScale, Tensor? foundInf);
}

/// <summary>
/// Adam's and AdamW's state in the checkpoint format of TorchSharp's <c>Adam</c>/<c>AdamW</c>. Options: beta1, beta2,
/// eps, weight_decay (f64), amsgrad, maximize (bool); TorchSharp keeps PyTorch's <c>betas</c> as two fields. State:
/// step (i64) | exp_avg | exp_avg_sq | has max_exp_avg_sq (bool) [| max_exp_avg_sq].
/// </summary>
internal sealed class AdamTorchSharpLayout(string className) : ITorchSharpLayout
{
    public string ClassName { get; } = className;

    public IReadOnlyList<string> OptionFields { get; } = new[] { "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = Array.Empty<KeyValuePair<string, object?>>();

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var read = new List<KeyValuePair<string, Tensor>> { new(StateKeys.ExpAvg, reader.ReadTensor(StateKeys.ExpAvg)), new(StateKeys.ExpAvgSq, reader.ReadTensor(StateKeys.ExpAvgSq)) };
        if (reader.ReadOptionalTensor(StateKeys.MaxExpAvgSq) is { } max) read.Add(new(StateKeys.MaxExpAvgSq, max));
        // A parameter TorchSharp never stepped (step 0, all-zero buffers) has no state in PyTorch.
        if (step == 0 && StateTensors.AllZeroExceptStep(read.ToDictionary())) return null;
        var state = new ParameterState();
        state.Set(StateKeys.Step, StateTensors.NewStep(step));
        foreach (var (key, tensor) in read) state.Set(key, tensor);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get(StateKeys.Step));
        writer.WriteTensor(Get(StateKeys.ExpAvg) ?? zeros_like(parameter));
        writer.WriteTensor(Get(StateKeys.ExpAvgSq) ?? zeros_like(parameter));
        // TorchSharp has max_exp_avg_sq exactly when the group was created with amsgrad.
        writer.WriteOptionalTensor(Get(StateKeys.MaxExpAvgSq) ?? ((bool)group["amsgrad"]! ? zeros_like(parameter) : null));
    }
}
