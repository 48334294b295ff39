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
/// The hyperparameters of <see cref="Muon"/>. A new instance holds PyTorch's defaults (<c>lr</c> 1e-3, Keller Jordan's
/// Newton–Schulz coefficients). Muon has one path (PyTorch has no foreach Muon): <see cref="OptimizerOptions.Implementation"/>
/// is not one of its hyperparameters.
/// </summary>
public sealed record MuonOptions : OptimizerOptions, IMomentumOptions
{
    /// <summary>The adjustment that keeps the update's RMS across shapes (<c>sqrt(max(1, A / B))</c>); PyTorch's default (None) means it.</summary>
    public const string Original = "original";

    /// <summary>The adjustment that matches AdamW's update RMS (<c>0.2 * sqrt(max(A, B))</c>, Moonshot's).</summary>
    public const string MatchRmsAdamW = "match_rms_adamw";

    /// <summary>PyTorch's <c>(DEFAULT_A, DEFAULT_B, DEFAULT_C)</c>: the quintic's coefficients.</summary>
    public static IReadOnlyList<double> DefaultNsCoefficients { get; } = Array.AsReadOnly(new[] { 3.4445, -4.7750, 2.0315 });

    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, momentum, weight_decay, adjust_lr_fn), then the others.</summary>
    public static OptionSchema<MuonOptions> Schema { get; } = new OptionSchema<MuonOptions>()
        .Double("lr", o => o.Lr, (o, v) => o with { Lr = v }, Rules.NonNegative("Learning rate should be >= 0 but is"))
        .Double("momentum", o => o.Momentum, (o, v) => o with { Momentum = v }, Rules.NonNegative("momentum should be >= 0 but is"))
        .Double("weight_decay", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, Rules.NonNegative("weight decay should be >= 0 but is"))
        .String("adjust_lr_fn", o => o.AdjustLrFn, (o, v) => o with { AdjustLrFn = v }, new Rule<string?>(
            v => v is null or Original or MatchRmsAdamW, v => $"Adjust learning rate function {v} is not supported", "None, 'original' or 'match_rms_adamw'"))
        .Bool("nesterov", o => o.Nesterov, (o, v) => o with { Nesterov = v })
        .List("ns_coefficients", o => o.NsCoefficients, (o, v) => o with { NsCoefficients = v }, new Rule<IReadOnlyList<double>>(
            v => v.Count == 3 && v.All(double.IsFinite), v => v.Count == 3 ? $"Invalid ns_coefficients value: {string.Join(", ", v)}" : "Coefficients must be a tuple of exactly 3 values",
            "three finite values"))
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.NonNegative("Invalid epsilon value"))
        .Int("ns_steps", o => o.NsSteps, (o, v) => o with { NsSteps = v }, new Rule<int>(
            v => v is >= 0 and < 100, v => $"Number of steps must be less than 100 for computational efficiency (and at least 0), but is: {v}",
            ">= 0, < 100"))
        .Bool("use_addmm", o => o.UseAddmm, (o, v) => o with { UseAddmm = v });

    /// <summary>Creates PyTorch's defaults on Muon's one path, the for-loop.</summary>
    public MuonOptions() => Implementation = Implementation.ForLoop;

    /// <summary>Momentum factor (the buffer is <c>lerp</c>ed towards the gradient by <c>1 - momentum</c>).</summary>
    public double Momentum { get; init; } = 0.95;

    /// <summary>Decoupled weight decay (the parameter is scaled by <c>1 - lr * weight_decay</c>).</summary>
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>Nesterov momentum: orthogonalize <c>grad.lerp(buf, momentum)</c> instead of the buffer.</summary>
    public bool Nesterov { get; init; } = true;

    /// <summary>The coefficients (a, b, c) of the Newton–Schulz quintic; exactly three.</summary>
    public IReadOnlyList<double> NsCoefficients { get; init; } = DefaultNsCoefficients;

    /// <summary>The floor of the norm the update is divided by before the iteration.</summary>
    public double Eps { get; init; } = 1e-7;

    /// <summary>How many Newton–Schulz iterations (fewer than 100).</summary>
    public int NsSteps { get; init; } = 5;

    /// <summary>Null or <see cref="Original"/> (the default adjustment), or <see cref="MatchRmsAdamW"/>.</summary>
    public string? AdjustLrFn { get; init; }

    /// <summary>Run the iteration's products as <c>torch.addmm</c> (PyTorch's <c>use_addmm</c>) instead of separate ops.</summary>
    public bool UseAddmm { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    OptimizerOptions IMomentumOptions.WithMomentum(double momentum) => this with { Momentum = momentum };

    /// <summary>Value equality, the coefficients compared element by element (a record compares a list by reference).</summary>
    /// <param name="other">The options to compare with.</param>
    public bool Equals(MuonOptions? other) =>
        other is not null && base.Equals(other) && Momentum.Equals(other.Momentum) && WeightDecay.Equals(other.WeightDecay)
        && Nesterov == other.Nesterov && NsCoefficients.SequenceEqual(other.NsCoefficients) && Eps.Equals(other.Eps)
        && NsSteps == other.NsSteps && AdjustLrFn == other.AdjustLrFn && UseAddmm == other.UseAddmm;

    /// <inheritdoc/>
    public override int GetHashCode() =>
        HashCode.Combine(base.GetHashCode(), Momentum, WeightDecay, Nesterov, NsCoefficients.Count > 0 ? NsCoefficients[0] : 0, Eps, NsSteps,
            HashCode.Combine(AdjustLrFn, UseAddmm));
}

/// <summary>
/// Muon (momentum orthogonalized by a Newton–Schulz iteration) for 2-D parameters: PyTorch 2.9's <c>torch.optim.Muon</c>,
/// op for op. The iteration runs in bfloat16, as PyTorch's; a parameter of another shape is refused, with PyTorch's
/// message, when it joins a group and before a step. Other parameters (biases, embeddings) belong to another optimizer.
/// </summary>
public sealed class Muon : Optimizer<MuonOptions>, IMomentum
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<MuonOptions> Info { get; } =
        AlgorithmInfo.Of<Muon, MuonOptions>("Muon", g => new Muon(g), hasForeach: false, hasImplementations: false, requiresMatrices: true);

    /// <summary>Creates Muon over <paramref name="parameters"/>; arguments as PyTorch's <c>torch.optim.Muon</c>.</summary>
    /// <param name="parameters">The parameters to optimize: matrices.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="weight_decay">Decoupled weight decay.</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="nesterov">Nesterov momentum.</param>
    /// <param name="ns_coefficients">The Newton–Schulz coefficients (a, b, c); null for PyTorch's (3.4445, -4.7750, 2.0315).</param>
    /// <param name="eps">The floor of the norm the update is divided by.</param>
    /// <param name="ns_steps">How many Newton–Schulz iterations.</param>
    /// <param name="adjust_lr_fn">Null or <c>"original"</c>, or <c>"match_rms_adamw"</c>.</param>
    /// <param name="use_addmm">Run the iteration's products as <c>addmm</c>.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>);
    /// Muon's update works on whole matrices, so it still steps per parameter.</param>
    public Muon(IEnumerable<Parameter> parameters, double lr = 1e-3, double weight_decay = 0.1, double momentum = 0.95, bool nesterov = true,
        IReadOnlyList<double>? ns_coefficients = null, double eps = 1e-7, int ns_steps = 5, string? adjust_lr_fn = null, bool use_addmm = false, bool flat = false)
        : this(Groups.Single<MuonOptions>(parameters), lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn, use_addmm, flat) { }

    /// <summary>Creates Muon over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Muon(IEnumerable{Parameter}, double, double, double, bool, IReadOnlyList{double}?, double, int, string?, bool, bool)"/>
    public Muon(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double weight_decay = 0.1, double momentum = 0.95,
        bool nesterov = true, IReadOnlyList<double>? ns_coefficients = null, double eps = 1e-7, int ns_steps = 5, string? adjust_lr_fn = null,
        bool use_addmm = false, bool flat = false)
        : this(Groups.Named<MuonOptions>(parameters), lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn, use_addmm, flat) { }

    /// <summary>Creates Muon over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Muon(IEnumerable{Parameter}, double, double, double, bool, IReadOnlyList{double}?, double, int, string?, bool, bool)"/>
    public Muon(IEnumerable<ParamGroupSpec<MuonOptions>> groups, double lr = 1e-3, double weight_decay = 0.1, double momentum = 0.95,
        bool nesterov = true, IReadOnlyList<double>? ns_coefficients = null, double eps = 1e-7, int ns_steps = 5, string? adjust_lr_fn = null,
        bool use_addmm = false, bool flat = false)
        : base(groups, new MuonOptions
        {
            Lr = lr, WeightDecay = weight_decay, Momentum = momentum, Nesterov = nesterov,
            NsCoefficients = ns_coefficients is null ? MuonOptions.DefaultNsCoefficients : Array.AsReadOnly(ns_coefficients.ToArray()),
            Eps = eps, NsSteps = ns_steps, AdjustLrFn = adjust_lr_fn, UseAddmm = use_addmm,
        })
    => UseFlatParameters(flat);

    /// <summary>The first group's momentum; setting it sets every group's (what cyclic schedulers drive).</summary>
    public double Momentum
    {
        get => ParamGroups[0].Options.Momentum;
        set => SetOnAllGroups(o => o with { Momentum = value });
    }

    /// <inheritdoc/>
    protected override string? RejectParameter(Tensor parameter)
    {
        if (parameter.ndim != 2) return $"Muon only supports 2D parameters whereas we found a parameter with size: torch.Size([{string.Join(", ", parameter.shape)}])";
        return parameter.is_complex() ? "Muon does not support complex parameters" : null;
    }

    private static readonly StateSchema States = new StateSchema().LikeParameter(StateKeys.MomentumBuffer);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    // Newton–Schulz orthogonalizes each matrix as a whole: no flat step.
    /// <inheritdoc/>
    protected override bool UpdateIsElementWise => false;

    /// <inheritdoc/>
    protected override void InitializeState(MuonOptions options, Parameter parameter, ParameterState state) =>
        state.Set(StateKeys.MomentumBuffer, zeros_like(parameter));

    /// <inheritdoc/>
    protected override void SingleTensorStep(MuonOptions options, StepBatch batch) => Update(options, batch);

    /// <inheritdoc/>
    protected override void MultiTensorStep(MuonOptions options, StepBatch bucket) => Update(options, bucket);

    // PyTorch's _single_tensor_muon.
    private static void Update(MuonOptions o, StepBatch batch)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var grad = batch.Grads[i];
            var buf = batch.States[i][StateKeys.MomentumBuffer];
            Aten.Lerp_(buf, grad, 1 - o.Momentum);
            Tensor update;
            if (o.Nesterov)
            {
                update = grad.clone(); // grad.lerp(buf, momentum): the same kernel on a copy
                Aten.Lerp_(update, buf, o.Momentum);
            }
            else
            {
                update = buf;
            }
            var ortho = ZeropowerViaNewtonSchulz(update, o.NsCoefficients, o.NsSteps, o.Eps, o.UseAddmm);
            var adjustedLr = AdjustLr(o.Lr, o.AdjustLrFn, param.size(0), param.size(1));
            param.mul_(S(1 - o.Lr * o.WeightDecay));
            param.add_(ortho, S(-adjustedLr));
        }
    }

    // PyTorch's _zeropower_via_newtonschulz: the update in bfloat16 (the tensor itself when it already is bfloat16, as in
    // PyTorch, so a bfloat16 buffer without Nesterov is scaled in place), wide matrices as they are, tall ones transposed.
    private static Tensor ZeropowerViaNewtonSchulz(Tensor grad, IReadOnlyList<double> coefficients, int steps, double eps, bool useAddmm)
    {
        var (a, b, c) = (coefficients[0], coefficients[1], coefficients[2]);
        var ortho = grad.to(ScalarType.BFloat16);
        var tall = grad.size(0) > grad.size(1);
        if (tall) ortho = ortho.T;
        ortho.div_(ortho.norm().clamp(min: S(eps)));
        for (var k = 0; k < steps; k++)
        {
            var gram = ortho.matmul(ortho.T);
            if (useAddmm)
            {
                var gramUpdate = Aten.Addmm(gram, gram, gram, beta: b, alpha: c);
                ortho = Aten.Addmm(ortho, gramUpdate, ortho, beta: a, alpha: 1);
            }
            else
            {
                var gramUpdate = gram.mul(S(b)).add(gram.mul(S(c)).matmul(gram), One);
                ortho = ortho.mul(S(a)).add(gramUpdate.matmul(ortho), One);
            }
        }
        return tall ? ortho.T : ortho;
    }

    // PyTorch's _adjust_lr, in Python floats.
    private static double AdjustLr(double lr, string? adjustLrFn, long rows, long cols)
    {
        var ratio = adjustLrFn switch
        {
            null or MuonOptions.Original => Math.Sqrt(Math.Max(1, (double)rows / cols)),
            MuonOptions.MatchRmsAdamW => 0.2 * Math.Sqrt(Math.Max(rows, cols)),
            _ => 1.0,
        };
        return lr * ratio;
    }
}
