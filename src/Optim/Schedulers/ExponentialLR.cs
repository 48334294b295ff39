using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>PyTorch's <c>ExponentialLR</c>: multiplies the learning rate by <c>gamma</c> every epoch.</summary>
public sealed class ExponentialLR : LRScheduler
{
    private double _gamma;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="gamma">The multiplicative factor of the decay (required, as in PyTorch).</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public ExponentialLR(TorchOptimizer optimizer, double gamma, int last_epoch = -1) : base(optimizer)
    {
        _gamma = Args.Finite(gamma, nameof(gamma));
        Initialize(last_epoch);
    }

    /// <summary>The decay factor.</summary>
    public double gamma => _gamma;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        // Resuming (last_epoch >= 0), the initial step must not advance the rate one step past where it was.
        return IsInitial ? groups.Select(g => g.LearningRate).ToArray() : groups.Select(g => g.LearningRate * _gamma).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double>? get_closed_form_lr() =>
        base_lrs.Select(b => b * Math.Pow(_gamma, last_epoch)).ToArray();

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[] { new("gamma", _gamma) };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var gamma = reader.Double("gamma");
        return () => _gamma = gamma;
    }
}

/// <summary>
/// PyTorch's <c>PolynomialLR</c>: decays the learning rate as <c>(1 - epoch / total_iters) ** power</c> until
/// <c>total_iters</c>, where it reaches 0.
/// </summary>
public sealed class PolynomialLR : LRScheduler
{
    private int _totalIters;
    private double _power;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="total_iters">The number of epochs of the decay (positive).</param>
    /// <param name="power">The power of the polynomial.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public PolynomialLR(TorchOptimizer optimizer, int total_iters = 5, double power = 1.0, int last_epoch = -1) : base(optimizer)
    {
        _totalIters = Args.Positive(total_iters, nameof(total_iters));
        _power = Args.Finite(power, nameof(power));
        Initialize(last_epoch);
    }

    /// <summary>The number of epochs of the decay.</summary>
    public int total_iters => _totalIters;

    /// <summary>The power of the polynomial.</summary>
    public double power => _power;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        if (IsInitial || last_epoch > _totalIters) return groups.Select(g => g.LearningRate).ToArray();
        var decayFactor = Math.Pow((1.0 - (double)last_epoch / _totalIters) / (1.0 - (double)(last_epoch - 1) / _totalIters), _power);
        return groups.Select(g => g.LearningRate * decayFactor).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double>? get_closed_form_lr() =>
        base_lrs.Select(b => b * Math.Pow(1.0 - (double)Math.Min(_totalIters, last_epoch) / _totalIters, _power)).ToArray();

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("total_iters", (long)_totalIters),
        new("power", _power),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var totalIters = reader.Int("total_iters", min: 1);
        var power = reader.Double("power");
        return () => (_totalIters, _power) = (totalIters, power);
    }
}

/// <summary>
/// PyTorch's <c>CosineAnnealingLR</c>: anneals the learning rate from its base to <c>eta_min</c> along a half cosine
/// of <c>T_max</c> epochs (and back up after, as the recursive form does; no restarts).
/// </summary>
public sealed class CosineAnnealingLR : LRScheduler
{
    private int _tMax;
    private double _etaMin;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="T_max">The number of epochs of the half cosine (positive).</param>
    /// <param name="eta_min">The minimum learning rate.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public CosineAnnealingLR(TorchOptimizer optimizer, int T_max, double eta_min = 0.0, int last_epoch = -1) : base(optimizer)
    {
        _tMax = Args.Positive(T_max, nameof(T_max));
        _etaMin = Args.Finite(eta_min, nameof(eta_min));
        Initialize(last_epoch);
    }

    /// <summary>The number of epochs of the half cosine.</summary>
    public int T_max => _tMax;

    /// <summary>The minimum learning rate.</summary>
    public double eta_min => _etaMin;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        if (IsInitial) return groups.Select(g => g.LearningRate).ToArray();
        if (StepCount == 1 && last_epoch > 0)
            return base_lrs.Select(b => _etaMin + (b - _etaMin) * (1 + Math.Cos(last_epoch * Math.PI / _tMax)) / 2).ToArray();
        if (FloorMod(last_epoch - 1 - _tMax, 2L * _tMax) == 0)
            return groups.Zip(base_lrs, (g, b) => g.LearningRate + (b - _etaMin) * (1 - Math.Cos(Math.PI / _tMax)) / 2).ToArray();
        return groups.Select(g =>
            (1 + Math.Cos(Math.PI * last_epoch / _tMax)) / (1 + Math.Cos(Math.PI * (last_epoch - 1) / _tMax)) * (g.LearningRate - _etaMin) + _etaMin).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double>? get_closed_form_lr() =>
        base_lrs.Select(b => _etaMin + (b - _etaMin) * (1 + Math.Cos(Math.PI * last_epoch / _tMax)) / 2).ToArray();

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("T_max", (long)_tMax),
        new("eta_min", _etaMin),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var tMax = reader.Int("T_max", min: 1);
        var etaMin = reader.Double("eta_min");
        return () => (_tMax, _etaMin) = (tMax, etaMin);
    }
}
