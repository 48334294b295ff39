using System.Collections.Generic;
using Optim.Validation;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim;

/// <summary>The hyperparameters of <see cref="Adagrad"/>. A new instance holds PyTorch's defaults.</summary>
public sealed record AdagradOptions : OptimizerOptions
{
    private readonly double _lrDecay;
    private readonly double _weightDecay;
    private readonly double _initialAccumulatorValue;
    private readonly double _eps = 1e-10;

    /// <summary>Creates options with PyTorch's Adagrad defaults (<c>lr</c> 1e-2).</summary>
    public AdagradOptions() => Lr = 1e-2;

    /// <summary>Learning-rate decay: step <c>t</c> uses <c>lr / (1 + (t - 1) * lr_decay)</c>.</summary>
    public double LrDecay { get => _lrDecay; init => _lrDecay = Check.NonNegative(value, "lr_decay", "Invalid lr_decay value"); }

    /// <summary>L2 penalty, added to the gradient.</summary>
    public double WeightDecay { get => _weightDecay; init => _weightDecay = Check.NonNegative(value, "weight_decay", "Invalid weight_decay value"); }

    /// <summary>The value the sum of squared gradients starts from (used when the state is created).</summary>
    public double InitialAccumulatorValue
    {
        get => _initialAccumulatorValue;
        init => _initialAccumulatorValue = Check.NonNegative(value, "initial_accumulator_value", "Invalid initial_accumulator_value value");
    }

    /// <summary>Term added to the denominator for numerical stability.</summary>
    public double Eps { get => _eps; init => _eps = Check.NonNegative(value, "eps", "Invalid epsilon value"); }

    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool Maximize { get; init; }
}

/// <summary>
/// Adagrad with optional learning-rate decay, weight decay and maximization: PyTorch 2.x's <c>torch.optim.Adagrad</c>,
/// op for op (dense gradients). As in PyTorch, every parameter's state exists from construction.
/// </summary>
public sealed class Adagrad : Optimizer<AdagradOptions>
{
    /// <summary>Creates Adagrad over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.Adagrad</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="lr_decay">Learning-rate decay.</param>
    /// <param name="weight_decay">L2 penalty.</param>
    /// <param name="initial_accumulator_value">Initial value of the sum of squared gradients.</param>
    /// <param name="eps">Term added to the denominator for numerical stability.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    public Adagrad(IEnumerable<Parameter> parameters, double lr = 1e-2, double lr_decay = 0, double weight_decay = 0,
        double initial_accumulator_value = 0, double eps = 1e-10, bool maximize = false, Implementation implementation = Implementation.Auto)
        : this(Groups.Single<AdagradOptions>(parameters), lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, implementation) { }

    /// <summary>Creates Adagrad over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="Adagrad(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation)"/>
    public Adagrad(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-2, double lr_decay = 0, double weight_decay = 0,
        double initial_accumulator_value = 0, double eps = 1e-10, bool maximize = false, Implementation implementation = Implementation.Auto)
        : this(Groups.Named<AdagradOptions>(parameters), lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize, implementation) { }

    /// <summary>Creates Adagrad over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="Adagrad(IEnumerable{Parameter}, double, double, double, double, double, bool, Implementation)"/>
    public Adagrad(IEnumerable<ParamGroupSpec<AdagradOptions>> groups, double lr = 1e-2, double lr_decay = 0, double weight_decay = 0,
        double initial_accumulator_value = 0, double eps = 1e-10, bool maximize = false, Implementation implementation = Implementation.Auto)
        : base(groups, new AdagradOptions
        {
            // PyTorch's validation order.
            Lr = lr, LrDecay = lr_decay, WeightDecay = weight_decay, InitialAccumulatorValue = initial_accumulator_value, Eps = eps,
            Maximize = maximize, Implementation = implementation,
        })
    { }

    /// <inheritdoc/>
    protected override bool InitializesStateEagerly => true;

    /// <inheritdoc/>
    protected override void InitializeState(AdagradOptions options, Parameter parameter, ParameterState state)
    {
        state.Set("step", StateTensors.NewStep());
        state.Set("sum", full_like(parameter, options.InitialAccumulatorValue));
    }

    /// <inheritdoc/>
    protected override void Update(AdagradOptions options, StepBatch batch) => SingleTensor(batch, options);

    // PyTorch's _single_tensor_adagrad (dense gradients).
    private static void SingleTensor(StepBatch batch, AdagradOptions o)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            using var scope = NewDisposeScope();
            var param = batch.Params[i];
            var state = batch.States[i];
            var step = StateTensors.IncrementStep(state["step"]);
            var grad = o.Maximize ? batch.Grads[i].neg() : batch.Grads[i];
            if (o.WeightDecay != 0) grad = grad.add(param, o.WeightDecay);

            var clr = o.Lr / (1 + (step - 1) * o.LrDecay);
            var sum = state["sum"];
            sum.addcmul_(grad, grad, 1);
            var std = sum.sqrt().add_(o.Eps);
            param.addcdiv_(grad, std, -clr);
        }
    }
}
