using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.ExceptionServices;
using TorchSharp.Modules;

namespace Optim.Tests.Support;

/// <summary>
/// Group operations on an optimizer of any algorithm, without naming its options type: the typed API
/// (<see cref="Optimizer{TOptions}"/>) called for the options type the optimizer has.
/// </summary>
public static class TypedGroups
{
    /// <summary>Sets group <paramref name="index"/>'s options to <paramref name="change"/> of them (validated as any change is).</summary>
    public static void ChangeOptions(Optimizer optimizer, int index, Func<OptimizerOptions, OptimizerOptions> change) =>
        Call(nameof(ChangeTyped), optimizer, index, change);

    /// <summary>Adds a group over <paramref name="parameters"/>, its options configured by <paramref name="configure"/>.</summary>
    public static void Add(Optimizer optimizer, IEnumerable<Parameter> parameters, Func<OptimizerOptions, OptimizerOptions>? configure = null) =>
        Call(nameof(AddTyped), optimizer, parameters, configure);

    /// <summary>The options of every group.</summary>
    public static IReadOnlyList<OptimizerOptions> Options(Optimizer optimizer) =>
        (IReadOnlyList<OptimizerOptions>)Call(nameof(OptionsTyped), optimizer)!;

    /// <summary>The options record type of <paramref name="optimizer"/> (the <c>TOptions</c> of its <see cref="Optimizer{TOptions}"/> base).</summary>
    public static Type OptionsType(Optimizer optimizer)
    {
        for (var t = optimizer.GetType(); t is not null; t = t.BaseType)
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Optimizer<>)) return t.GetGenericArguments()[0];
        throw new ArgumentException($"{optimizer.GetType().Name} is not an Optimizer<TOptions>.", nameof(optimizer));
    }

    private static object? Call(string method, Optimizer optimizer, params object?[] arguments)
    {
        var typed = typeof(TypedGroups).GetMethod(method, BindingFlags.NonPublic | BindingFlags.Static)!.MakeGenericMethod(OptionsType(optimizer));
        try
        {
            return typed.Invoke(null, arguments.Prepend(optimizer).ToArray());
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    private static void ChangeTyped<T>(Optimizer<T> optimizer, int index, Func<OptimizerOptions, OptimizerOptions> change) where T : OptimizerOptions =>
        optimizer.ParamGroups[index].Options = (T)change(optimizer.ParamGroups[index].Options);

    private static void AddTyped<T>(Optimizer<T> optimizer, IEnumerable<Parameter> parameters, Func<OptimizerOptions, OptimizerOptions>? configure)
        where T : OptimizerOptions =>
        optimizer.AddParamGroup(new ParamGroupSpec<T>(parameters, configure is null ? null : o => (T)configure(o)));

    private static IReadOnlyList<OptimizerOptions> OptionsTyped<T>(Optimizer<T> optimizer) where T : OptimizerOptions =>
        optimizer.ParamGroups.Select(g => (OptimizerOptions)g.Options).ToList();
}
