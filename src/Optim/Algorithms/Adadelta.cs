using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Runtime.CompilerServices;
using Optim.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>The hyperparameters of <see cref="Adadelta"/>. A new instance holds PyTorch's defaults.</summary>
public sealed record AdadeltaOptions : OptimizerOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, rho, eps, weight_decay).</summary>
    public static OptionSchema<AdadeltaOptions> Schema { get; } = new OptionSchema<AdadeltaOptions>()
        .Lr()
        .Double("rho", o => o.Rho, (o, v) => o with { Rho = v }, Rules.ClosedUnit("Invalid rho value"))
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with PyTorch's Adadelta defaults (<c>lr</c> 1.0).</summary>
    public AdadeltaOptions() => Lr = 1.0;

    /// <summary>Coefficient of the running averages of the squared gradient and the squared update, in [0, 1].</summary>
    public double Rho { get; init; } = 0.9;

    /// <summary>Term added inside both square roots for numerical stability.</summary>
    public double Eps { get; init; } = 1e-6;

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;
}

/// <summary>
/// Adadelta with optional weight decay and maximization: PyTorch 2.x's <c>torch.optim.Adadelta</c>, op for op. ATen has
/// no fused Adadelta kernel.
/// </summary>
public sealed class Adadelta : Optimizer<AdadeltaOptions>
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<AdadeltaOptions> Info { get; } = AlgorithmInfo.Of<Adadelta, AdadeltaOptions>("Adadelta", g => new Adadelta(g),
        hasFusedKernel: true, torchSharpLayout: new AdadeltaTorchSharpLayout());

    /// <summary>Creates Adadelta over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.Adadelta</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Coefficient that scales the update before it is applied.</param>
    /// <param name="rho">Coefficient of the running averages.</param>
    /// <param name="eps">Term added inside the square roots for numerical stability.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public Adadelta(IEnumerable<Parameter> parameters, double lr = 1.0, double rho = 0.9, double eps = 1e-6, double weight_decay = 0,
        bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<AdadeltaOptions>(parameters), lr, rho, eps, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Adadelta over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Adadelta(IEnumerable{Parameter}, double, double, double, double, bool, Implementation, bool)"/>
    public Adadelta(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1.0, double rho = 0.9, double eps = 1e-6,
        double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<AdadeltaOptions>(parameters), lr, rho, eps, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates Adadelta over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Adadelta(IEnumerable{Parameter}, double, double, double, double, bool, Implementation, bool)"/>
    public Adadelta(IEnumerable<ParamGroupSpec<AdadeltaOptions>> groups, double lr = 1.0, double rho = 0.9, double eps = 1e-6,
        double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new AdadeltaOptions
        {
            Lr = lr, Rho = rho, Eps = eps, WeightDecay = weight_decay, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates Adadelta over TorchSharp's parameter groups (<c>new Adadelta.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.Adadelta</c>): each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="Adadelta(IEnumerable{Parameter}, double, double, double, double, bool, Implementation, bool)"/>
    public Adadelta(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.Adadelta.Options>> groups, double lr = 1.0, double rho = 0.9,
        double eps = 1e-6, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<AdadeltaOptions, TorchSharp.Modules.Adadelta.Options>(groups, (o, t) => o with
        {
            Rho = t.rho ?? o.Rho, Eps = t.eps ?? o.Eps, WeightDecay = t.weight_decay ?? o.WeightDecay, Maximize = t.maximize ?? o.Maximize,
        }), lr, rho, eps, weight_decay, maximize, implementation, flat) { }

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.SquareAvg).LikeParameter(StateKeys.AccDelta);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(AdadeltaOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, square_avg, acc_delta.
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.SquareAvg, zeros_like(parameter));
        state.Set(StateKeys.AccDelta, zeros_like(parameter));
    }

    /// <inheritdoc/>
    protected override void SingleTensorStep(AdadeltaOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(AdadeltaOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    private protected override bool FusedByThisLibrary => true;

    /// <inheritdoc/>
    protected override void FusedStep(AdadeltaOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        CSharpFused.Step(bucket, new[] { StateKeys.SquareAvg, StateKeys.AccDelta }, gradScale, foundInf,
            new AdadeltaUpdate<float>(o), new AdadeltaUpdate<double>(o));

    // PyTorch's _single_tensor_adadelta.
    private static void SingleTensor(StepBatch batch, AdadeltaOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var squareAvg = state[StateKeys.SquareAvg];
            var accDelta = state[StateKeys.AccDelta];
            // `step += 1`: counted (and saved), not used by the update.
            state[StateKeys.Step].add_(S(1), One);

            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize);

            squareAvg.mul_(S(o.Rho)).addcmul_(grad, grad, S(1 - o.Rho));
            var std = squareAvg.add(S(o.Eps), One).sqrt_();
            var delta = accDelta.add(S(o.Eps), One).sqrt_();
            delta.div_(std).mul_(grad);
            accDelta.mul_(S(o.Rho)).addcmul_(delta, delta, S(1 - o.Rho));
            param.add_(delta, S(-o.Lr));
        }
    }

    // PyTorch's _multi_tensor_adadelta: the for-loop's ops over lists, so the same bits on CPU.
    private static void MultiTensor(StepBatch bucket, AdadeltaOptions o)
    {
        var squareAvgs = bucket.States.Select(s => s[StateKeys.SquareAvg]).ToList();
        var accDeltas = bucket.States.Select(s => s[StateKeys.AccDelta]).ToList();

        Aten.ForeachAdd_(bucket.States.Select(s => s[StateKeys.Step]).ToList(), 1.0);
        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize);

        Aten.ForeachMul_(squareAvgs, o.Rho);
        Aten.ForeachAddcmul_(squareAvgs, grads, grads, 1 - o.Rho);

        var std = Aten.ForeachAdd(squareAvgs, o.Eps);
        Aten.ForeachSqrt_(std);

        var deltas = Aten.ForeachAdd(accDeltas, o.Eps);
        Aten.ForeachSqrt_(deltas);
        Aten.ForeachDiv_(deltas, std);
        Aten.ForeachMul_(deltas, grads);

        Aten.ForeachMul_(accDeltas, o.Rho);
        Aten.ForeachAddcmul_(accDeltas, deltas, deltas, 1 - o.Rho);

        Aten.ForeachAdd_(bucket.Params, deltas, -o.Lr);
    }
}

/// <summary>
/// One element of <see cref="Adadelta"/>'s for-loop update, in one pass (ATen has no fused Adadelta): its operations in
/// its order, each rounded to <typeparamref name="T"/>. Streams: S0 square_avg, S1 acc_delta.
/// </summary>
internal readonly unsafe struct AdadeltaUpdate<T> : IFusedUpdate<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FusedGradient<T> _gradient;
    // square_avg and acc_delta are both running averages of squares with decay rho.
    private readonly SquareAverage<T> _average;
    private readonly T _eps, _negativeLr;

    public AdadeltaUpdate(AdadeltaOptions o)
    {
        _gradient = new FusedGradient<T>(o.Maximize, o.Lr, o.WeightDecay);
        _average = new SquareAverage<T>(o.Rho);
        _eps = CpuFused.Scalar<T>(o.Eps);
        _negativeLr = CpuFused.Scalar<T>(-o.Lr);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Update(in Streams<T> at)
    {
        var g = _gradient.Of(at, out var p);
        var squareAvg = _average.Apply(at.S0, g);
        var eps = new Vector<T>(_eps);
        var std = Vector.SquareRoot(squareAvg + eps);
        var accDelta = CpuFused.Load(at.S1);
        var delta = Vector.SquareRoot(accDelta + eps) / std * g;
        CpuFused.Store(at.S1, _average.Of(accDelta, delta));
        CpuFused.Store(at.Param, p + delta * _negativeLr);
    }
}

/// <summary>
/// Adadelta's state in the checkpoint format of TorchSharp's <c>Adadelta</c>. Options: rho, eps, weight_decay (f64),
/// maximize (bool). State: step (i64) | square_avg | acc_delta.
/// </summary>
/// <remarks>
/// TorchSharp's update is PyTorch's, op for op; its state differs in one field: TorchSharp never advances <c>step</c>
/// (its <c>step()</c> does not increment it), so its files always hold 0, where PyTorch counts the steps taken. Neither
/// update reads the count, so it is carried as is: read as the file's value, written as ours (TorchSharp keeps whatever
/// it loaded). Every parameter has state in TorchSharp from the start; one with step 0 and all-zero buffers (never
/// stepped, or only ever stepped with zero gradients, which leaves both buffers zero) reads as no state, as in PyTorch.
/// </remarks>
internal sealed class AdadeltaTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "Adadelta";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "rho", "eps", "weight_decay", "maximize" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = System.Array.Empty<KeyValuePair<string, object?>>();

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var read = new Dictionary<string, Tensor> { ["square_avg"] = reader.ReadTensor("square_avg"), ["acc_delta"] = reader.ReadTensor("acc_delta") };
        if (step == 0 && StateTensors.AllZeroExceptStep(read)) return null;
        var state = new ParameterState();
        state.Set("step", StateTensors.NewStep(step));
        state.Set("square_avg", read["square_avg"]);
        state.Set("acc_delta", read["acc_delta"]);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get("step"));
        writer.WriteTensor(Get("square_avg") ?? zeros_like(parameter));
        writer.WriteTensor(Get("acc_delta") ?? zeros_like(parameter));
    }
}
