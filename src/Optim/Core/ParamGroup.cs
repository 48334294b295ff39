using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Validation;
using TorchSharp.Modules;
using static TorchSharp.torch.optim;

namespace Optim;

/// <summary>
/// A parameter group as the caller describes it: the parameters, and how its options differ from the optimizer's
/// defaults (PyTorch's <c>{"params": ..., "lr": ...}</c> dict).
/// </summary>
/// <typeparam name="TOptions">The algorithm's options.</typeparam>
/// <param name="Parameters">The parameters of the group, in order.</param>
/// <param name="Configure">Derives the group's options from the defaults, e.g. <c>o =&gt; o with { Lr = 1e-4 }</c>; null keeps them.</param>
/// <param name="Names">
/// Optional parameter names (same order): used in error messages and kept in state dicts and checkpoints (PyTorch's
/// <c>param_names</c>). As in PyTorch, either every group of an optimizer has names or none has.
/// </param>
public sealed record ParamGroupSpec<TOptions>(
    IEnumerable<Parameter> Parameters,
    Func<TOptions, TOptions>? Configure = null,
    IReadOnlyList<string>? Names = null) where TOptions : OptimizerOptions;

/// <summary>
/// A live parameter group: its parameters and its current options. It is an <see cref="ILearningRateController"/>,
/// so TorchSharp's LR schedulers drive it; assigning <see cref="Options"/> validates the whole record first.
/// </summary>
/// <typeparam name="TOptions">The algorithm's options.</typeparam>
public class ParamGroup<TOptions> : ILearningRateController where TOptions : OptimizerOptions
{
    private TOptions _options;
    private double _initialLearningRate;
    private bool _namesGiven;

    internal ParamGroup(IReadOnlyList<Parameter> parameters, IReadOnlyList<string> names, bool namesGiven, TOptions options)
    {
        options.Validate();
        Parameters = parameters;
        Names = names;
        _namesGiven = namesGiven;
        _options = options;
        InitialLearningRate = options.Lr;
    }

    /// <summary>The parameters of this group, in the order they were given.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The parameters' names (given ones, or "group.index" where none were given).</summary>
    public IReadOnlyList<string> Names { get; private set; }

    /// <summary>
    /// The names given with the parameters (PyTorch's <c>param_names</c>, kept in state dicts and checkpoints), or null
    /// when the group was built from unnamed parameters.
    /// </summary>
    public IReadOnlyList<string>? ParamNames => _namesGiven ? Names : null;

    // A load that carries names replaces the group's, as PyTorch's load_state_dict does.
    internal void ReplaceParamNames(IReadOnlyList<string> names)
    {
        Names = names;
        _namesGiven = true;
    }

    /// <summary>The group's hyperparameters. Setting validates the new value before it takes effect.</summary>
    public TOptions Options
    {
        get => _options;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            value.Validate();
            _options = value;
        }
    }

    /// <summary>The current learning rate (what schedulers read and write).</summary>
    public double LearningRate
    {
        get => _options.Lr;
        set => Options = _options with { Lr = value };
    }

    /// <summary>
    /// The learning rate the schedulers treat as the base (PyTorch's <c>initial_lr</c>). Validated like
    /// <see cref="OptimizerOptions.Lr"/>: schedulers derive learning rates from it.
    /// </summary>
    public double InitialLearningRate
    {
        get => _initialLearningRate;
        set => _initialLearningRate = Check.NonNegative(value, "initial_lr", "Invalid initial learning rate");
    }
}

/// <summary>A group of an algorithm with momentum; TorchSharp's <c>CyclicLR</c> and <c>OneCycleLR</c> cycle it.</summary>
/// <typeparam name="TOptions">The algorithm's options; they implement <see cref="IMomentumOptions"/>.</typeparam>
internal sealed class MomentumParamGroup<TOptions> : ParamGroup<TOptions>, IMomentum where TOptions : OptimizerOptions
{
    internal MomentumParamGroup(IReadOnlyList<Parameter> parameters, IReadOnlyList<string> names, bool namesGiven, TOptions options)
        : base(parameters, names, namesGiven, options) { }

    /// <summary>The group's momentum coefficient.</summary>
    public double Momentum
    {
        get => ((IMomentumOptions)Options).Momentum;
        set => Options = (TOptions)((IMomentumOptions)Options).WithMomentum(value);
    }
}

/// <summary>A group of an Adam-like algorithm; TorchSharp's <c>OneCycleLR</c> cycles its beta1.</summary>
/// <typeparam name="TOptions">The algorithm's options; they implement <see cref="IBetasOptions"/>.</typeparam>
internal sealed class BetasParamGroup<TOptions> : ParamGroup<TOptions>, IBetas where TOptions : OptimizerOptions
{
    internal BetasParamGroup(IReadOnlyList<Parameter> parameters, IReadOnlyList<string> names, bool namesGiven, TOptions options)
        : base(parameters, names, namesGiven, options) { }

    /// <summary>The group's (beta1, beta2).</summary>
    public (double, double) Betas
    {
        get => (((IBetasOptions)Options).Beta1, ((IBetasOptions)Options).Beta2);
        set => Options = (TOptions)((IBetasOptions)Options).WithBetas(value.Item1, value.Item2);
    }
}

internal static class ParamGroupFactory
{
    // The group type follows what the options can do, so schedulers see exactly the interfaces that apply.
    public static ParamGroup<TOptions> Create<TOptions>(IReadOnlyList<Parameter> parameters, IReadOnlyList<string> names, bool namesGiven,
        TOptions options)
        where TOptions : OptimizerOptions => options switch
        {
            IBetasOptions => new BetasParamGroup<TOptions>(parameters, names, namesGiven, options),
            IMomentumOptions => new MomentumParamGroup<TOptions>(parameters, names, namesGiven, options),
            _ => new ParamGroup<TOptions>(parameters, names, namesGiven, options),
        };

    public static IReadOnlyList<string> DefaultNames(int group, int count) =>
        Enumerable.Range(0, count).Select(i => $"{group}.{i}").ToList();
}
