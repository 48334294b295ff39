using System;
using System.Collections.Generic;
using System.Linq;

namespace Optim;

/// <summary>
/// The hyperparameters of one parameter group: an immutable value; derive a changed copy with <c>with { Lr = 0.01 }</c>.
/// Each algorithm declares its hyperparameters once, in the <see cref="OptionSchema"/> next to its options record; the
/// optimizer validates a record against it whenever one enters a group (construction, group overrides, changes at run
/// time, loads), so an optimizer never holds invalid options. The property initializers are the defaults.
/// </summary>
public abstract record OptimizerOptions
{
    /// <summary>The learning rate (PyTorch's <c>lr</c>).</summary>
    public double Lr { get; init; } = 1e-3;

    /// <summary>Which kernels run the update; see <see cref="Optim.Implementation"/>.</summary>
    public Implementation Implementation { get; init; }

    /// <summary>The table of this record's hyperparameters.</summary>
    public abstract OptionSchema GetSchema();

    /// <summary>
    /// Checks every hyperparameter against its declared rule, in the schema's order (PyTorch's validation order), then
    /// the rules that involve more than one (<see cref="ValidateCombination"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The first invalid value, naming the hyperparameter and quoting the value.</exception>
    public void Validate()
    {
        foreach (var field in GetSchema()) field.Validate(this);
        ValidateCombination();
    }

    /// <summary>Rules that involve more than one hyperparameter (SGD's Nesterov rule, for example).</summary>
    protected virtual void ValidateCombination() { }

    /// <summary>The hyperparameters by PyTorch's names, in the schema's order, each boxed as its declared type.</summary>
    public IReadOnlyList<KeyValuePair<string, object?>> ToHyperparameters() =>
        GetSchema().Select(f => new KeyValuePair<string, object?>(f.Name, f.GetValue(this))).ToList();

    /// <summary>
    /// A copy with the named hyperparameters replaced, validated as a whole; every name must be in the schema and every
    /// value of its declared type.
    /// </summary>
    /// <param name="values">Names and values.</param>
    /// <exception cref="ArgumentException">An unknown name, a value of the wrong type, or an invalid value.</exception>
    public OptimizerOptions WithHyperparameters(IEnumerable<KeyValuePair<string, object?>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var schema = GetSchema();
        var copy = this;
        foreach (var (name, value) in values)
        {
            var field = schema.Find(name) ?? throw new ArgumentException($"{GetType().Name} has no hyperparameter '{name}'.", nameof(values));
            copy = field.WithValue(copy, value);
        }
        copy.Validate();
        return copy;
    }
}

/// <summary>Options of algorithms that have a momentum coefficient, which cyclic schedulers can drive.</summary>
public interface IMomentumOptions
{
    /// <summary>The momentum coefficient.</summary>
    double Momentum { get; }

    /// <summary>A copy with another momentum (validated when it enters a group).</summary>
    OptimizerOptions WithMomentum(double momentum);
}

/// <summary>Options of algorithms that have Adam's (beta1, beta2), which <c>OneCycleLR</c> can drive.</summary>
public interface IBetasOptions
{
    /// <summary>The coefficient of the running average of the gradient.</summary>
    double Beta1 { get; }

    /// <summary>The coefficient of the running average of the squared gradient.</summary>
    double Beta2 { get; }

    /// <summary>A copy with other betas (validated when it enters a group).</summary>
    OptimizerOptions WithBetas(double beta1, double beta2);
}
