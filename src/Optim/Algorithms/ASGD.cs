using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Runtime.CompilerServices;
using Optim.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>The hyperparameters of <see cref="ASGD"/>. A new instance holds PyTorch's defaults.</summary>
public sealed record ASGDOptions : OptimizerOptions
{
    /// <summary>
    /// The declared hyperparameters, in PyTorch's order (lr, lambd, alpha, t0, weight_decay). PyTorch validates lr,
    /// lambd, alpha and weight_decay; t0 it does not check, here it must be finite.
    /// </summary>
    public static OptionSchema<ASGDOptions> Schema { get; } = new OptionSchema<ASGDOptions>()
        .Lr()
        .Double("lambd", o => o.Lambd, (o, v) => o with { Lambd = v }, Rules.NonNegative("Invalid lambd value"))
        .Double("alpha", o => o.Alpha, (o, v) => o with { Alpha = v }, Rules.NonNegative("Invalid alpha value"))
        .Double("t0", o => o.T0, (o, v) => o with { T0 = v }, Rules.Finite("Invalid t0 value"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with PyTorch's ASGD defaults (<c>lr</c> 1e-2).</summary>
    public ASGDOptions() => Lr = 1e-2;

    /// <summary>Decay term: the parameter is scaled by <c>1 - lambd * eta</c> each step.</summary>
    public double Lambd { get; init; } = 1e-4;

    /// <summary>Power of the step-size decay: <c>eta = lr / (1 + lambd * lr * step) ** alpha</c>.</summary>
    public double Alpha { get; init; } = 0.75;

    /// <summary>The step after which averaging starts (<c>mu = 1 / max(1, step - t0)</c>).</summary>
    public double T0 { get; init; } = 1e6;

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;
}

/// <summary>
/// Averaged stochastic gradient descent with optional weight decay and maximization: PyTorch 2.x's
/// <c>torch.optim.ASGD</c>, op for op. The running average of the parameters is the state <c>ax</c>; <c>eta</c> and
/// <c>mu</c> are 0-dim tensors of PyTorch's scalar dtype (float32 unless the default dtype is float64), so their values
/// are rounded to it as in PyTorch. PyTorch's foreach ASGD computes differently from its for-loop (the decay and the
/// gradient step in one <c>addcmul</c>, <c>eta</c> with float32 tensor ops), and so does ours: the two paths differ in the
/// last bits, and <see cref="Implementation.Auto"/> runs the for-loop on CPU. ATen has no fused ASGD kernel:
/// <see cref="Implementation.Fused"/> runs this library's single-pass C# CPU kernel of the for-loop's update.
/// </summary>
public sealed class ASGD : Optimizer<ASGDOptions>
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<ASGDOptions> Info { get; } =
        AlgorithmInfo.Of<ASGD, ASGDOptions>("ASGD", g => new ASGD(g), foreachMatchesForLoop: false,
            hasFusedKernel: true, torchSharpLayout: new ASGDTorchSharpLayout());

    /// <summary>
    /// Creates ASGD over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.ASGD</c>, but
    /// <paramref name="lr"/> defaults to PyTorch's 1e-2 (TorchSharp's factory: 1e-3).
    /// </summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="lambd">Decay term.</param>
    /// <param name="alpha">Power of the step-size decay.</param>
    /// <param name="t0">Step after which averaging starts.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public ASGD(IEnumerable<Parameter> parameters, double lr = 1e-2, double lambd = 1e-4, double alpha = 0.75, double t0 = 1e6,
        double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<ASGDOptions>(parameters), lr, lambd, alpha, t0, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates ASGD over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="ASGD(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public ASGD(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-2, double lambd = 1e-4, double alpha = 0.75,
        double t0 = 1e6, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<ASGDOptions>(parameters), lr, lambd, alpha, t0, weight_decay, maximize, implementation, flat) { }

    /// <summary>Creates ASGD over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="ASGD(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public ASGD(IEnumerable<ParamGroupSpec<ASGDOptions>> groups, double lr = 1e-2, double lambd = 1e-4, double alpha = 0.75,
        double t0 = 1e6, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new ASGDOptions
        {
            Lr = lr, Lambd = lambd, Alpha = alpha, T0 = t0, WeightDecay = weight_decay, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates ASGD over TorchSharp's parameter groups (<c>new ASGD.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.ASGD</c>): each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="ASGD(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation, bool)"/>
    public ASGD(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.ASGD.Options>> groups, double lr = 1e-2, double lambd = 1e-4,
        double alpha = 0.75, double t0 = 1e6, double weight_decay = 0, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<ASGDOptions, TorchSharp.Modules.ASGD.Options>(groups, (o, t) => o with
        {
            Lambd = t.lambd ?? o.Lambd, Alpha = t.alpha ?? o.Alpha, T0 = t.t0 ?? o.T0, WeightDecay = t.weight_decay ?? o.WeightDecay,
            Maximize = t.maximize ?? o.Maximize,
        }), lr, lambd, alpha, t0, weight_decay, maximize, implementation, flat) { }

    /// <inheritdoc/>
    protected override bool ForeachMatchesForLoop => Info.ForeachMatchesForLoop;

    // PyTorch's _get_scalar_dtype(): the dtype of step, eta and mu.
    private static ScalarType ScalarDtype => get_default_dtype() == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    // A Python float as torch.as_tensor(x) holds it (the default dtype), before it is copied into eta or mu.
    private static double AsDefaultDtype(double value) => get_default_dtype() == ScalarType.Float64 ? value : (float)value;

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).Scalar(StateKeys.Eta).Scalar(StateKeys.Mu).LikeParameter(StateKeys.Ax);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(ASGDOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, eta, mu, ax; the 0-dim ones on the parameter's device, in the scalar dtype.
        var device = parameter.device;
        state.Set(StateKeys.Step, zeros(System.Array.Empty<long>(), ScalarDtype, device));
        state.Set(StateKeys.Eta, torch.tensor(options.Lr, ScalarDtype, device));
        state.Set(StateKeys.Mu, ones(System.Array.Empty<long>(), ScalarDtype, device));
        state.Set(StateKeys.Ax, zeros_like(parameter));
    }

    /// <inheritdoc/>
    protected override void SingleTensorStep(ASGDOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(ASGDOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    private protected override bool FusedByThisLibrary => true;

    /// <inheritdoc/>
    protected override void FusedStep(ASGDOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        CSharpFused.Step(bucket, new[] { StateKeys.Ax }, gradScale, foundInf,
            (i, step) => new ASGDUpdate<float>(o, StepScalars(o, bucket.States[i], step)), (i, step) => new ASGDUpdate<double>(o, StepScalars(o, bucket.States[i], step)));

    // The eta and mu this step uses (the state's values), then the state advanced to the next step's, as the for-loop does.
    private static (double Eta, double Mu) StepScalars(ASGDOptions o, ParameterState state, double step)
    {
        var eta = state[StateKeys.Eta];
        var mu = state[StateKeys.Mu];
        var used = (StateTensors.Value(eta), StateTensors.Value(mu));
        AdvanceEtaAndMu(o, eta, mu, step);
        return used;
    }

    // eta = lr / (1 + lambd * lr * step) ** alpha and mu = 1 / max(1, step - t0), Python floats copied into the 0-dim state.
    private static void AdvanceEtaAndMu(ASGDOptions o, Tensor eta, Tensor mu, double step)
    {
        eta.fill_(S(AsDefaultDtype(o.Lr / System.Math.Pow(1 + o.Lambd * o.Lr * step, o.Alpha))));
        mu.fill_(S(AsDefaultDtype(1 / PythonMaxOfOne(step - o.T0))));
    }

    // PyTorch's _single_tensor_asgd (not capturable).
    private static void SingleTensor(StepBatch batch, ASGDOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var mu = state[StateKeys.Mu];
            var ax = state[StateKeys.Ax];
            var eta = state[StateKeys.Eta];
            var stepT = state[StateKeys.Step];

            stepT.add_(S(1), One);

            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize);

            var etaValue = StateTensors.Value(eta);
            param.mul_(S(1 - o.Lambd * etaValue));     // decay term
            param.add_(grad, S(-etaValue));            // update parameter

            // averaging
            if (StateTensors.Value(mu) != 1) ax.add_(param.sub(ax).mul_(mu), One);
            else ax.copy_(param);

            AdvanceEtaAndMu(o, eta, mu, StateTensors.Value(stepT));
        }
    }

    // PyTorch's _multi_tensor_asgd (not capturable): param - eta * (grad [+ wd * param] + lambd * param) in one addcmul_,
    // ax += (param - ax) * mu even while mu is 1, and eta from the step tensor with tensor ops in its dtype.
    private static void MultiTensor(StepBatch bucket, ASGDOptions o)
    {
        var axs = bucket.States.Select(s => s[StateKeys.Ax]).ToList();
        var mus = bucket.States.Select(s => s[StateKeys.Mu]).ToList();
        var etas = bucket.States.Select(s => s[StateKeys.Eta]).ToList();
        var steps = bucket.States.Select(s => s[StateKeys.Step]).ToList();

        Aten.ForeachAdd_(steps, 1.0);
        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize);

        // intermediate = grad + param * lambd: in place into the copy weight decay made, out of place otherwise.
        IReadOnlyList<Tensor> intermediate;
        if (o.WeightDecay != 0)
        {
            Aten.ForeachAdd_(grads, bucket.Params, o.Lambd);
            intermediate = grads;
        }
        else
        {
            intermediate = Aten.ForeachAdd(grads, bucket.Params, o.Lambd);
        }

        // param - eta * intermediate (eta: the 0-dim state, broadcast by the per-tensor kernels)
        Aten.ForeachAddcmul_(bucket.Params, intermediate, etas, -1);

        // averaging: ax = ax + mu * (param - ax)
        var differences = Aten.ForeachSub(bucket.Params, axs);
        Aten.ForeachAddcmul_(axs, differences, mus);

        // eta = lr / ((1 + lambd * lr * step) ** alpha) with the step tensor: (lambd * lr) * step, 1 + that, ** alpha,
        // then Tensor.__rtruediv__ (reciprocal, times lr), all in the step's dtype.
        var newEtas = steps.Select(s => s.mul(S(o.Lambd * o.Lr)).add_(S(1), One).pow_(S(o.Alpha)).reciprocal_().mul_(S(o.Lr))).ToList();
        Aten.ForeachCopy_(etas, newEtas);
        for (var i = 0; i < mus.Count; i++) mus[i].fill_(S(AsDefaultDtype(1 / PythonMaxOfOne(StateTensors.Value(steps[i]) - o.T0))));
    }

    // Python's max(1, x): x only when x > 1 (so a NaN gives 1, where Math.Max would give NaN).
    private static double PythonMaxOfOne(double x) => x > 1 ? x : 1;
}

/// <summary>
/// One element of <see cref="ASGD"/>'s for-loop update, in one pass (ATen has no fused ASGD): its operations in its
/// order, each rounded to <typeparamref name="T"/>, with the step's eta and mu (the state's values) rounded once.
/// Stream: S0 ax.
/// </summary>
internal readonly unsafe struct ASGDUpdate<T> : IFusedUpdate<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FusedGradient<T> _gradient;
    private readonly T _decay, _negativeEta, _mu;
    private readonly bool _average;

    public ASGDUpdate(ASGDOptions o, (double Eta, double Mu) step)
    {
        _gradient = new FusedGradient<T>(o.Maximize, o.Lr, o.WeightDecay);
        _decay = CpuFused.Scalar<T>(1 - o.Lambd * step.Eta);
        _negativeEta = CpuFused.Scalar<T>(-step.Eta);
        _mu = CpuFused.Scalar<T>(step.Mu);
        _average = step.Mu != 1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Update(in Streams<T> at)
    {
        var g = _gradient.Of(at, out var p);
        p = p * _decay + g * _negativeEta;
        CpuFused.Store(at.Param, p);
        // ax.add_(param.sub(ax).mul(mu)) while averaging, ax.copy_(param) while mu is 1.
        CpuFused.Store(at.S0, _average ? CpuFused.Load(at.S0) + (p - CpuFused.Load(at.S0)) * _mu : p);
    }
}

/// <summary>
/// ASGD's state in the checkpoint format of TorchSharp's <c>ASGD</c>. Options: maximize (bool), lambd, alpha,
/// weight_decay, t0 (f64). State: step (i64) | eta (f64) | mu (f64) | ax.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp keeps <c>eta</c> and <c>mu</c> as doubles; PyTorch (and this library) as 0-dim tensors of the scalar dtype
/// (float32 unless the default dtype is float64), into which it copies each step's Python float. Reading rounds
/// TorchSharp's doubles to that dtype, exactly as PyTorch stores the same values (exact under float64); writing widens
/// ours exactly. Updating a float32 parameter, both use the values rounded to float32, so the two agree.
/// </para>
/// <para>
/// TorchSharp creates state for every parameter up front (step 0, eta = lr, mu = 1, ax zeros); such a parameter has no
/// state in PyTorch, and one with no state is written that way.
/// </para>
/// </remarks>
internal sealed class ASGDTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "ASGD";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "maximize", "lambd", "alpha", "weight_decay", "t0" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = System.Array.Empty<KeyValuePair<string, object?>>();

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var eta = reader.ReadDouble();
        var mu = reader.ReadDouble();
        var ax = reader.ReadTensor("ax");
        if (step == 0 && eta == (double)group["lr"]! && mu == 1 && StateTensors.AllZeroExceptStep(new Dictionary<string, Tensor> { ["ax"] = ax }))
            return null;
        var state = new ParameterState();
        state.Set("step", StateTensors.NewStep(step));
        state.Set("eta", StateTensors.NewScalar(eta));
        state.Set("mu", StateTensors.NewScalar(mu));
        state.Set("ax", ax);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        writer.WriteStep(Get("step"));
        writer.WriteDouble(Get("eta") is { } eta ? StateTensors.Value(eta) : (double)group["lr"]!);
        writer.WriteDouble(Get("mu") is { } mu ? StateTensors.Value(mu) : 1.0);
        writer.WriteTensor(Get("ax") ?? zeros_like(parameter));
    }
}
