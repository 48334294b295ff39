using System;
using System.Collections.Generic;
using Optim.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim;

/// <summary>
/// The hyperparameters of <see cref="SparseAdam"/>. A new instance holds PyTorch's defaults. SparseAdam has one path
/// (PyTorch has no foreach or fused SparseAdam): <see cref="OptimizerOptions.Implementation"/> is not one of its
/// hyperparameters.
/// </summary>
public sealed record SparseAdamOptions : OptimizerOptions, IBetasOptions
{
    /// <summary>The declared hyperparameters, in PyTorch's validation order (lr, eps, betas); lr and eps must be positive, as in PyTorch.</summary>
    public static OptionSchema<SparseAdamOptions> Schema { get; } = new OptionSchema<SparseAdamOptions>()
        .Double("lr", o => o.Lr, (o, v) => o with { Lr = v }, Rules.Positive("Invalid learning rate"))
        .Double("eps", o => o.Eps, (o, v) => o with { Eps = v }, Rules.Positive("Invalid epsilon value"))
        .Double("beta1", o => o.Beta1, (o, v) => o with { Beta1 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 0"))
        .Double("beta2", o => o.Beta2, (o, v) => o with { Beta2 = v }, Rules.HalfOpenUnit("Invalid beta parameter at index 1"))
        .Bool("maximize", o => o.Maximize, (o, v) => o with { Maximize = v });

    /// <summary>Creates PyTorch's defaults (<c>lr</c> 1e-3) on its one path, the for-loop.</summary>
    public SparseAdamOptions() => Implementation = Implementation.ForLoop;

    /// <summary>Coefficient of the running average of the gradient, in [0, 1) (PyTorch's <c>betas[0]</c>).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Coefficient of the running average of the squared gradient, in [0, 1) (PyTorch's <c>betas[1]</c>).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Term added to the denominator for numerical stability; positive.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;

    OptimizerOptions IBetasOptions.WithBetas(double beta1, double beta2) => this with { Beta1 = beta1, Beta2 = beta2 };
}

/// <summary>
/// Adam for sparse gradients (<c>torch.nn.Embedding(..., sparse: true)</c>): PyTorch 2.x's <c>torch.optim.SparseAdam</c>,
/// op for op. Only the rows a gradient names move, and only their moments decay. Gradients must be sparse: a dense one
/// is refused with PyTorch's message (and the other algorithms refuse sparse ones).
/// </summary>
public sealed class SparseAdam : Optimizer<SparseAdamOptions>, IBetas
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<SparseAdamOptions> Info { get; } =
        AlgorithmInfo.Of<SparseAdam, SparseAdamOptions>("SparseAdam", g => new SparseAdam(g), hasForeach: false, hasImplementations: false,
            requiresSparseGradients: true);

    /// <summary>Creates SparseAdam over <paramref name="parameters"/>; arguments as PyTorch's <c>torch.optim.SparseAdam</c> (betas as Adam's in TorchSharp).</summary>
    /// <param name="parameters">The parameters to optimize (dense; their gradients sparse).</param>
    /// <param name="lr">Learning rate, positive.</param>
    /// <param name="beta1">Coefficient of the running average of the gradient.</param>
    /// <param name="beta2">Coefficient of the running average of the squared gradient.</param>
    /// <param name="eps">Term added to the denominator for numerical stability, positive.</param>
    /// <param name="maximize">Maximize the objective.</param>
    public SparseAdam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        bool maximize = false)
        : this(Groups.Single<SparseAdamOptions>(parameters), lr, beta1, beta2, eps, maximize) { }

    /// <summary>Creates SparseAdam over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="SparseAdam(IEnumerable{Parameter}, double, double, double, double, bool)"/>
    public SparseAdam(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, bool maximize = false)
        : this(Groups.Named<SparseAdamOptions>(parameters), lr, beta1, beta2, eps, maximize) { }

    /// <summary>Creates SparseAdam over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="SparseAdam(IEnumerable{Parameter}, double, double, double, double, bool)"/>
    public SparseAdam(IEnumerable<ParamGroupSpec<SparseAdamOptions>> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, bool maximize = false)
        : base(groups, new SparseAdamOptions { Lr = lr, Beta1 = beta1, Beta2 = beta2, Eps = eps, Maximize = maximize })
    { }

    /// <summary>The first group's (beta1, beta2); setting them sets every group's (what <c>OneCycleLR</c> cycles).</summary>
    public (double, double) Betas
    {
        get => (ParamGroups[0].Options.Beta1, ParamGroups[0].Options.Beta2);
        set => SetOnAllGroups(o => o with { Beta1 = value.Item1, Beta2 = value.Item2 });
    }

    /// <inheritdoc/>
    protected override bool RequiresSparseGradients => Info.RequiresSparseGradients;

    /// <inheritdoc/>
    protected override string DenseGradientMessage => "SparseAdam does not support dense gradients, please consider Adam instead";

    /// <inheritdoc/>
    protected override string? RejectParameter(Tensor parameter) => parameter.is_complex() ? "SparseAdam does not support complex parameters" : null;

    private static readonly StateSchema States = new StateSchema().Step(StateKeys.Step).LikeParameter(StateKeys.ExpAvg).LikeParameter(StateKeys.ExpAvgSq);

    /// <inheritdoc/>
    protected override StateSchema StateSchema => States;

    /// <inheritdoc/>
    protected override void InitializeState(SparseAdamOptions options, Parameter parameter, ParameterState state)
    {
        // PyTorch's key order: step, exp_avg, exp_avg_sq. Its step is a Python int; here a 0-dim count as the other algorithms keep.
        state.Set(StateKeys.Step, StateTensors.NewStep());
        state.Set(StateKeys.ExpAvg, zeros_like(parameter));
        state.Set(StateKeys.ExpAvgSq, zeros_like(parameter));
    }

    /// <inheritdoc/>
    protected override void SingleTensorStep(SparseAdamOptions options, StepBatch batch) => Update(options, batch);

    /// <inheritdoc/>
    protected override void MultiTensorStep(SparseAdamOptions options, StepBatch bucket) => Update(options, bucket);

    // PyTorch's step counts every parameter with a gradient (an empty one included), then F.sparse_adam updates them.
    private static void Update(SparseAdamOptions o, StepBatch batch)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            var state = batch.States[i];
            var step = StateTensors.IncrementStep(state[StateKeys.Step]);
            var biasCorrection1 = 1 - Math.Pow(o.Beta1, step);
            var biasCorrection2 = 1 - Math.Pow(o.Beta2, step);
            var stepSize = o.Lr * Math.Sqrt(biasCorrection2) / biasCorrection1;
            Aten.SparseAdam_(batch.Params[i], batch.Grads[i], state[StateKeys.ExpAvg], state[StateKeys.ExpAvgSq], o.Maximize,
                1 - o.Beta1, 1 - o.Beta2, o.Eps, stepSize);
        }
    }
}
