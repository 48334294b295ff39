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
}
