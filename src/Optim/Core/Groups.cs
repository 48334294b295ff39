using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;

namespace Optim;

/// <summary>Turns the ways callers pass parameters (as TorchSharp's factories accept them) into group specs.</summary>
internal static class Groups
{
    public static IEnumerable<ParamGroupSpec<TOptions>> Single<TOptions>(IEnumerable<Parameter> parameters)
        where TOptions : OptimizerOptions => new[] { new ParamGroupSpec<TOptions>(parameters) };

    public static IEnumerable<ParamGroupSpec<TOptions>> Named<TOptions>(IEnumerable<(string name, Parameter parameter)> parameters)
        where TOptions : OptimizerOptions
    {
        var list = parameters.ToList();
        return new[] { new ParamGroupSpec<TOptions>(list.Select(p => p.parameter).ToList(), Names: list.Select(p => p.name).ToList()) };
    }

    /// <summary>
    /// TorchSharp's typed parameter groups (<c>new Adadelta.ParamGroup[] { ... }</c>): each group's learning rate and the
    /// options <paramref name="apply"/> copies override the defaults where TorchSharp's group sets them.
    /// </summary>
    public static IEnumerable<ParamGroupSpec<TOptions>> FromTorchSharp<TOptions, TTorchSharpOptions>(
        IEnumerable<TorchSharp.Modules.ParamGroup<TTorchSharpOptions>> groups, Func<TOptions, TTorchSharpOptions, TOptions> apply)
        where TOptions : OptimizerOptions where TTorchSharpOptions : TorchSharp.Modules.OptimizerOptions
    {
        ArgumentNullException.ThrowIfNull(groups);
        return groups.Select(g =>
        {
            ArgumentNullException.ThrowIfNull(g, nameof(groups));
            var theirs = g.Options;
            return new ParamGroupSpec<TOptions>(g.Parameters ?? Enumerable.Empty<Parameter>(), theirs is null
                ? null
                : o => apply((TOptions)((OptimizerOptions)o with { Lr = theirs.LearningRate ?? o.Lr }), theirs));
        }).ToList();
    }
}
