using System;
using System.Collections.Generic;
using System.Linq;

namespace Optim;

/// <summary>
/// Every algorithm of the library, in one list: what tests, benchmarks, samples and tools iterate over instead of naming
/// algorithms. Adding an algorithm means its source file (with its <see cref="AlgorithmInfo"/>), one row here and its
/// golden cases.
/// </summary>
public static class AlgorithmCatalog
{
    /// <summary>The algorithms, in documentation order.</summary>
    public static IReadOnlyList<AlgorithmInfo> All { get; } = new AlgorithmInfo[]
    {
        SGD.Info,
        SGDMomentumNesterov.Info,
        Adam.Info,
        AdamW.Info,
        Adagrad.Info,
        RMSprop.Info,
        Adadelta.Info,
        Adamax.Info,
        ASGD.Info,
        NAdam.Info,
        RAdam.Info,
        Rprop.Info,
        Adafactor.Info,
        SparseAdam.Info,
        Muon.Info,
        LBFGS.Info,
    };

    /// <summary>The algorithm called <paramref name="name"/> (its class name).</summary>
    /// <param name="name">The name.</param>
    /// <exception cref="ArgumentException">No such algorithm.</exception>
    public static AlgorithmInfo Get(string name) =>
        All.FirstOrDefault(a => a.Name == name)
        ?? throw new ArgumentException($"no algorithm '{name}'; known: {string.Join(", ", All.Select(a => a.Name))}", nameof(name));

    /// <summary>The algorithm of <paramref name="optimizer"/>'s exact class, or null for one the catalog does not list.</summary>
    /// <param name="optimizer">An optimizer.</param>
    public static AlgorithmInfo? Of(Optimizer optimizer) =>
        All.FirstOrDefault(a => a.OptimizerType == (optimizer ?? throw new ArgumentNullException(nameof(optimizer))).GetType());
}
