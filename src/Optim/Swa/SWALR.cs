using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Schedulers;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Swa;

/// <summary>
/// PyTorch's <c>torch.optim.swa_utils.SWALR</c>: anneals each group's learning rate to a fixed <c>swa_lr</c> over
/// <c>anneal_epochs</c> epochs ("cos" or "linear"), then holds it; meant for the averaging phase of SWA.
/// </summary>
/// <remarks>
/// The position in the annealing is the step count (PyTorch's <c>_step_count</c>), which the state dict keeps.
/// PyTorch stores <c>swa_lr</c> in the param groups; here it is the scheduler's (<c>swa_lrs</c> in the state dict).
/// </remarks>
public sealed class SWALR : LRScheduler
{
    private double[] _swaLrs;
    private int _annealEpochs;
    private string _annealStrategy;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="swa_lr">The learning rate to anneal to (one, or one per group).</param>
    /// <param name="anneal_epochs">The number of epochs of the annealing (≥ 0).</param>
    /// <param name="anneal_strategy">"cos" or "linear".</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public SWALR(TorchOptimizer optimizer, PerGroup swa_lr, int anneal_epochs = 10, string anneal_strategy = "cos", int last_epoch = -1)
        : base(optimizer)
    {
        _swaLrs = swa_lr.Format("swa_lr", Groups).ToArray();
        if (anneal_strategy is not ("cos" or "linear"))
            throw new ArgumentException($"anneal_strategy must by one of 'cos' or 'linear', instead got {anneal_strategy}", nameof(anneal_strategy));
        _annealStrategy = anneal_strategy;
        if (anneal_epochs < 0) throw new ArgumentException($"anneal_epochs must be equal or greater than 0, got {anneal_epochs}", nameof(anneal_epochs));
        _annealEpochs = anneal_epochs;
        Initialize(last_epoch);
    }

    /// <summary>The learning rates annealed to.</summary>
    public IReadOnlyList<double> swa_lrs => _swaLrs;

    /// <summary>The number of epochs of the annealing.</summary>
    public int anneal_epochs => _annealEpochs;

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr()
    {
        var step = StepCount - 1;
        if (_annealEpochs == 0) step = Math.Max(1, step);
        var prevT = Math.Max(0, Math.Min(1, (double)(step - 1) / Math.Max(1, _annealEpochs)));
        var prevAlpha = Anneal(prevT);
        var groups = Groups;
        var count = Math.Min(groups.Count, _swaLrs.Length);
        var prevLrs = new double[count];
        for (var i = 0; i < count; i++) prevLrs[i] = InitialLr(groups[i].LearningRate, _swaLrs[i], prevAlpha);
        var t = Math.Max(0, Math.Min(1, (double)step / Math.Max(1, _annealEpochs)));
        var alpha = Anneal(t);
        var lrs = new double[count];
        for (var i = 0; i < count; i++) lrs[i] = _swaLrs[i] * alpha + prevLrs[i] * (1 - alpha);
        return lrs;
    }

    private double Anneal(double t) => _annealStrategy == "cos" ? (1 - Math.Cos(Math.PI * t)) / 2 : t;

    private static double InitialLr(double lr, double swaLr, double alpha) =>
        alpha == 1 ? swaLr : (lr - alpha * swaLr) / (1 - alpha);

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("swa_lrs", _swaLrs),
        new("anneal_epochs", (long)_annealEpochs),
        new("_anneal_strategy", _annealStrategy),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var swaLrs = reader.PerGroup("swa_lrs", Groups.Count);
        var annealEpochs = reader.Int("anneal_epochs", min: 0);
        var strategy = reader.String("_anneal_strategy", "cos", "linear");
        return () => (_swaLrs, _annealEpochs, _annealStrategy) = (swaLrs.ToArray(), annealEpochs, strategy);
    }
}
