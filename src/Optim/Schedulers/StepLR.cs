using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>PyTorch's <c>StepLR</c>: multiplies the learning rate by <c>gamma</c> every <c>step_size</c> epochs.</summary>
public sealed class StepLR : LRScheduler
{
    private int _stepSize;
    private double _gamma;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="step_size">The period of the decay, in epochs (positive).</param>
    /// <param name="gamma">The multiplicative factor of the decay.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public StepLR(TorchOptimizer optimizer, int step_size, double gamma = 0.1, int last_epoch = -1) : base(optimizer)
    {
        _stepSize = Args.Positive(step_size, nameof(step_size));
        _gamma = Args.Finite(gamma, nameof(gamma));
        Initialize(last_epoch);
    }

    /// <summary>The period of the decay.</summary>
    public int step_size => _stepSize;

    /// <summary>The decay factor.</summary>
    public double gamma => _gamma;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        if (last_epoch == 0 || FloorMod(last_epoch, _stepSize) != 0) return groups.Select(g => g.LearningRate).ToArray();
        return groups.Select(g => g.LearningRate * _gamma).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double>? get_closed_form_lr() =>
        base_lrs.Select(b => b * Math.Pow(_gamma, FloorDiv(last_epoch, _stepSize))).ToArray();

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("step_size", (long)_stepSize),
        new("gamma", _gamma),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var stepSize = reader.Int("step_size", min: 1);
        var gamma = reader.Double("gamma");
        return () => (_stepSize, _gamma) = (stepSize, gamma);
    }
}

/// <summary>PyTorch's <c>MultiStepLR</c>: multiplies the learning rate by <c>gamma</c> at each milestone epoch.</summary>
/// <remarks>The state dict holds <c>milestones</c> as the sorted list of milestones, repeats kept (PyTorch: a Counter).</remarks>
public sealed class MultiStepLR : LRScheduler
{
    private long[] _milestones;
    private double _gamma;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="milestones">Epoch indices; a milestone given twice decays twice there.</param>
    /// <param name="gamma">The multiplicative factor of the decay.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public MultiStepLR(TorchOptimizer optimizer, IEnumerable<int> milestones, double gamma = 0.1, int last_epoch = -1) : base(optimizer)
    {
        ArgumentNullException.ThrowIfNull(milestones);
        _milestones = milestones.Select(m => (long)m).Order().ToArray();
        _gamma = Args.Finite(gamma, nameof(gamma));
        Initialize(last_epoch);
    }

    /// <summary>The milestones, sorted, repeats kept.</summary>
    public IReadOnlyList<long> milestones => _milestones;

    /// <summary>The decay factor.</summary>
    public double gamma => _gamma;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var groups = Groups;
        var count = _milestones.Count(m => m == last_epoch);
        if (count == 0) return groups.Select(g => g.LearningRate).ToArray();
        return groups.Select(g => g.LearningRate * Math.Pow(_gamma, count)).ToArray();
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double>? get_closed_form_lr()
    {
        var passed = _milestones.Count(m => m <= last_epoch);   // bisect_right on the sorted milestones
        return base_lrs.Select(b => b * Math.Pow(_gamma, passed)).ToArray();
    }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("milestones", _milestones),
        new("gamma", _gamma),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var milestones = reader.Int64s("milestones").Order().ToArray();
        var gamma = reader.Double("gamma");
        return () => (_milestones, _gamma) = (milestones, gamma);
    }
}
