using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using Optim.Validation;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>The hyperparameters of <see cref="SGD"/>. A new instance holds PyTorch's defaults.</summary>
public sealed record SGDOptions : OptimizerOptions, IMomentumOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order.</summary>
    public static OptionSchema<SGDOptions> Schema { get; } = new OptionSchema<SGDOptions>()
        .Lr()
        .Double("momentum", o => o.Momentum, (o, v) => o with { Momentum = v }, Rules.ClosedUnit("Invalid momentum value"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("Invalid weight_decay value"))
        .Double("dampening", o => o.Dampening, (o, v) => o with { Dampening = v }, Rules.ClosedUnit("Invalid dampening value"))
        .Bool("nesterov", o => o.Nesterov, (o, v) => o with { Nesterov = v })
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v })
        .Implementation();

    /// <summary>Momentum factor, in [0, 1].</summary>
    public double Momentum { get; init; }

    /// <summary>Dampening of the momentum, in [0, 1].</summary>
    public double Dampening { get; init; }

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Nesterov momentum; needs momentum &gt; 0 and zero dampening.</summary>
    public bool Nesterov { get; init; }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    /// <inheritdoc/>
    protected override void ValidateCombination() => Check.Nesterov(Nesterov, Momentum, Dampening);

    OptimizerOptions IMomentumOptions.WithMomentum(double momentum) => this with { Momentum = momentum };
}

/// <summary>
/// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum, weight decay and maximization:
/// PyTorch 2.x's <c>torch.optim.SGD</c>, op for op.
/// </summary>
public sealed class SGD : Optimizer<SGDOptions>, IMomentum
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<SGDOptions> Info { get; } = AlgorithmInfo.Of<SGD, SGDOptions>("SGD", g => new SGD(g), hasFusedKernel: true,
        torchSharpLayout: new SGDTorchSharpLayout());

    /// <summary>Creates SGD over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.SGD</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="dampening">Dampening for momentum.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="nesterov">Use Nesterov momentum.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public SGD(IEnumerable<Parameter> parameters, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<SGDOptions>(parameters), lr, momentum, dampening, weight_decay, nesterov, maximize, implementation, flat) { }

    /// <summary>Creates SGD over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="SGD(IEnumerable{Parameter}, double, double, double, double, bool, bool, Implementation, bool)"/>
    public SGD(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<SGDOptions>(parameters), lr, momentum, dampening, weight_decay, nesterov, maximize, implementation, flat) { }

    /// <summary>Creates SGD over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="SGD(IEnumerable{Parameter}, double, double, double, double, bool, bool, Implementation, bool)"/>
    public SGD(IEnumerable<ParamGroupSpec<SGDOptions>> groups, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, new SGDOptions
        {
            Lr = lr, Momentum = momentum, WeightDecay = weight_decay, Dampening = dampening,
            Nesterov = nesterov, Maximize = maximize, Implementation = implementation,
        })
    => UseFlatParameters(flat);

    /// <summary>
    /// Creates SGD over TorchSharp's parameter groups (<c>new SGD.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.SGD</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="SGD(IEnumerable{Parameter}, double, double, double, double, bool, bool, Implementation, bool)"/>
    public SGD(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.SGD.Options>> groups, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weight_decay = 0, bool nesterov = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<SGDOptions, TorchSharp.Modules.SGD.Options>(groups, (o, t) => o with
        {
            Momentum = t.momentum ?? o.Momentum, Dampening = t.dampening ?? o.Dampening, WeightDecay = t.weight_decay ?? o.WeightDecay,
            Nesterov = t.nesterov ?? o.Nesterov, Maximize = t.maximize ?? o.Maximize,
        }), lr, momentum, dampening, weight_decay, nesterov, maximize, implementation, flat) { }

    /// <summary>The first group's momentum; setting it sets every group's (TorchSharp's schedulers use this).</summary>
    public double Momentum
    {
        get => ParamGroups[0].Options.Momentum;
        set => SetOnAllGroups(o => o with { Momentum = value });
    }

    private static readonly StateSchema States = new StateSchema().LikeParameter(StateKeys.MomentumBuffer, required: false);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(SGDOptions options, Parameter parameter, ParameterState state)
    {
        // momentum_buffer is created from the first gradient, in the update.
    }

    /// <inheritdoc/>
    protected override bool HasFusedKernel => Info.HasFusedKernel;

    /// <inheritdoc/>
    protected override void SingleTensorStep(SGDOptions o, StepBatch batch) => SingleTensor(batch, Hyper(o));

    /// <inheritdoc/>
    protected override void MultiTensorStep(SGDOptions o, StepBatch bucket) => MultiTensor(bucket, Hyper(o));

    /// <inheritdoc/>
    protected override void FusedStep(SGDOptions o, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        Fused(bucket, Hyper(o), gradScale, foundInf);

    private static SgdHyperparameters Hyper(SGDOptions o) =>
        new(o.Lr, o.Momentum, o.Dampening, o.WeightDecay, o.Nesterov, o.Maximize, DecoupledWeightDecay: false);

    /// <summary>
    /// What SGD's three paths take; shared with <see cref="SGDMomentumNesterov"/>. With <c>DecoupledWeightDecay</c>
    /// the parameter is first scaled by <c>1 - lr * weight_decay</c> instead of the decay being added to the gradient.
    /// </summary>
    internal readonly record struct SgdHyperparameters(
        double Lr, double Momentum, double Dampening, double WeightDecay, bool Nesterov, bool Maximize, bool DecoupledWeightDecay);

    // PyTorch's _single_tensor_sgd.
    internal static void SingleTensor(StepBatch batch, SgdHyperparameters h)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var grad = GradientPreparation.SingleTensor(param, batch.Grads[i], h.Lr, h.WeightDecay, h.Maximize, h.DecoupledWeightDecay);

            if (h.Momentum != 0)
            {
                var buf = batch.States[i].Get(StateKeys.MomentumBuffer);
                if (buf is null)
                {
                    // The first step copies the gradient: no dampening.
                    buf = grad.detach().clone();
                    batch.States[i].Set(StateKeys.MomentumBuffer, buf);
                }
                else
                {
                    buf.mul_(S(h.Momentum)).add_(grad, S(1 - h.Dampening));
                }
                grad = h.Nesterov ? grad.add(buf, S(h.Momentum)) : buf;
            }

            param.add_(grad, S(-h.Lr));
        }
    }

    // PyTorch's _multi_tensor_sgd, except that Nesterov adds out of place: PyTorch's foreach path writes the
    // momentum into the caller's .grad tensors when neither maximize nor weight decay made a copy first.
    internal static void MultiTensor(StepBatch bucket, SgdHyperparameters h)
    {
        var grads = GradientPreparation.MultiTensor(bucket, h.Lr, h.WeightDecay, h.Maximize, h.DecoupledWeightDecay);

        if (h.Momentum != 0)
        {
            var bufs = bucket.States.Select(s => s.Get(StateKeys.MomentumBuffer)).ToList();
            if (bufs.TrueForAll(b => b is not null))
            {
                Aten.ForeachMul_(bufs!, h.Momentum);
                Aten.ForeachAdd_(bufs!, grads, 1 - h.Dampening);
            }
            else
            {
                for (var i = 0; i < bufs.Count; i++)
                {
                    if (bufs[i] is null)
                    {
                        bufs[i] = grads[i].detach().clone();
                        bucket.States[i].Set(StateKeys.MomentumBuffer, bufs[i]!);
                    }
                    else
                    {
                        bufs[i]!.mul_(S(h.Momentum)).add_(grads[i], S(1 - h.Dampening));
                    }
                }
            }
            grads = h.Nesterov ? Aten.ForeachAdd(grads, bufs!, h.Momentum) : bufs!;
        }

        Aten.ForeachAdd_(bucket.Params, grads, -h.Lr);
    }

    // PyTorch's _fused_sgd. Its first step hands the kernel fresh buffers and is_first_step=true; a bucket where only
    // some parameters have buffers yet (one got its first gradient late) runs as two calls, which PyTorch can't. Unlike
    // PyTorch, fresh buffers start zeroed rather than uninitialized, and a first step that found_inf skipped takes them
    // back (one host read, on first steps only), so the next real step is again a first step.
    internal static void Fused(StepBatch bucket, SgdHyperparameters h, Tensor? gradScale, Tensor? foundInf)
    {
        var weightDecay = h.WeightDecay;
        if (h.DecoupledWeightDecay && weightDecay != 0)
        {
            DecoupledDecay(bucket.Params, h.Lr * weightDecay, foundInf);
            weightDecay = 0;
        }
        if (h.Momentum == 0)
        {
            Kernel(bucket.Params, bucket.Grads, Array.Empty<Tensor>(), isFirstStep: false);
            return;
        }
        var fresh = Enumerable.Range(0, bucket.Count).Where(i => bucket.States[i].Get(StateKeys.MomentumBuffer) is null).ToList();
        var warm = Enumerable.Range(0, bucket.Count).Except(fresh).ToList();
        foreach (var i in fresh) bucket.States[i].Set(StateKeys.MomentumBuffer, zeros_like(bucket.Grads[i]));
        foreach (var (indices, first) in new[] { (warm, false), (fresh, true) })
        {
            if (indices.Count == 0) continue;
            Kernel(indices.Select(i => bucket.Params[i]).ToList(), indices.Select(i => bucket.Grads[i]).ToList(),
                indices.Select(i => bucket.States[i][StateKeys.MomentumBuffer]).ToList(), first);
        }
        if (fresh.Count > 0 && foundInf is not null && foundInf.item<float>() != 0)
        {
            foreach (var i in fresh) bucket.States[i].Remove(StateKeys.MomentumBuffer);
        }

        void Kernel(IReadOnlyList<Tensor> ps, IReadOnlyList<Tensor> gs, IReadOnlyList<Tensor> bufs, bool isFirstStep) =>
            Aten.FusedSgd_(ps, gs, bufs, weightDecay, h.Momentum, h.Lr, h.Dampening, h.Nesterov, h.Maximize, isFirstStep, gradScale, foundInf);
    }

    // param *= 1 - lr * weight_decay before the kernel; with found_inf the factor is 1 where the step is skipped (x * 1
    // is exact), decided on the device without reading found_inf back.
    private static void DecoupledDecay(IReadOnlyList<Tensor> parameters, double lrTimesDecay, Tensor? foundInf)
    {
        if (foundInf is null)
        {
            Aten.ForeachMul_(parameters, 1 - lrTimesDecay);
            return;
        }
        using var scope = NewDisposeScope();
        var factor = where(foundInf.ne(S(0)), tensor(1.0, foundInf.dtype, foundInf.device), tensor(1 - lrTimesDecay, foundInf.dtype, foundInf.device));
        foreach (var p in parameters) p.mul_(factor.to(p.dtype));
    }
}

/// <summary>
/// SGD's state in the checkpoint format of TorchSharp's <c>SGD</c>. Options: momentum, dampening, weight_decay (f64),
/// nesterov, maximize (bool). State: has momentum_buffer (bool) [| momentum_buffer].
/// </summary>
internal sealed class SGDTorchSharpLayout : ITorchSharpLayout
{
    public string ClassName => "SGD";

    public IReadOnlyList<string> OptionFields { get; } = new[] { "momentum", "dampening", "weight_decay", "nesterov", "maximize" };

    public IReadOnlyList<KeyValuePair<string, object?>> FixedOptions { get; } = Array.Empty<KeyValuePair<string, object?>>();

    public IReadOnlyDictionary<string, Tensor>? ReadState(ITorchSharpStateReader reader, ParamGroupState group)
    {
        var buffer = reader.ReadOptionalTensor(StateKeys.MomentumBuffer);
        if (buffer is null) return null;
        // TorchSharp's SGD maximizes by adding lr * update instead of negating the gradient, so its buffer holds the
        // negation of PyTorch's (negated here in place; negation is exact). With weight decay the two algorithms differ
        // (TorchSharp's decay then pushes weights away from zero) and no buffer makes them agree.
        var state = new ParameterState();
        state.Set(StateKeys.MomentumBuffer, (bool)group["maximize"]! ? buffer.neg_() : buffer);
        return state;
    }

    public void WriteState(ITorchSharpStateWriter writer, ParamGroupState group, Tensor parameter, IReadOnlyDictionary<string, Tensor>? state)
    {
        var buffer = state is not null && state.TryGetValue(StateKeys.MomentumBuffer, out var b) ? b : null;
        writer.WriteOptionalTensor(buffer is not null && (bool)group["maximize"]! ? buffer.neg() : buffer); // see ReadState
    }
}
