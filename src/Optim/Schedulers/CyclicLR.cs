using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>CyclicLR</c>: cycles each group's learning rate between <c>base_lr</c> and <c>max_lr</c>
/// ("triangular", "triangular2" or "exp_range", or a custom <c>scale_fn</c>), stepped after every batch. With
/// <c>cycle_momentum</c>, the momentum (or Adam-like optimizers' beta1) moves the opposite way, from
/// <c>max_momentum</c> at the bottom of a cycle to <c>base_momentum</c> at its peak.
/// </summary>
/// <remarks>
/// The state dict holds everything but a custom <c>scale_fn</c> (as PyTorch, which keeps plain functions out of it).
/// PyTorch stores <c>max_momentum</c> and <c>base_momentum</c> in the param groups as well; here they are the
/// scheduler's.
/// </remarks>
public sealed class CyclicLR : LRScheduler
{
    private static readonly string[] BuiltInModes = { "triangular", "triangular2", "exp_range" };

    private readonly Func<double, double>? _scaleFnCustom;
    private double[] _maxLrs;
    private double _totalSize;
    private double _stepRatio;
    private string _mode;
    private double _gamma;
    private string _scaleMode;
    private bool _cycleMomentum;
    private bool _useBeta1;
    private double[] _baseMomentums = Array.Empty<double>();
    private double[] _maxMomentums = Array.Empty<double>();

    /// <summary>Creates the scheduler; with <c>last_epoch = -1</c> it sets each group's rate to <c>base_lr</c> and momentum to <c>max_momentum</c>.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="base_lr">The lower learning rate of the cycle (one, or one per group).</param>
    /// <param name="max_lr">The upper learning rate of the cycle (one, or one per group).</param>
    /// <param name="step_size_up">Batches in the rising half of a cycle (positive).</param>
    /// <param name="step_size_down">Batches in the falling half; by default <paramref name="step_size_up"/>.</param>
    /// <param name="mode">"triangular", "triangular2" or "exp_range"; ignored with <paramref name="scale_fn"/>.</param>
    /// <param name="gamma">The constant of "exp_range": <c>gamma ** iteration</c>.</param>
    /// <param name="scale_fn">A custom scaling policy, 0 ≤ scale_fn(x) ≤ 1; overrides <paramref name="mode"/>.</param>
    /// <param name="scale_mode">"cycle" or "iterations": what <paramref name="scale_fn"/> is evaluated on.</param>
    /// <param name="cycle_momentum">Cycle the momentum (or beta1) inversely to the learning rate.</param>
    /// <param name="base_momentum">The momentum at the peak of a cycle (default 0.8).</param>
    /// <param name="max_momentum">The momentum at the bottom of a cycle (default 0.9).</param>
    /// <param name="last_epoch">The index of the last batch; -1 to start.</param>
    public CyclicLR(
        TorchOptimizer optimizer, PerGroup base_lr, PerGroup max_lr, int step_size_up = 2000, int? step_size_down = null,
        string mode = "triangular", double gamma = 1.0, Func<double, double>? scale_fn = null, string scale_mode = "cycle",
        bool cycle_momentum = true, PerGroup? base_momentum = null, PerGroup? max_momentum = null, int last_epoch = -1)
        : base(optimizer)
    {
        var groups = Groups;
        var baseLrs = base_lr.Format("base_lr", groups);
        var maxLrs = max_lr.Format("max_lr", groups);
        Args.Positive(step_size_up, nameof(step_size_up));
        if (step_size_down is { } down) Args.NonNegative(down, nameof(step_size_down));
        if (!BuiltInModes.Contains(mode) && scale_fn is null) throw new ArgumentException("mode is invalid and scale_fn is None", nameof(mode));
        if (scale_fn is not null && scale_mode is not ("cycle" or "iterations"))
            throw new ArgumentException($"scale_mode must be 'cycle' or 'iterations', instead got {scale_mode}", nameof(scale_mode));
        Args.Finite(gamma, nameof(gamma));
        var useBeta1 = false;
        IReadOnlyList<double> baseMomentums = Array.Empty<double>(), maxMomentums = Array.Empty<double>();
        if (cycle_momentum)
        {
            useBeta1 = Momentum.UseBeta1(groups, nameof(cycle_momentum));
            baseMomentums = (base_momentum ?? 0.8).Format("base_momentum", groups);
            maxMomentums = (max_momentum ?? 0.9).Format("max_momentum", groups);
        }

        if (last_epoch == -1)
            for (var i = 0; i < groups.Count; i++) groups[i].LearningRate = baseLrs[i];

        _maxLrs = maxLrs.ToArray();
        double up = step_size_up;
        double downSize = step_size_down ?? up;
        _totalSize = up + downSize;
        _stepRatio = up / _totalSize;
        _mode = mode;
        _gamma = gamma;
        _scaleFnCustom = scale_fn;
        _scaleMode = scale_mode;
        InitScaleFn();

        _cycleMomentum = cycle_momentum;
        if (cycle_momentum)
        {
            _useBeta1 = useBeta1;
            _baseMomentums = baseMomentums.ToArray();
            _maxMomentums = maxMomentums.ToArray();
            if (last_epoch == -1)
                for (var i = 0; i < groups.Count; i++) Momentum.Set(groups[i], _useBeta1, _maxMomentums[i]);
        }

        Initialize(last_epoch);
        base_lrs = baseLrs.ToArray();
    }

    /// <summary>The upper learning rates.</summary>
    public IReadOnlyList<double> max_lrs => _maxLrs;

    /// <summary>What the scaling policy is evaluated on: "cycle" or "iterations".</summary>
    public string scale_mode => _scaleMode;

    /// <summary>Whether beta1 (rather than momentum) is cycled.</summary>
    public bool use_beta1 => _useBeta1;

    /// <summary>The scaling policy at <paramref name="x"/> (a cycle number or an iteration).</summary>
    /// <param name="x">The argument.</param>
    public double scale_fn(double x)
    {
        if (_scaleFnCustom is not null) return _scaleFnCustom(x);
        return _mode switch
        {
            "triangular" => 1.0,
            "triangular2" => 1 / Math.Pow(2.0, x - 1),
            _ => Math.Pow(_gamma, x),
        };
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var cycle = Math.Floor(1 + last_epoch / _totalSize);
        var x = 1.0 + last_epoch / _totalSize - cycle;
        var scaleFactor = x <= _stepRatio ? x / _stepRatio : (x - 1) / (_stepRatio - 1);
        var scale = _scaleMode == "cycle" ? scale_fn(cycle) : scale_fn(last_epoch);

        var lrs = new double[Math.Min(base_lrs.Count, _maxLrs.Length)];
        for (var i = 0; i < lrs.Length; i++)
        {
            var baseHeight = (_maxLrs[i] - base_lrs[i]) * scaleFactor;
            lrs[i] = base_lrs[i] + baseHeight * scale;
        }

        if (_cycleMomentum)
        {
            var groups = Groups;
            for (var i = 0; i < Math.Min(groups.Count, _maxMomentums.Length); i++)
            {
                var baseHeight = (_maxMomentums[i] - _baseMomentums[i]) * scaleFactor;
                Momentum.Set(groups[i], _useBeta1, _maxMomentums[i] - baseHeight * scale);
            }
        }

        return lrs;
    }

    private void InitScaleFn()
    {
        if (_scaleFnCustom is not null) return;
        _scaleMode = _mode == "exp_range" ? "iterations" : "cycle";
    }

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState()
    {
        var entries = new List<KeyValuePair<string, object?>>
        {
            new("max_lrs", _maxLrs),
            new("total_size", _totalSize),
            new("step_ratio", _stepRatio),
            new("mode", _mode),
            new("gamma", _gamma),
            new("_scale_fn_custom", null),
            new("scale_mode", _scaleMode),
            new("cycle_momentum", _cycleMomentum),
        };
        if (_cycleMomentum)
        {
            entries.Add(new("use_beta1", _useBeta1));
            entries.Add(new("base_momentums", _baseMomentums));
            entries.Add(new("max_momentums", _maxMomentums));
        }

        return entries;
    }

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var groups = Groups;
        var maxLrs = reader.PerGroup("max_lrs", groups.Count);
        var totalSize = reader.Double("total_size");
        var stepRatio = reader.Double("step_ratio");
        if (!(totalSize > 0) || !(stepRatio > 0 && stepRatio <= 1)) throw reader.Bad("step_ratio", "total_size must be positive and step_ratio in (0, 1]");
        var mode = _scaleFnCustom is null ? reader.String("mode", BuiltInModes) : reader.String("mode");
        var gamma = reader.Double("gamma");
        reader.None("_scale_fn_custom");
        var scaleMode = reader.String("scale_mode", "cycle", "iterations");
        var cycleMomentum = reader.Bool("cycle_momentum");
        var useBeta1 = false;
        IReadOnlyList<double> baseMomentums = Array.Empty<double>(), maxMomentums = Array.Empty<double>();
        if (cycleMomentum)
        {
            useBeta1 = reader.Bool("use_beta1");
            if (!Momentum.Fits(groups, useBeta1)) throw reader.Bad("use_beta1", Momentum.Unsupported);
            baseMomentums = reader.PerGroup("base_momentums", groups.Count);
            maxMomentums = reader.PerGroup("max_momentums", groups.Count);
        }

        return () =>
        {
            (_maxLrs, _totalSize, _stepRatio, _mode, _gamma, _scaleMode) = (maxLrs.ToArray(), totalSize, stepRatio, mode, gamma, scaleMode);
            (_cycleMomentum, _useBeta1, _baseMomentums, _maxMomentums) = (cycleMomentum, useBeta1, baseMomentums.ToArray(), maxMomentums.ToArray());
            InitScaleFn();
        };
    }
}
