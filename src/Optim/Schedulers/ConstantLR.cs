using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>ConstantLR</c>: multiplies the learning rate by <c>factor</c> until epoch <c>total_iters</c>, then
/// restores it.
/// </summary>
public sealed class ConstantLR : LRScheduler
{
    private double _factor;
    private int _totalIters;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="factor">The factor, in [0, 1].</param>
    /// <param name="total_iters">The number of epochs the factor applies.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public ConstantLR(TorchOptimizer optimizer, double factor = 1.0 / 3, int total_iters = 5, int last_epoch = -1) : base(optimizer)
    {
        if (!(factor <= 1.0 && factor >= 0))
            throw new ArgumentException("Constant multiplicative factor expected to be between 0 and 1.", nameof(factor));
        _factor = factor;
        _totalIters = Args.NonNegative(total_iters, nameof(total_iters));
        Initialize(last_epoch);
    }

    /// <summary>The factor.</summary>
    public double factor => _factor;

    /// <summary>The epoch at which the factor stops applying.</summary>
    public int total_iters => _totalIters;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        if (last_epoch == 0) return groups.Select(g => g.LearningRate * _factor).ToArray();
        if (last_epoch != _totalIters) return groups.Select(g => g.LearningRate).ToArray();
        return groups.Select(g => g.LearningRate * (1.0 / _factor)).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double>? get_closed_form_lr() =>
        base_lrs.Select(b => b * (_factor + (last_epoch >= _totalIters ? 1 : 0) * (1 - _factor))).ToArray();

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("factor", _factor),
        new("total_iters", (long)_totalIters),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var factor = reader.Double("factor");
        if (factor is > 1.0 or < 0) throw reader.Bad("factor", "Constant multiplicative factor expected to be between 0 and 1");
        var totalIters = reader.Int("total_iters", min: 0);
        return () => (_factor, _totalIters) = (factor, totalIters);
    }
}

/// <summary>
/// PyTorch's <c>LinearLR</c>: scales the learning rate by a factor that moves linearly from <c>start_factor</c> to
/// <c>end_factor</c> over <c>total_iters</c> epochs (a warm-up when the start is below 1).
/// </summary>
public sealed class LinearLR : LRScheduler
{
    private double _startFactor;
    private double _endFactor;
    private int _totalIters;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="start_factor">The factor of the first epoch, in (0, 1].</param>
    /// <param name="end_factor">The factor from epoch <paramref name="total_iters"/> on, in [0, 1].</param>
    /// <param name="total_iters">The number of epochs the factor moves over (positive).</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public LinearLR(TorchOptimizer optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0, int total_iters = 5, int last_epoch = -1)
        : base(optimizer)
    {
        if (!(start_factor <= 1.0 && start_factor > 0))
            throw new ArgumentException("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.", nameof(start_factor));
        if (!(end_factor <= 1.0 && end_factor >= 0))
            throw new ArgumentException("Ending multiplicative factor expected to be between 0 and 1.", nameof(end_factor));
        _startFactor = start_factor;
        _endFactor = end_factor;
        _totalIters = Args.Positive(total_iters, nameof(total_iters));
        Initialize(last_epoch);
    }

    /// <summary>The factor of the first epoch.</summary>
    public double start_factor => _startFactor;

    /// <summary>The final factor.</summary>
    public double end_factor => _endFactor;

    /// <summary>The number of epochs the factor moves over.</summary>
    public int total_iters => _totalIters;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        if (last_epoch == 0) return groups.Select(g => g.LearningRate * _startFactor).ToArray();
        if (IsInitial || last_epoch > _totalIters) return groups.Select(g => g.LearningRate).ToArray();
        var delta = _endFactor - _startFactor;
        return groups.Select(g => g.LearningRate * (1.0 + delta / (_totalIters * _startFactor + (last_epoch - 1) * delta))).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double>? get_closed_form_lr() =>
        base_lrs.Select(b => b * (_startFactor + (_endFactor - _startFactor) * Math.Min(_totalIters, last_epoch) / _totalIters)).ToArray();

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("start_factor", _startFactor),
        new("end_factor", _endFactor),
        new("total_iters", (long)_totalIters),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var start = reader.Double("start_factor");
        if (start is > 1.0 or <= 0) throw reader.Bad("start_factor", "expected to be greater than 0 and less or equal to 1");
        var end = reader.Double("end_factor");
        if (end is > 1.0 or < 0) throw reader.Bad("end_factor", "expected to be between 0 and 1");
        var totalIters = reader.Int("total_iters", min: 1);
        return () => (_startFactor, _endFactor, _totalIters) = (start, end, totalIters);
    }
}
