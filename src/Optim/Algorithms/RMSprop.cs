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

/// <summary>The hyperparameters of <see cref="RMSprop"/>. A new instance holds PyTorch's defaults.</summary>
public sealed record RMSpropOptions : OptimizerOptions, IMomentumOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order.</summary>
    public static OptionSchema<RMSpropOptions> Schema { get; } = new OptionSchema<RMSpropOptions>()
        .Lr()
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Double("momentum", o => o.Momentum, (o, v) => o with { Momentum = v }, Rules.ClosedUnit("Invalid momentum value"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Double("alpha", o => o.Alpha, (o, v) => o with { Alpha = v }, Rules.ClosedUnit("Invalid alpha value"))
        .Bool("centered", o => o.Centered, (o, v) => o with { Centered = v })
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Creates options with PyTorch's RMSprop defaults (<c>lr</c> 1e-2).</summary>
    public RMSpropOptions() => Lr = 1e-2;

    /// <summary>Smoothing constant of the running averages, in [0, 1].</summary>
    public double Alpha { get; init; } = 0.99;

    /// <summary>Term added to the denominator for numerical stability.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Momentum factor, in [0, 1]; 0 updates without a momentum buffer.</summary>
    public double Momentum { get; init; }

    /// <summary>Normalize by an estimate of the gradient's variance (subtract the squared running mean of the gradient).</summary>
    public bool Centered { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    OptimizerOptions IMomentumOptions.WithMomentum(double momentum) => this with { Momentum = momentum };
}

/// <summary>
/// RMSprop with optional momentum, centering, weight decay and maximization: PyTorch 2.x's <c>torch.optim.RMSprop</c>,
/// op for op. Unlike TorchSharp's <c>RMSProp</c>, the momentum and centering buffers exist only when used.
/// </summary>
public sealed class RMSprop : Optimizer<RMSpropOptions>, IMomentum
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<RMSpropOptions> Info { get; } = AlgorithmInfo.Of<RMSprop, RMSpropOptions>("RMSprop", g => new RMSprop(g),
        hasFusedKernel: true, torchSharpLayout: new RMSpropTorchSharpLayout());

    /// <summary>Creates RMSprop over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.RMSProp</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="alpha">Smoothing constant.</param>
    /// <param name="eps">Term added to the denominator for numerical stability.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="centered">Compute the centered RMSprop.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public RMSprop(IEnumerable<Parameter> parameters, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8, double weight_decay = 0,
        double momentum = 0, bool centered = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<RMSpropOptions>(parameters), lr, alpha, eps, weight_decay, momentum, centered, maximize, implementation, flat) { }

    /// <summary>Creates RMSprop over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="RMSprop(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public RMSprop(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
        double weight_decay = 0, double momentum = 0, bool centered = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<RMSpropOptions>(parameters), lr, alpha, eps, weight_decay, momentum, centered, maximize, implementation, flat) { }

    /// <summary>Creates RMSprop over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="RMSprop(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public RMSprop(IEnumerable<ParamGroupSpec<RMSpropOptions>> groups, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
        double weight_decay = 0, double momentum = 0, bool centered = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new RMSpropOptions
        {
            Lr = lr, Eps = eps, Momentum = momentum, WeightDecay = weight_decay, Alpha = alpha,
            Centered = centered, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates RMSprop over TorchSharp's parameter groups (<c>new RMSProp.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.RMSProp</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="RMSprop(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public RMSprop(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.RMSProp.Options>> groups, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
        double weight_decay = 0, double momentum = 0, bool centered = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<RMSpropOptions, TorchSharp.Modules.RMSProp.Options>(groups, (o, t) => o with
        {
            Alpha = t.alpha ?? o.Alpha, Eps = t.eps ?? o.Eps, WeightDecay = t.weight_decay ?? o.WeightDecay, Momentum = t.momentum ?? o.Momentum,
            Centered = t.centered ?? o.Centered, Maximize = t.maximize ?? o.Maximize,
        }), lr, alpha, eps, weight_decay, momentum, centered, maximize, implementation, flat) { }

    /// <summary>The first group's momentum; setting it sets every group's (TorchSharp's schedulers use this).</summary>
    public double Momentum
    {
        get => ParamGroups[0].Options.Momentum;
        set => SetOnAllGroups(o => o with { Momentum = value });
    }

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.SquareAvg).LikeParameter(StateKeys.MomentumBuffer, required: false).LikeParameter(StateKeys.GradAvg, required: false);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(RMSpropOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, square_avg, momentum_buffer (momentum > 0), grad_avg (centered).
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.SquareAvg, zeros_like(parameter));
        if (options.Momentum > 0) state.Set(StateKeys.MomentumBuffer, zeros_like(parameter));
        if (options.Centered) state.Set(StateKeys.GradAvg, zeros_like(parameter));
    }

    /// <inheritdoc/>
    protected override void SingleTensorStep(RMSpropOptions o, StepBatch batch) => SingleTensor(batch, o);

    /// <inheritdoc/>
    protected override void MultiTensorStep(RMSpropOptions o, StepBatch bucket) => MultiTensor(bucket, o);

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    private protected override bool FusedByThisLibrary => true;

    /// <inheritdoc/>
    protected override void FusedStep(RMSpropOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        Fused(bucket, o, gradScale, foundInf);

    // PyTorch's _single_tensor_rmsprop.
    private static void SingleTensor(StepBatch batch, RMSpropOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var squareAvg = state[StateKeys.SquareAvg];
            // PyTorch's `step += 1`: the count is kept (and saved), but the update does not use it.
            state[StateKeys.Step].add_(S(1), One);

            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], o.Lr, o.WeightDecay, o.Maximize);

            squareAvg.mul_(S(o.Alpha)).addcmul_(grad, grad, S(1 - o.Alpha));

            Tensor avg;
            if (o.Centered)
            {
                var gradAvg = StateTensors.GetOrAddZeros(state, StateKeys.GradAvg, param);
                Aten.Lerp_(gradAvg, grad, 1 - o.Alpha);
                avg = squareAvg.addcmul(gradAvg, gradAvg, S(-1)).sqrt_();
            }
            else
            {
                avg = squareAvg.sqrt();
            }
            avg = avg.add_(S(o.Eps), One);

            if (o.Momentum > 0)
            {
                var buf = StateTensors.GetOrAddZeros(state, StateKeys.MomentumBuffer, param);
                buf.mul_(S(o.Momentum)).addcdiv_(grad, avg, One);
                param.add_(buf, S(-o.Lr));
            }
            else
            {
                param.addcdiv_(grad, avg, S(-o.Lr));
            }
        }
    }

    // PyTorch's _multi_tensor_rmsprop (ATen has no fused RMSprop).
    private static void MultiTensor(StepBatch bucket, RMSpropOptions o)
    {
        var squareAvgs = bucket.States.Select(s => s[StateKeys.SquareAvg]).ToList();

        Aten.ForeachAdd_(bucket.States.Select(s => s[StateKeys.Step]).ToList(), 1.0);
        var grads = GradientPreparation.MultiTensor(bucket, o.Lr, o.WeightDecay, o.Maximize);

        Aten.ForeachMul_(squareAvgs, o.Alpha);
        Aten.ForeachAddcmul_(squareAvgs, grads, grads, 1 - o.Alpha);

        Tensor[] avg;
        if (o.Centered)
        {
            var gradAvgs = bucket.States.Select((s, i) => StateTensors.GetOrAddZeros(s, StateKeys.GradAvg, bucket.Params[i])).ToList();
            Aten.ForeachLerp_(gradAvgs, grads, 1 - o.Alpha);
            avg = Aten.ForeachAddcmul(squareAvgs, gradAvgs, gradAvgs, -1);
            Aten.ForeachSqrt_(avg);
        }
        else
        {
            avg = Aten.ForeachSqrt(squareAvgs);
        }
        Aten.ForeachAdd_(avg, o.Eps);

        if (o.Momentum > 0)
        {
            var bufs = bucket.States.Select((s, i) => StateTensors.GetOrAddZeros(s, StateKeys.MomentumBuffer, bucket.Params[i])).ToList();
            Aten.ForeachMul_(bufs, o.Momentum);
            Aten.ForeachAddcdiv_(bufs, grads, avg);
            Aten.ForeachAdd_(bucket.Params, bufs, -o.Lr);
        }
        else
        {
            Aten.ForeachAddcdiv_(bucket.Params, grads, avg, -o.Lr);
        }
    }

    // The for-loop's update in one pass over memory (CpuFused; ATen has no fused RMSprop).
    private static void Fused(StepBatch bucket, RMSpropOptions o, Tensor? gradScale, Tensor? foundInf) =>
        CSharpFused.Step(bucket, new[] { StateKeys.SquareAvg, o.Momentum > 0 ? StateKeys.MomentumBuffer : null, o.Centered ? StateKeys.GradAvg : null },
            gradScale, foundInf, new RMSpropUpdate<float>(o), new RMSpropUpdate<double>(o));
}

/// <summary>
/// One element of <see cref="RMSprop"/>'s for-loop update, in one pass: the same operations in the same order, each
/// rounded to <typeparamref name="T"/> as ATen rounds each op's result, the hyperparameters rounded once to
/// <typeparamref name="T"/> (ATen's scalar arguments). Streams: S0 square_avg, S1 momentum_buffer, S2 grad_avg.
/// </summary>
internal readonly unsafe struct RMSpropUpdate<T> : IFusedUpdate<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly FusedGradient<T> _gradient;
    private readonly SquareAverage<T> _squareAvg;
    private readonly LerpInPlace<T> _gradAvg;
    private readonly T _eps, _momentum, _negativeLr;
    private readonly bool _centered, _useMomentum;

    public RMSpropUpdate(RMSpropOptions o)
    {
        _squareAvg = new SquareAverage<T>(o.Alpha);
        _eps = CpuFused.Scalar<T>(o.Eps);
        _gradient = new FusedGradient<T>(o.Maximize, o.Lr, o.WeightDecay);
        _momentum = CpuFused.Scalar<T>(o.Momentum);
        _negativeLr = CpuFused.Scalar<T>(-o.Lr);
        _centered = o.Centered;
        _useMomentum = o.Momentum > 0;
        _gradAvg = new LerpInPlace<T>(1 - o.Alpha);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Update(in Streams<T> at)
    {
        var g = _gradient.Of(at, out var p);
        var squareAvg = _squareAvg.Apply(at.S0, g);
        Vector<T> avg;
        if (_centered)
        {
            var gradAvg = _gradAvg.Apply(at.S2, g);
            avg = Vector.SquareRoot(squareAvg + (-gradAvg) * gradAvg);
        }
        else
        {
            avg = Vector.SquareRoot(squareAvg);
        }
        avg += new Vector<T>(_eps);
        if (_useMomentum)
        {
            var buf = CpuFused.Load(at.S1) * _momentum + g / avg;
            CpuFused.Store(at.S1, buf);
            CpuFused.Store(at.Param, p + buf * _negativeLr);
        }
        else
        {
            CpuFused.Store(at.Param, p + g / avg * _negativeLr);
        }
    }
}

/// <summary>
/// RMSprop's state in the checkpoint format of TorchSharp's <c>RMSProp</c>. Options: maximize (bool), momentum, alpha,
/// eps, weight_decay (f64), centered (bool). State: step (i64) | square_avg | has momentum_buffer (bool)
/// [| momentum_buffer] | has grad_avg (bool) [| grad_avg]. TorchSharp allocates (and steps with, when used) both
/// buffers for every parameter; PyTorch, and this library, only where the group uses them.
/// </summary>
internal sealed class RMSpropTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "RMSProp";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "maximize", "momentum", "alpha", "eps", "weight_decay", "centered" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = Array.Empty<KeyValuePair<string, object?>>();

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var step = reader.ReadStep();
        var read = new List<KeyValuePair<string, Tensor>> { new(StateKeys.SquareAvg, reader.ReadTensor(StateKeys.SquareAvg)) };
        var momentum = reader.ReadOptionalTensor(StateKeys.MomentumBuffer);
        var gradAvg = reader.ReadOptionalTensor(StateKeys.GradAvg);
        if (momentum is not null && (double)group["momentum"]! > 0) read.Add(new(StateKeys.MomentumBuffer, momentum));
        if (gradAvg is not null && (bool)group["centered"]!) read.Add(new(StateKeys.GradAvg, gradAvg));
        // A parameter TorchSharp never stepped (step 0, all-zero buffers) has no state in PyTorch.
        if (step == 0 && StateTensors.AllZeroExceptStep(read.ToDictionary())) return null;
        var state = new ParameterState();
        state.Set(StateKeys.Step, StateTensors.NewStep(step));
        foreach (var (key, tensor) in read) state.Set(key, tensor);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor OrZeros(string key) => state is not null && state.TryGetValue(key, out var t) ? t : zeros_like(parameter);
        writer.WriteStep(state is not null && state.TryGetValue(StateKeys.Step, out var step) ? step : null);
        writer.WriteTensor(OrZeros(StateKeys.SquareAvg));
        writer.WriteOptionalTensor(OrZeros(StateKeys.MomentumBuffer));
        writer.WriteOptionalTensor(OrZeros(StateKeys.GradAvg));
    }
}
