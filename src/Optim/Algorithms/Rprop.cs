using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Runtime.CompilerServices;
using Optim.Kernels;
using Optim.Validation;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>
/// The hyperparameters of <see cref="Rprop"/>. A new instance holds PyTorch's defaults. PyTorch keeps the etas and the
/// step-size bounds as pairs (<c>etas</c>, <c>step_sizes</c>); so do the schema, state dicts and checkpoints.
/// </summary>
public sealed record RpropOptions : OptimizerOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, etas; PyTorch does not check step_sizes).</summary>
    public static OptionSchema<RpropOptions> Schema { get; } = new OptionSchema<RpropOptions>()
        .Lr()
        .Pair("etas", o => (o.Etaminus, o.Etaplus), (o, v) => o with { Etaminus = v.Item1, Etaplus = v.Item2 }, new Rule<(double, double)>(
            v => double.IsFinite(v.Item1) && double.IsFinite(v.Item2) && 0.0 < v.Item1 && v.Item1 < 1.0 && 1.0 < v.Item2,
            v => $"Invalid eta values: {Check.Python(v.Item1)}, {Check.Python(v.Item2)}",
            "finite, 0 < etaminus < 1 < etaplus"))
        .Pair("step_sizes", o => (o.MinStep, o.MaxStep), (o, v) => o with { MinStep = v.Item1, MaxStep = v.Item2 }, new Rule<(double, double)>(
            v => double.IsFinite(v.Item1) && double.IsFinite(v.Item2) && v.Item1 >= 0 && v.Item2 >= 0,
            v => $"Invalid step_sizes values: {Check.Python(v.Item1)}, {Check.Python(v.Item2)}",
            "finite, each >= 0"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with PyTorch's Rprop defaults (<c>lr</c> 1e-2).</summary>
    public RpropOptions() => Lr = 1e-2;

    /// <summary>The factor a step size shrinks by when the gradient changes sign, in (0, 1) (PyTorch's <c>etas[0]</c>).</summary>
    public double Etaminus { get; init; } = 0.5;

    /// <summary>The factor a step size grows by while the gradient keeps its sign, above 1 (PyTorch's <c>etas[1]</c>).</summary>
    public double Etaplus { get; init; } = 1.2;

    /// <summary>The smallest step size (PyTorch's <c>step_sizes[0]</c>).</summary>
    public double MinStep { get; init; } = 1e-6;

    /// <summary>The largest step size (PyTorch's <c>step_sizes[1]</c>).</summary>
    public double MaxStep { get; init; } = 50;

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;
}

/// <summary>
/// Rprop (resilient backpropagation: per-element step sizes that grow while the gradient keeps its sign and shrink when
/// it flips), with maximization: PyTorch 2.x's <c>torch.optim.Rprop</c>, op for op. Each element's first step size is
/// the group's learning rate when the parameter first gets a gradient.
/// </summary>
public sealed class Rprop : Optimizer<RpropOptions>
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<RpropOptions> Info { get; } = AlgorithmInfo.Of<Rprop, RpropOptions>("Rprop", g => new Rprop(g),
        hasFusedKernel: true, torchSharpLayout: new RpropTorchSharpLayout());

    /// <summary>Creates Rprop over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.Rprop</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate: every element's initial step size.</param>
    /// <param name="etaminus">Multiplicative decrease factor, in (0, 1) (PyTorch's <c>etas[0]</c>).</param>
    /// <param name="etaplus">Multiplicative increase factor, above 1 (PyTorch's <c>etas[1]</c>).</param>
    /// <param name="min_step">Minimal step size (PyTorch's <c>step_sizes[0]</c>).</param>
    /// <param name="max_step">Maximal step size (PyTorch's <c>step_sizes[1]</c>).</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public Rprop(IEnumerable<Parameter> parameters, double lr = 1e-2, double etaminus = 0.5, double etaplus = 1.2, double min_step = 1e-6,
        double max_step = 50, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<RpropOptions>(parameters), lr, etaminus, etaplus, min_step, max_step, maximize, implementation, flat) { }

    /// <summary>Creates Rprop over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Rprop(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Rprop(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-2, double etaminus = 0.5, double etaplus = 1.2,
        double min_step = 1e-6, double max_step = 50, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<RpropOptions>(parameters), lr, etaminus, etaplus, min_step, max_step, maximize, implementation, flat) { }

    /// <summary>Creates Rprop over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Rprop(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Rprop(IEnumerable<ParamGroupSpec<RpropOptions>> groups, double lr = 1e-2, double etaminus = 0.5, double etaplus = 1.2,
        double min_step = 1e-6, double max_step = 50, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new RpropOptions
        {
            Lr = lr, Etaminus = etaminus, Etaplus = etaplus, MinStep = min_step, MaxStep = max_step,
            Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates Rprop over TorchSharp's parameter groups (<c>new Rprop.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.Rprop</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="Rprop(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public Rprop(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.Rprop.Options>> groups, double lr = 1e-2, double etaminus = 0.5, double etaplus = 1.2,
        double min_step = 1e-6, double max_step = 50, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<RpropOptions, TorchSharp.Modules.Rprop.Options>(groups, (o, t) => o with
        {
            Etaminus = t.etaminus ?? o.Etaminus, Etaplus = t.etaplus ?? o.Etaplus, MinStep = t.min_step ?? o.MinStep, MaxStep = t.max_step ?? o.MaxStep,
            Maximize = t.maximize ?? o.Maximize,
        }), lr, etaminus, etaplus, min_step, max_step, maximize, implementation, flat) { }

    /// <inheritdoc/>
    protected override string SparseGradientMessage => "Rprop does not support sparse gradients";

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.Prev).LikeParameter(StateKeys.StepSize);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(RpropOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step (0-dim CPU tensor of the scalar dtype), prev, step_size (filled with the group's lr).
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.Prev, zeros_like(parameter));
        state.Set(StateKeys.StepSize, full_like(parameter, S(options.Lr)));
    }

    // sign[sign.gt(0)] = etaplus; sign[sign.lt(0)] = etaminus; sign[sign.eq(0)] = 1 (the scalars rounded to the dtype).
    private static void SignsToFactors(Tensor sign, RpropOptions o)
    {
        using var scope = NewDisposeScope();
        sign.masked_fill_(sign.gt(S(0)), S(o.Etaplus));
        sign.masked_fill_(sign.lt(S(0)), S(o.Etaminus));
        sign.masked_fill_(sign.eq(S(0)), S(1));
    }

    /// <inheritdoc/>
    protected override void SingleTensorStep(RpropOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(RpropOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    private protected override bool FusedByThisLibrary => true;

    /// <inheritdoc/>
    protected override void FusedStep(RpropOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        CSharpFused.Step(bucket, new[] { StateKeys.Prev, StateKeys.StepSize }, gradScale, foundInf, new RpropUpdate<float>(o), new RpropUpdate<double>(o));

    // PyTorch's _single_tensor_rprop (real params, capturable=False, differentiable=False).
    private static void SingleTensor(StepBatch batch, RpropOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            // Not GradientPreparation: Rprop has no weight decay, and its foreach path negates signs and prevs, not gradients.
            var grad = o.Maximize ? batch.Grads[i].neg() : batch.Grads[i];
            var prev = state[StateKeys.Prev];
            var stepSize = state[StateKeys.StepSize];
            state[StateKeys.Step].add_(S(1), One);

            var sign = grad.mul(prev).sign();
            SignsToFactors(sign, o);

            // update step sizes with the step size updates
            stepSize.mul_(sign).clamp_(S(o.MinStep), S(o.MaxStep));

            // for dir < 0, dfdx = 0; for dir >= 0, dfdx = dfdx
            grad = grad.clone();
            grad.masked_fill_(sign.eq(S(o.Etaminus)), S(0));

            param.addcmul_(grad.sign(), stepSize, S(-1));
            prev.copy_(grad);
        }
    }

    // PyTorch's _multi_tensor_rprop (non-capturable). Its `grads[i].copy_(torch.where(signs[i].eq(etaminus), 0, grads[i]))`
    // is a masked fill with zero here: the same values.
    private static void MultiTensor(StepBatch bucket, RpropOptions o)
    {
        var prevs = bucket.States.Select(s => s[StateKeys.Prev]).ToList();
        var stepSizes = bucket.States.Select(s => s[StateKeys.StepSize]).ToList();

        Aten.ForeachAdd_(bucket.States.Select(s => s[StateKeys.Step]).ToList(), 1.0);

        var signs = Aten.ForeachMul(bucket.Grads, prevs);
        if (o.Maximize) Aten.ForeachNeg_(signs);

        // prevs end the step holding this step's (masked) gradients: they serve as the gradient buffer from here on.
        Aten.ForeachCopy_(prevs, bucket.Grads);
        if (o.Maximize) Aten.ForeachNeg_(prevs);
        var grads = prevs;

        Aten.ForeachSign_(signs);
        foreach (var sign in signs) SignsToFactors(sign, o);

        Aten.ForeachMul_(stepSizes, signs);
        foreach (var stepSize in stepSizes) stepSize.clamp_(S(o.MinStep), S(o.MaxStep));

        for (var i = 0; i < grads.Count; i++)
        {
            using var scope = NewDisposeScope();
            grads[i].masked_fill_(signs[i].eq(S(o.Etaminus)), S(0));
        }

        var gradSigns = grads.Select(g => g.sign()).ToList();
        Aten.ForeachAddcmul_(bucket.Params, gradSigns, stepSizes, -1);
    }
}

/// <summary>
/// One element of <see cref="Rprop"/>'s for-loop update, in one pass (ATen has no fused Rprop): the sign of
/// <c>grad * prev</c> turned into a factor, the clamped step size, the gradient zeroed where the sign flipped, then
/// <c>param -= sign(grad) * step_size</c>. Only products, comparisons and selections: the for-loop's bits. Streams:
/// S0 prev, S1 step_size.
/// </summary>
internal readonly unsafe struct RpropUpdate<T> : IFusedUpdate<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _etaplus, _etaminus, _minStep, _maxStep;
    private readonly bool _maximize;

    public RpropUpdate(RpropOptions o)
    {
        _etaplus = CpuFused.Scalar<T>(o.Etaplus);
        _etaminus = CpuFused.Scalar<T>(o.Etaminus);
        _minStep = CpuFused.Scalar<T>(o.MinStep);
        _maxStep = CpuFused.Scalar<T>(o.MaxStep);
        _maximize = o.Maximize;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Update(in Streams<T> at)
    {
        var g = CpuFused.Load(at.Grad);
        if (_maximize) g = -g;
        var product = g * CpuFused.Load(at.S0);
        var zero = Vector<T>.Zero;
        var factor = Vector.ConditionalSelect(Vector.GreaterThan(product, zero), new Vector<T>(_etaplus),
            Vector.ConditionalSelect(Vector.LessThan(product, zero), new Vector<T>(_etaminus), Vector<T>.One));
        // clamp_(min, max): min(max(x, min), max).
        var stepSize = CpuFused.Minimum(CpuFused.Maximum(CpuFused.Load(at.S1) * factor, new Vector<T>(_minStep)), new Vector<T>(_maxStep));
        CpuFused.Store(at.S1, stepSize);
        g = Vector.ConditionalSelect(Vector.Equals(factor, new Vector<T>(_etaminus)), zero, g);
        var sign = Vector.ConditionalSelect(Vector.GreaterThan(g, zero), Vector<T>.One,
            Vector.ConditionalSelect(Vector.LessThan(g, zero), -Vector<T>.One, zero));
        CpuFused.Store(at.Param, CpuFused.Load(at.Param) + -sign * stepSize);
        CpuFused.Store(at.S0, g);
    }
}

/// <summary>
/// Rprop's state in the checkpoint format of TorchSharp's <c>Rprop</c>. Options: maximize (bool), then TorchSharp's
/// etaminus, etaplus, min_step, max_step (f64 each), which are PyTorch's pairs <c>etas</c> and <c>step_sizes</c>.
/// State: step (i64) | prev | step_size.
/// </summary>
/// <remarks>
/// The state is PyTorch's, with TorchSharp's whole-number step; TorchSharp creates it for every parameter up front (step
/// 0, prev zeros, step_size filled with the group's lr), where PyTorch has none until the first step: such a parameter
/// reads as no state, and one with no state is written that way (step_size from the group's current lr, as PyTorch's
/// first step would fill it).
/// </remarks>
internal sealed class RpropTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "Rprop";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "maximize", "etas", "step_sizes" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = System.Array.Empty<KeyValuePair<string, object?>>();

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var prev = reader.ReadTensor("prev");
        var stepSize = reader.ReadTensor("step_size");
        if (step == 0 && NeverStepped(prev, stepSize, (double)group["lr"]!)) return null;
        var state = new ParameterState();
        state.Set("step", StateTensors.NewStep(step));
        state.Set("prev", prev);
        state.Set("step_size", stepSize);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get("step"));
        writer.WriteTensor(Get("prev") ?? zeros_like(parameter));
        writer.WriteTensor(Get("step_size") ?? full_like(parameter, S((double)group["lr"]!)));
    }

    // State as TorchSharp creates it: prev all zero, step_size all lr (in the parameter's dtype).
    private static bool NeverStepped(Tensor prev, Tensor stepSize, double lr)
    {
        using var scope = NewDisposeScope();
        return prev.count_nonzero().item<long>() == 0 && stepSize.eq(full_like(stepSize, S(lr))).all().item<bool>();
    }
}
