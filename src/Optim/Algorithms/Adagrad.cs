using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using Optim.Validation;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>The hyperparameters of <see cref="Adagrad"/>. A new instance holds PyTorch's defaults.</summary>
public sealed record AdagradOptions : OptimizerOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order.</summary>
    public static OptionSchema<AdagradOptions> Schema { get; } = new OptionSchema<AdagradOptions>()
        .Lr()
        .Double("lr_decay", o => o.LrDecay, (o, v) => o with { LrDecay = v }, Rules.NonNegative("Invalid lr_decay value"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Double("initial_accumulator_value", o => o.InitialAccumulatorValue, (o, v) => o with { InitialAccumulatorValue = v },
            Rules.NonNegative("Invalid initial_accumulator_value value"))
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with PyTorch's Adagrad defaults (<c>lr</c> 1e-2).</summary>
    public AdagradOptions() => Lr = 1e-2;

    /// <summary>Learning-rate decay: step <c>t</c> uses <c>lr / (1 + (t - 1) * lr_decay)</c>.</summary>
    public double LrDecay { get; init; }

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <summary>The value the sum of squared gradients starts from (used when the state is created).</summary>
    public double InitialAccumulatorValue { get; init; }

    /// <summary>Term added to the denominator for numerical stability.</summary>
    public double Eps { get; init; } = 1e-10;

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;
}

/// <summary>
/// Adagrad with optional learning-rate decay, weight decay and maximization: PyTorch 2.x's <c>torch.optim.Adagrad</c>,
/// op for op (dense gradients). As in PyTorch, every parameter's state exists from construction.
/// </summary>
public sealed class Adagrad : Optimizer<AdagradOptions>
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<AdagradOptions> Info { get; } = AlgorithmInfo.Of<Adagrad, AdagradOptions>("Adagrad", g => new Adagrad(g), hasFusedKernel: true, foreachMatchesForLoop: false,
        torchSharpLayout: new AdagradTorchSharpLayout());

    /// <summary>Creates Adagrad over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.Adagrad</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="lr_decay">Learning-rate decay.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="initial_accumulator_value">Initial value of the sum of squared gradients.</param>
    /// <param name="eps">Term added to the denominator for numerical stability.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public Adagrad(IEnumerable<Parameter> parameters, double lr = 1e-2, double lr_decay = 0, double weight_decay = 0,
        double initial_accumulator_value = 0, double eps = 1e-10, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<AdagradOptions>(parameters), lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, implementation, flat) { }

    /// <summary>Creates Adagrad over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Adagrad(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Adagrad(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-2, double lr_decay = 0, double weight_decay = 0,
        double initial_accumulator_value = 0, double eps = 1e-10, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<AdagradOptions>(parameters), lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, implementation, flat) { }

    /// <summary>Creates Adagrad over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Adagrad(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Adagrad(IEnumerable<ParamGroupSpec<AdagradOptions>> groups, double lr = 1e-2, double lr_decay = 0, double weight_decay = 0,
        double initial_accumulator_value = 0, double eps = 1e-10, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new AdagradOptions
        {
            Lr = lr, LrDecay = lr_decay, WeightDecay = weight_decay, InitialAccumulatorValue = initial_accumulator_value, Eps = eps,
            Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates Adagrad over TorchSharp's parameter groups (<c>new Adagrad.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.Adagrad</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="Adagrad(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Adagrad(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.Adagrad.Options>> groups, double lr = 1e-2, double lr_decay = 0, double weight_decay = 0,
        double initial_accumulator_value = 0, double eps = 1e-10, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<AdagradOptions, TorchSharp.Modules.Adagrad.Options>(groups, (o, t) => o with
        {
            LrDecay = t.lr_decay ?? o.LrDecay, WeightDecay = t.weight_decay ?? o.WeightDecay,
            InitialAccumulatorValue = t.initial_accumulator_value ?? o.InitialAccumulatorValue, Eps = t.eps ?? o.Eps,
        }), lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, implementation, flat) { }

    /// <inheritdoc/>
    protected override bool InitializesStateEagerly => true;

    /// <inheritdoc/>
    protected override bool ForeachMatchesForLoop => Info.ForeachMatchesForLoop;

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.Sum);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(AdagradOptions options, Parameter parameter, ParameterState state)
    {
        // ATen refuses to fill a tensor with a value its dtype cannot hold; say which hyperparameter it was.
        var initial = Check.FitsDtype(options.InitialAccumulatorValue, parameter.dtype, "initial_accumulator_value", "Invalid initial_accumulator_value value");
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.Sum, full_like(parameter, S(initial)));
    }

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    protected override void SingleTensorStep(AdagradOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(AdagradOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override void FusedStep(AdagradOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        Fused(bucket, o, gradScale, foundInf);

    // PyTorch's _single_tensor_adagrad (dense gradients).
    private static void SingleTensor(StepBatch batch, AdagradOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var step = StateTensors.IncrementStep(state[StateKeys.Step]);
            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize);

            var clr = o.Lr / (1 + (step - 1) * o.LrDecay);
            var sum = state[StateKeys.Sum];
            sum.addcmul_(grad, grad, S(1));
            var std = sum.sqrt().add_(S(o.Eps), One);
            param.addcdiv_(grad, std, S(-clr));
        }
    }

    // PyTorch's _multi_tensor_adagrad. It scales the gradient by -clr before dividing (the for-loop divides first and
    // passes -clr as addcdiv's value), so even in PyTorch foreach and for-loop differ in the last bit.
    private static void MultiTensor(StepBatch bucket, AdagradOptions o)
    {
        var sums = bucket.States.Select(s => s[StateKeys.Sum]).ToList();
        var steps = bucket.States.Select(s => s[StateKeys.Step]).ToList();

        Aten.ForeachAdd_(steps, 1.0);
        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize);

        var minusClr = steps.Select(s => -o.Lr / (1 + (StateTensors.Value(s) - 1) * o.LrDecay)).ToList();
        Aten.ForeachAddcmul_(sums, grads, grads, 1);
        var std = Aten.ForeachSqrt(sums);
        Aten.ForeachAdd_(std, o.Eps);

        IReadOnlyList<Tensor> numerator;
        if (o.WeightDecay != 0 || o.Maximize)
        {
            // grads is already our own copy: reuse it, as PyTorch does.
            Aten.ForeachMul_(grads, minusClr);
            numerator = grads;
        }
        else
        {
            numerator = Aten.ForeachMul(grads, minusClr);
        }
        Aten.ForeachAddcdiv_(bucket.Params, numerator, std);
    }

    // PyTorch's _fused_adagrad (the kernel does not count steps: see StateTensors.CountFusedStep).
    private static void Fused(StepBatch bucket, AdagradOptions o, Tensor? gradScale, Tensor? foundInf) =>
        StateTensors.CountFusedStep(bucket, foundInf, steps => Aten.FusedAdagrad_(bucket.Params, bucket.Grads,
            bucket.States.Select(s => s[StateKeys.Sum]).ToList(), steps, o.Lr, o.LrDecay, o.WeightDecay, o.Eps, o.Maximize, gradScale, foundInf));
}

/// <summary>
/// Adagrad's state in the checkpoint format of TorchSharp's <c>Adagrad</c>. Options: lr_decay,
/// initial_accumulator_value, eps, weight_decay (f64); TorchSharp's Adagrad has no maximize (it always minimizes).
/// State: step (i64) | sum. The state exists from construction in TorchSharp and PyTorch alike.
/// </summary>
internal sealed class AdagradTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "Adagrad";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "lr_decay", "initial_accumulator_value", "eps", "weight_decay" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = new KeyValuePair<string, object?>[] { new("maximize", false) };

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var sum = reader.ReadTensor(StateKeys.Sum);
        var state = new ParameterState();
        state.Set(StateKeys.Step, StateTensors.NewStep(step));
        state.Set(StateKeys.Sum, sum);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get(StateKeys.Step));
        writer.WriteTensor(Get(StateKeys.Sum) ?? full_like(parameter, S((double)group["initial_accumulator_value"]!)));
    }
}
