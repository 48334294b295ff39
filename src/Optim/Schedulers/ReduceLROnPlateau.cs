using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>ReduceLROnPlateau</c>: multiplies the learning rate by <c>factor</c> when a metric has stopped
/// improving for more than <c>patience</c> epochs. Step it with the metric: <see cref="step(double)"/>.
/// </summary>
/// <remarks>
/// Like PyTorch's, it takes no initial step and has no <see cref="LRScheduler.base_lrs"/>; <see cref="LRScheduler.last_epoch"/>
/// starts at 0. <see cref="step()"/> and <see cref="step(int)"/> without a metric throw
/// <see cref="InvalidOperationException"/> (PyTorch: a <c>TypeError</c> for the missing argument).
/// </remarks>
public sealed class ReduceLROnPlateau : LRScheduler
{
    private static readonly string[] Modes = { "min", "max" };
    private static readonly string[] ThresholdModes = { "rel", "abs" };

    private double _factor;
    private double? _defaultMinLr;
    private double[] _minLrs;
    private int _patience;
    private int _cooldown;
    private double _eps;
    private string _mode;
    private double _threshold;
    private string _thresholdMode;
    private double _modeWorse;

    /// <summary>Creates the scheduler (it changes nothing until stepped).</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="mode">"min": reduce when the metric stops decreasing; "max": when it stops increasing.</param>
    /// <param name="factor">The factor of a reduction, below 1.</param>
    /// <param name="patience">How many epochs without improvement are tolerated.</param>
    /// <param name="threshold">The threshold of a significant improvement.</param>
    /// <param name="threshold_mode">"rel" (relative to the best) or "abs".</param>
    /// <param name="cooldown">Epochs to wait after a reduction before counting bad epochs again.</param>
    /// <param name="min_lr">A lower bound on the learning rate: one for all groups (default 0) or one per group.</param>
    /// <param name="eps">Reductions smaller than this are skipped.</param>
    public ReduceLROnPlateau(
        TorchOptimizer optimizer, string mode = "min", double factor = 0.1, int patience = 10, double threshold = 1e-4,
        string threshold_mode = "rel", int cooldown = 0, PerGroup? min_lr = null, double eps = 1e-8)
        : base(optimizer)
    {
        if (!(factor < 1.0)) throw new ArgumentException("Factor should be < 1.0.", nameof(factor));
        _factor = Args.Finite(factor, nameof(factor));
        var groups = Groups;
        var minLr = min_lr ?? 0.0;
        _minLrs = minLr.Format("min_lr", groups).ToArray();
        _defaultMinLr = minLr.IsList ? null : minLr.ScalarValue;
        _patience = Args.NonNegative(patience, nameof(patience));
        _cooldown = Args.NonNegative(cooldown, nameof(cooldown));
        _eps = Args.Finite(eps, nameof(eps));
        last_epoch = 0;
        RecordLastLr(groups);
        if (!Modes.Contains(mode)) throw new ArgumentException("mode " + mode + " is unknown!", nameof(mode));
        if (!ThresholdModes.Contains(threshold_mode)) throw new ArgumentException("threshold mode " + threshold_mode + " is unknown!", nameof(threshold_mode));
        _mode = mode;
        _threshold = Args.Finite(threshold, nameof(threshold));
        _thresholdMode = threshold_mode;
        _modeWorse = mode == "min" ? double.PositiveInfinity : double.NegativeInfinity;
        Reset();
    }

    /// <summary>The best metric seen (the worst possible before the first step).</summary>
    public double best { get; private set; }

    /// <summary>Epochs since the last improvement (reset by a reduction and during cooldown).</summary>
    public int num_bad_epochs { get; private set; }

    /// <summary>Epochs of cooldown left.</summary>
    public int cooldown_counter { get; private set; }

    /// <summary>Whether the scheduler is in its cooldown after a reduction.</summary>
    public bool in_cooldown => cooldown_counter > 0;

    /// <summary>The lower bound of each group's learning rate.</summary>
    public IReadOnlyList<double> min_lrs => _minLrs;

    /// <summary>Records the metric of an epoch and reduces the learning rates if it has stopped improving.</summary>
    /// <param name="metrics">The metric (e.g. the validation loss).</param>
    public void step(double metrics) => Advance(metrics, null);

    /// <summary>As <see cref="step(double)"/>, setting <see cref="LRScheduler.last_epoch"/> (deprecated in PyTorch).</summary>
    /// <param name="metrics">The metric.</param>
    /// <param name="epoch">The epoch.</param>
    public void step(double metrics, int epoch) => Advance(metrics, epoch);

    /// <summary>Not supported: the scheduler needs the metric.</summary>
    /// <exception cref="InvalidOperationException">Always.</exception>
    public override void step() =>
        throw new InvalidOperationException("ReduceLROnPlateau.step() needs the metric: call step(metrics).");

    /// <summary>Not supported: the scheduler needs the metric.</summary>
    /// <param name="epoch">Ignored.</param>
    /// <exception cref="InvalidOperationException">Always.</exception>
    public override void step(int epoch) =>
        throw new InvalidOperationException("ReduceLROnPlateau.step(epoch) needs the metric: call step(metrics) (a double) or step(metrics, epoch).");

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr() =>
        throw new NotSupportedException("ReduceLROnPlateau has no learning-rate formula; step it with the metric.");

    private void Advance(double metrics, int? epoch)
    {
        var current = metrics;
        var e = epoch ?? last_epoch + 1;
        last_epoch = e;

        if (IsBetter(current, best))
        {
            best = current;
            num_bad_epochs = 0;
        }
        else
        {
            num_bad_epochs++;
        }

        if (in_cooldown)
        {
            cooldown_counter--;
            num_bad_epochs = 0;   // ignore any bad epochs in cooldown
        }

        if (num_bad_epochs > _patience)
        {
            ReduceLr();
            cooldown_counter = _cooldown;
            num_bad_epochs = 0;
        }

        RecordLastLr(Groups);
    }

    private void ReduceLr()
    {
        var groups = Groups;
        if (groups.Count != _minLrs.Length)
        {
            if (_defaultMinLr is not { } defaultMinLr)
                throw new InvalidOperationException(
                    $"The number of param groups in the `optimizer` ({groups.Count}) differs from when `ReduceLROnPlateau` was initialized ({_minLrs.Length}), usually due to a new param group being added to the optimizer. Please modify the `min_lrs` field to match the length of the `optimizer` param groups.");
            _minLrs = Enumerable.Repeat(defaultMinLr, groups.Count).ToArray();
        }

        for (var i = 0; i < groups.Count; i++)
        {
            var oldLr = groups[i].LearningRate;
            var newLr = Math.Max(oldLr * _factor, _minLrs[i]);
            if (oldLr - newLr > _eps) groups[i].LearningRate = newLr;
        }
    }

    private bool IsBetter(double a, double bestSoFar) => (_mode, _thresholdMode) switch
    {
        ("min", "rel") => a < bestSoFar * (1.0 - _threshold),
        ("min", _) => a < bestSoFar - _threshold,
        (_, "rel") => a > bestSoFar * (_threshold + 1.0),
        _ => a > bestSoFar + _threshold,
    };

    private void Reset()
    {
        best = _modeWorse;
        cooldown_counter = 0;
        num_bad_epochs = 0;
    }

    /// <inheritdoc />
    protected internal override IEnumerable<KeyValuePair<string, object?>> WriteState() => new KeyValuePair<string, object?>[]
    {
        new("factor", _factor),
        new("default_min_lr", _defaultMinLr),
        new("min_lrs", _minLrs),
        new("patience", (long)_patience),
        new("cooldown", (long)_cooldown),
        new("eps", _eps),
        new("last_epoch", (long)last_epoch),
        new("_last_lr", get_last_lr()),
        new("mode_worse", _modeWorse),
        new("mode", _mode),
        new("threshold", _threshold),
        new("threshold_mode", _thresholdMode),
        new("best", best),
        new("cooldown_counter", (long)cooldown_counter),
        new("num_bad_epochs", (long)num_bad_epochs),
    };

    /// <inheritdoc />
    protected internal override Action PrepareLoad(SchedulerStateDict state)
    {
        var reader = new StateReader(this, state);
        var factor = reader.Double("factor");
        if (!(factor < 1.0)) throw reader.Bad("factor", "Factor should be < 1.0");
        var defaultMinLr = reader.NullableDouble("default_min_lr");
        var minLrs = reader.PerGroup("min_lrs", Groups.Count);
        var patience = reader.Int("patience", min: 0);
        var cooldown = reader.Int("cooldown", min: 0);
        var eps = reader.Double("eps");
        var lastEpoch = reader.Int("last_epoch");
        var lastLr = reader.PerGroup("_last_lr", Groups.Count);
        var mode = reader.String("mode", Modes);
        var threshold = reader.Double("threshold");
        var thresholdMode = reader.String("threshold_mode", ThresholdModes);
        reader.Double("mode_worse", allowInfinity: true);   // derived from mode on load, as PyTorch's _init_is_better does
        var bestSoFar = reader.Double("best", allowInfinity: true);
        var cooldownCounter = reader.Int("cooldown_counter", min: 0);
        var numBadEpochs = reader.Int("num_bad_epochs", min: 0);
        reader.EnsureAllRead();
        return () =>
        {
            (_factor, _defaultMinLr, _minLrs, _patience, _cooldown, _eps) = (factor, defaultMinLr, minLrs.ToArray(), patience, cooldown, eps);
            last_epoch = lastEpoch;
            SetLastLr(lastLr);
            (_mode, _threshold, _thresholdMode) = (mode, threshold, thresholdMode);
            _modeWorse = mode == "min" ? double.PositiveInfinity : double.NegativeInfinity;
            (best, cooldown_counter, num_bad_epochs) = (bestSoFar, cooldownCounter, numBadEpochs);
        };
    }
}
