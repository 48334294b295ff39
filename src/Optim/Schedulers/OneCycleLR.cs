using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>OneCycleLR</c>: the 1cycle policy, stepped after every batch. The learning rate rises from
/// <c>max_lr / div_factor</c> to <c>max_lr</c> over the first <c>pct_start</c> of <c>total_steps</c>, then anneals to
/// <c>initial_lr / final_div_factor</c> ("cos" or "linear"; with <c>three_phase</c>, back to the initial rate first,
/// then down). With <c>cycle_momentum</c> the momentum, or beta1 of Adam-like optimizers, moves the opposite way
/// between <c>max_momentum</c> and <c>base_momentum</c>.
/// </summary>
/// <remarks>
/// <para>
/// The schedule has <c>total_steps</c> values, at <see cref="LRScheduler.last_epoch"/> 0 to <c>total_steps - 1</c>:
/// the constructor sets the first, so step it <c>total_steps - 1</c> times. Stepping past <c>total_steps</c> throws
/// <see cref="InvalidOperationException"/> and changes nothing (PyTorch raises too; TorchSharp's sets the rate to 0).
/// </para>
/// <para>
/// PyTorch keeps <c>max_lr</c>, <c>min_lr</c> and the momentum bounds in the param groups (saved with the optimizer);
/// here they are the scheduler's and in its state dict. Each group's <c>initial_lr</c> is set to
/// <c>max_lr / div_factor</c> whatever <c>last_epoch</c> is, so resuming with <c>last_epoch = n</c> works on a fresh
/// optimizer as well (PyTorch reads them from the groups of an optimizer whose state was loaded: the same values).
/// </para>
/// </remarks>
public sealed class OneCycleLR : LRScheduler
{
    private int _totalSteps;
    private double[] _phaseEnds;
    private string _annealStrategy;
    private bool _cycleMomentum;
    private bool _useBeta1;
    private double[] _maxLrs;
    private double[] _minLrs;
    private double[] _baseMomentums = Array.Empty<double>();
    private double[] _maxMomentums = Array.Empty<double>();

    /// <summary>Creates the scheduler and sets the first step's learning rate (and momentum).</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="max_lr">The peak learning rate (one, or one per group).</param>
    /// <param name="total_steps">The number of steps of the cycle; or give <paramref name="epochs"/> and <paramref name="steps_per_epoch"/>.</param>
    /// <param name="epochs">Epochs (with <paramref name="steps_per_epoch"/>) when <paramref name="total_steps"/> is not given.</param>
    /// <param name="steps_per_epoch">Steps per epoch (with <paramref name="epochs"/>).</param>
    /// <param name="pct_start">The fraction of the cycle spent raising the learning rate, in [0, 1].</param>
    /// <param name="anneal_strategy">"cos" or "linear".</param>
    /// <param name="cycle_momentum">Cycle the momentum (or beta1) inversely to the learning rate.</param>
    /// <param name="base_momentum">The momentum at the peak learning rate (default 0.85).</param>
    /// <param name="max_momentum">The momentum at the start and end (default 0.95).</param>
    /// <param name="div_factor">initial_lr = max_lr / div_factor.</param>
    /// <param name="final_div_factor">min_lr = initial_lr / final_div_factor.</param>
    /// <param name="three_phase">Return to initial_lr symmetrically, then anneal to min_lr (the paper's schedule).</param>
    /// <param name="last_epoch">The index of the last batch; -1 to start.</param>
    public OneCycleLR(
        TorchOptimizer optimizer, PerGroup max_lr, int? total_steps = null, int? epochs = null, int? steps_per_epoch = null,
        double pct_start = 0.3, string anneal_strategy = "cos", bool cycle_momentum = true, PerGroup? base_momentum = null,
        PerGroup? max_momentum = null, double div_factor = 25.0, double final_div_factor = 1e4, bool three_phase = false,
        int last_epoch = -1)
        : base(optimizer)
    {
        if (total_steps is { } steps)
        {
            if (steps <= 0) throw new ArgumentException($"Expected positive integer total_steps, but got {steps}", nameof(total_steps));
            _totalSteps = steps;
        }
        else if (epochs is { } e && steps_per_epoch is { } spe)
        {
            if (e <= 0) throw new ArgumentException($"Expected positive integer epochs, but got {e}", nameof(epochs));
            if (spe <= 0) throw new ArgumentException($"Expected positive integer steps_per_epoch, but got {spe}", nameof(steps_per_epoch));
            _totalSteps = checked(e * spe);
        }
        else
        {
            throw new ArgumentException("You must define either total_steps OR (epochs AND steps_per_epoch)", nameof(total_steps));
        }

        _phaseEnds = three_phase
            ? new[] { pct_start * _totalSteps - 1, 2 * pct_start * _totalSteps - 2, _totalSteps - 1 }
            : new[] { pct_start * _totalSteps - 1, _totalSteps - 1 };

        if (!(pct_start >= 0 && pct_start <= 1))
            throw new ArgumentException($"Expected float between 0 and 1 pct_start, but got {Args.Py(pct_start)}", nameof(pct_start));
        if (anneal_strategy is not ("cos" or "linear"))
            throw new ArgumentException($"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}", nameof(anneal_strategy));
        _annealStrategy = anneal_strategy;
        if (!(double.IsFinite(div_factor) && div_factor > 0))
            throw new ArgumentException($"Expected positive div_factor, but got {Args.Py(div_factor)}", nameof(div_factor));
        if (!(double.IsFinite(final_div_factor) && final_div_factor > 0))
            throw new ArgumentException($"Expected positive final_div_factor, but got {Args.Py(final_div_factor)}", nameof(final_div_factor));

        var groups = Groups;
        var maxLrs = max_lr.Format("max_lr", groups);
        var useBeta1 = false;
        IReadOnlyList<double> maxMomentums = Array.Empty<double>(), baseMomentums = Array.Empty<double>();
        if (cycle_momentum)
        {
            useBeta1 = Momentum.UseBeta1(groups, nameof(cycle_momentum));
            maxMomentums = (max_momentum ?? 0.95).Format("max_momentum", groups);
            baseMomentums = (base_momentum ?? 0.85).Format("base_momentum", groups);
        }

        _maxLrs = maxLrs.ToArray();
        _minLrs = new double[groups.Count];
        for (var i = 0; i < groups.Count; i++)
        {
            var initialLr = maxLrs[i] / div_factor;
            SetInitialLr(groups[i], initialLr);
            _minLrs[i] = initialLr / final_div_factor;
        }

        _cycleMomentum = cycle_momentum;
        if (cycle_momentum)
        {
            _useBeta1 = useBeta1;
            _maxMomentums = maxMomentums.ToArray();
            _baseMomentums = baseMomentums.ToArray();
            if (last_epoch == -1)
                for (var i = 0; i < groups.Count; i++) Momentum.Set(groups[i], _useBeta1, _maxMomentums[i]);
        }

        Initialize(last_epoch);
    }

    /// <summary>The number of steps of the cycle.</summary>
    public int total_steps => _totalSteps;

    /// <summary>The peak learning rates.</summary>
    public IReadOnlyList<double> max_lrs => _maxLrs;

    /// <summary>The final learning rates.</summary>
    public IReadOnlyList<double> min_lrs => _minLrs;

    /// <summary>Whether beta1 (rather than momentum) is cycled.</summary>
    public bool use_beta1 => _useBeta1;

    /// <summary>Advances one batch.</summary>
    /// <exception cref="InvalidOperationException">The cycle is over (<see cref="LRScheduler.last_epoch"/> would pass <see cref="total_steps"/>); nothing changes.</exception>
    public override void step()
    {
        CheckStep(last_epoch + 1);
        base.step();
    }

    /// <summary>Jumps to batch <paramref name="epoch"/> (deprecated in PyTorch).</summary>
    /// <param name="epoch">The batch index.</param>
    public override void step(int epoch)
    {
        CheckStep(epoch);
        base.step(epoch);
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var stepNum = last_epoch;
        CheckStep(stepNum);
        var groups = Groups;
        var lrs = new double[groups.Count];
        for (var g = 0; g < groups.Count; g++)
        {
            var startStep = 0.0;
            for (var i = 0; i < _phaseEnds.Length; i++)
            {
                var endStep = _phaseEnds[i];
                if (stepNum <= endStep || i == _phaseEnds.Length - 1)
                {
                    var pct = (stepNum - startStep) / (endStep - startStep);
                    var (startLr, endLr) = PhaseLrs(i, g, groups[g]);
                    lrs[g] = Anneal(startLr, endLr, pct);
                    if (_cycleMomentum)
                    {
                        var (startMomentum, endMomentum) = PhaseMomentums(i, g);
                        Momentum.Set(groups[g], _useBeta1, Anneal(startMomentum, endMomentum, pct));
                    }

                    break;
                }

                startStep = _phaseEnds[i];
            }
        }

        return lrs;
    }

    private void CheckStep(int stepNum)
    {
        if (stepNum > _totalSteps)
            throw new InvalidOperationException($"Tried to step {stepNum} times. The specified number of total steps is {_totalSteps}");
    }

    // Phases: two-phase (initial -> max, max -> min) or three-phase (initial -> max, max -> initial, initial -> min).
    private (double, double) PhaseLrs(int phase, int g, TorchSharp.torch.optim.ILearningRateController group)
    {
        var initial = group.InitialLearningRate;
        return (_phaseEnds.Length, phase) switch
        {
            (_, 0) => (initial, _maxLrs[g]),
            (2, _) => (_maxLrs[g], _minLrs[g]),
            (_, 1) => (_maxLrs[g], initial),
            _ => (initial, _minLrs[g]),
        };
    }

    private (double, double) PhaseMomentums(int phase, int g) => (_phaseEnds.Length, phase) switch
    {
        (_, 0) => (_maxMomentums[g], _baseMomentums[g]),
        (2, _) => (_baseMomentums[g], _maxMomentums[g]),
        (_, 1) => (_baseMomentums[g], _maxMomentums[g]),
        _ => (_maxMomentums[g], _maxMomentums[g]),
    };

    private double Anneal(double start, double end, double pct) => _annealStrategy == "cos"
        ? end + (start - end) / 2.0 * (Math.Cos(Math.PI * pct) + 1)
        : (end - start) * pct + start;

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState()
    {
        var entries = new List<KeyValuePair<string, object?>>
        {
            new("total_steps", (long)_totalSteps),
            new("_schedule_phases", _phaseEnds),
            new("_anneal_func_type", _annealStrategy),
            new("max_lrs", _maxLrs),
            new("min_lrs", _minLrs),
            new("cycle_momentum", _cycleMomentum),
        };
        if (_cycleMomentum)
        {
            entries.Add(new("use_beta1", _useBeta1));
            entries.Add(new("max_momentums", _maxMomentums));
            entries.Add(new("base_momentums", _baseMomentums));
        }

        return entries;
    }

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var groups = Groups;
        var totalSteps = reader.Int("total_steps", min: 1);
        var phases = reader.Doubles("_schedule_phases");
        if (phases.Count is not (2 or 3) || phases[^1] != totalSteps - 1)
            throw reader.Bad("_schedule_phases", $"expected 2 or 3 phase ends, the last {totalSteps - 1}");
        var anneal = reader.String("_anneal_func_type", "cos", "linear");
        var maxLrs = reader.PerGroup("max_lrs", groups.Count);
        var minLrs = reader.PerGroup("min_lrs", groups.Count);
        var cycleMomentum = reader.Bool("cycle_momentum");
        var useBeta1 = false;
        IReadOnlyList<double> maxMomentums = Array.Empty<double>(), baseMomentums = Array.Empty<double>();
        if (cycleMomentum)
        {
            useBeta1 = reader.Bool("use_beta1");
            if (!Momentum.Fits(groups, useBeta1)) throw reader.Bad("use_beta1", Momentum.Unsupported);
            maxMomentums = reader.PerGroup("max_momentums", groups.Count);
            baseMomentums = reader.PerGroup("base_momentums", groups.Count);
        }

        return () =>
        {
            (_totalSteps, _phaseEnds, _annealStrategy, _maxLrs, _minLrs) = (totalSteps, phases.ToArray(), anneal, maxLrs.ToArray(), minLrs.ToArray());
            (_cycleMomentum, _useBeta1, _maxMomentums, _baseMomentums) = (cycleMomentum, useBeta1, maxMomentums.ToArray(), baseMomentums.ToArray());
        };
    }
}
