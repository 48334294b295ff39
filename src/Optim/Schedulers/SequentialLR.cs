using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>SequentialLR</c>: runs one scheduler after another, switching at the milestone epochs. At a milestone
/// the next scheduler restarts from epoch 0 with its closed form (PyTorch's <c>_update_lr(0)</c>); in between, it is
/// stepped normally.
/// </summary>
/// <remarks>
/// Construction resets every group's learning rate to its <c>initial_lr</c>, undoes the initial step of every child
/// (their <see cref="LRScheduler.last_epoch"/> goes back by one, recursively through nested composites) and takes the
/// first child's initial step again. As in PyTorch, it has no <see cref="LRScheduler.base_lrs"/> of its own.
/// A <see cref="ChainedScheduler"/> or <see cref="SequentialLR"/> can only come first: restarting one at a milestone
/// fails in PyTorch, so it is refused here at construction.
/// </remarks>
public sealed class SequentialLR : LRScheduler
{
    private readonly LRScheduler[] _schedulers;
    private int[] _milestones;

    /// <summary>Creates the sequence and takes the first scheduler's initial step.</summary>
    /// <param name="optimizer">The optimizer of every scheduler.</param>
    /// <param name="schedulers">The schedulers, in the order they run.</param>
    /// <param name="milestones">The epochs at which the next scheduler takes over (one fewer than the schedulers; non-decreasing).</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public SequentialLR(TorchOptimizer optimizer, IReadOnlyList<LRScheduler> schedulers, IReadOnlyList<int> milestones, int last_epoch = -1)
        : base(optimizer)
    {
        ArgumentNullException.ThrowIfNull(schedulers);
        ArgumentNullException.ThrowIfNull(milestones);
        if (schedulers.Count < 1)
            throw new ArgumentException("SequentialLR expects at least one scheduler, but got no scheduler.", nameof(schedulers));
        Composite.CheckChildren("SequentialLR", schedulers, optimizer);
        if (milestones.Count != schedulers.Count - 1)
            throw new ArgumentException(
                $"Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, but got number of schedulers {schedulers.Count} and the number of milestones to be equal to {milestones.Count}",
                nameof(milestones));
        for (var i = 1; i < milestones.Count; i++)
            if (milestones[i] < milestones[i - 1])
                throw new ArgumentException($"SequentialLR expects non-decreasing milestones, but got {string.Join(", ", milestones)}", nameof(milestones));
        for (var i = 1; i < schedulers.Count; i++)
            if (schedulers[i] is ChainedScheduler or SequentialLR)
                throw new ArgumentException(
                    $"SequentialLR cannot restart the {schedulers[i].GetType().Name} at index {i} at its milestone (it has no learning-rate formula of its own); only the first scheduler may be composite.",
                    nameof(schedulers));
        if (last_epoch < -1) throw new ArgumentException($"Expected last_epoch >= -1, but got {last_epoch}", nameof(last_epoch));

        _schedulers = schedulers.ToArray();
        _milestones = milestones.ToArray();
        this.last_epoch = last_epoch + 1;

        foreach (var group in Groups) group.LearningRate = group.InitialLearningRate;
        Undo(_schedulers);
        _schedulers[0].InitialStep();
        SetLastLr(_schedulers[0].get_last_lr());
    }

    /// <summary>The schedulers, in order.</summary>
    public IReadOnlyList<LRScheduler> schedulers => _schedulers;

    /// <summary>The milestones.</summary>
    public IReadOnlyList<int> milestones => _milestones;

    /// <summary>Advances by one epoch: restarts the next scheduler at a milestone, else steps the current one.</summary>
    public override void step()
    {
        last_epoch++;
        var idx = BisectRight(_milestones, last_epoch);
        var scheduler = _schedulers[idx];
        if (idx > 0 && _milestones[idx - 1] == last_epoch) scheduler.UpdateLr(0);
        else scheduler.step();
        SetLastLr(scheduler.get_last_lr());
    }

    /// <summary>Not supported: PyTorch's <c>SequentialLR.step</c> takes no epoch.</summary>
    /// <param name="epoch">Ignored.</param>
    /// <exception cref="InvalidOperationException">Always.</exception>
    public override void step(int epoch) =>
        throw new InvalidOperationException("SequentialLR.step() takes no epoch.");

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr() =>
        throw new NotSupportedException("SequentialLR has no learning-rate formula of its own.");

    /// <inheritdoc />
    protected internal override IEnumerable<KeyValuePair<string, object?>> WriteState() => new KeyValuePair<string, object?>[]
    {
        new("_milestones", _milestones),
        new("last_epoch", (long)last_epoch),
        new("_last_lr", get_last_lr()),
        new("_schedulers", _schedulers.Select(s => s.StateDict()).ToArray()),
    };

    /// <inheritdoc />
    protected internal override Action PrepareLoad(SchedulerStateDict state)
    {
        var reader = new StateReader(this, state);
        var milestones = reader.Int64s("_milestones");
        if (milestones.Count != _schedulers.Length - 1)
            throw reader.Bad("_milestones", $"it holds {milestones.Count} milestones, this sequence has {_schedulers.Length} schedulers");
        if (milestones.Any(m => m is < int.MinValue or > int.MaxValue) || milestones.Zip(milestones.Skip(1)).Any(p => p.Second < p.First))
            throw reader.Bad("_milestones", "they must be non-decreasing 32-bit integers");
        var lastEpoch = reader.Int("last_epoch", min: 0);
        var lastLr = reader.PerGroup("_last_lr", Groups.Count);
        var children = Composite.PrepareChildren(reader, _schedulers);
        reader.EnsureAllRead();
        return () =>
        {
            children();
            _milestones = milestones.Select(m => (int)m).ToArray();
            last_epoch = lastEpoch;
            SetLastLr(lastLr);
        };
    }

    // PyTorch's recursive_undo: composites recurse, the others go back one epoch.
    private static void Undo(IEnumerable<LRScheduler> schedulers)
    {
        foreach (var scheduler in schedulers)
        {
            switch (scheduler)
            {
                case ChainedScheduler chained: Undo(chained.schedulers); break;
                case SequentialLR sequential: Undo(sequential.schedulers); break;
                default: scheduler.last_epoch--; break;
            }
        }
    }

    private static int BisectRight(IReadOnlyList<int> sorted, int value)
    {
        var index = 0;
        while (index < sorted.Count && sorted[index] <= value) index++;
        return index;
    }
}
