using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>LambdaLR</c>: each group's learning rate is its base rate times <c>lr_lambda(epoch)</c>.
/// </summary>
/// <remarks>The functions are not part of the state dict (PyTorch keeps plain functions out of it too).</remarks>
public sealed class LambdaLR : LRScheduler
{
    private readonly Func<int, double>[] _lrLambdas;

    /// <summary>One function for every group.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="lr_lambda">Computes a multiplicative factor from the epoch.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public LambdaLR(TorchOptimizer optimizer, Func<int, double> lr_lambda, int last_epoch = -1)
        : this(optimizer, Repeat(optimizer, lr_lambda), last_epoch, checkCount: false) { }

    /// <summary>One function per group.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="lr_lambda">One function per group.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public LambdaLR(TorchOptimizer optimizer, IReadOnlyList<Func<int, double>> lr_lambda, int last_epoch = -1)
        : this(optimizer, lr_lambda, last_epoch, checkCount: true) { }

    private LambdaLR(TorchOptimizer optimizer, IReadOnlyList<Func<int, double>> lr_lambda, int last_epoch, bool checkCount) : base(optimizer)
    {
        _lrLambdas = CheckLambdas(Groups.Count, lr_lambda, checkCount);
        Initialize(last_epoch);
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr() =>
        _lrLambdas.Zip(base_lrs, (lmbda, baseLr) => baseLr * lmbda(last_epoch)).ToArray();

    internal static Func<int, double>[] Repeat(TorchOptimizer optimizer, Func<int, double> lr_lambda)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(lr_lambda);
        return Enumerable.Repeat(lr_lambda, optimizer.ParamGroups.Count()).ToArray();
    }

    internal static Func<int, double>[] CheckLambdas(int groups, IReadOnlyList<Func<int, double>> lr_lambda, bool checkCount)
    {
        ArgumentNullException.ThrowIfNull(lr_lambda);
        if (checkCount && lr_lambda.Count != groups)
            throw new ArgumentException($"Expected {groups} lr_lambdas, but got {lr_lambda.Count}", nameof(lr_lambda));
        if (lr_lambda.Any(f => f is null)) throw new ArgumentException("lr_lambda should be a function, but got None", nameof(lr_lambda));
        return lr_lambda.ToArray();
    }
}

/// <summary>
/// PyTorch's <c>MultiplicativeLR</c>: each step multiplies each group's learning rate by <c>lr_lambda(epoch)</c>.
/// </summary>
/// <remarks>The functions are not part of the state dict (PyTorch keeps plain functions out of it too).</remarks>
public sealed class MultiplicativeLR : LRScheduler
{
    private readonly Func<int, double>[] _lrLambdas;

    /// <summary>One function for every group.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="lr_lambda">Computes the factor of an epoch.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public MultiplicativeLR(TorchOptimizer optimizer, Func<int, double> lr_lambda, int last_epoch = -1)
        : this(optimizer, LambdaLR.Repeat(optimizer, lr_lambda), last_epoch, checkCount: false) { }

    /// <summary>One function per group.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="lr_lambda">One function per group.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public MultiplicativeLR(TorchOptimizer optimizer, IReadOnlyList<Func<int, double>> lr_lambda, int last_epoch = -1)
        : this(optimizer, lr_lambda, last_epoch, checkCount: true) { }

    private MultiplicativeLR(TorchOptimizer optimizer, IReadOnlyList<Func<int, double>> lr_lambda, int last_epoch, bool checkCount) : base(optimizer)
    {
        _lrLambdas = LambdaLR.CheckLambdas(Groups.Count, lr_lambda, checkCount);
        Initialize(last_epoch);
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        return IsInitial
            ? groups.Select(g => g.LearningRate).ToArray()
            : _lrLambdas.Zip(groups, (lmbda, g) => g.LearningRate * lmbda(last_epoch)).ToArray();
    }
}
