using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>ChainedScheduler</c>: steps every scheduler of a list, in order, on each <see cref="step()"/>, so
/// their chainable forms compound.
/// </summary>
/// <remarks>
/// As in PyTorch, it takes no initial step of its own, and has no <see cref="LRScheduler.base_lrs"/> (empty here) or
/// <see cref="LRScheduler.last_epoch"/> (-1 here). Its state dict holds <c>_last_lr</c> and its children's states
/// under <c>_schedulers</c>.
/// </remarks>
public sealed class ChainedScheduler : LRScheduler
{
    private readonly LRScheduler[] _schedulers;

    /// <summary>Chains <paramref name="schedulers"/> (PyTorch's argument order: the optimizer is optional and second).</summary>
    /// <param name="schedulers">The schedulers, all of the same optimizer; not <see cref="ReduceLROnPlateau"/>.</param>
    /// <param name="optimizer">The optimizer; by default the first scheduler's.</param>
    public ChainedScheduler(IReadOnlyList<LRScheduler> schedulers, TorchOptimizer? optimizer = null)
        : base(Check(schedulers, optimizer))
    {
        _schedulers = schedulers.ToArray();
        RecordLastLr(_schedulers[^1].optimizer.ParamGroups.ToList());
    }

    /// <summary>The chained schedulers.</summary>
    public IReadOnlyList<LRScheduler> schedulers => _schedulers;

    /// <summary>Steps every scheduler once, in order.</summary>
    public override void step()
    {
        foreach (var scheduler in _schedulers) scheduler.step();
        RecordLastLr(_schedulers[^1].optimizer.ParamGroups.ToList());
    }

    /// <summary>Not supported: PyTorch's <c>ChainedScheduler.step</c> takes no epoch.</summary>
    /// <param name="epoch">Ignored.</param>
    /// <exception cref="InvalidOperationException">Always.</exception>
    public override void step(int epoch) =>
        throw new InvalidOperationException("ChainedScheduler.step() takes no epoch; step the schedulers individually to set one.");

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr() =>
        throw new NotSupportedException("ChainedScheduler has no learning-rate formula of its own.");

    /// <inheritdoc />
    protected internal override IEnumerable<KeyValuePair<string, object?>> WriteState() => new KeyValuePair<string, object?>[]
    {
        new("_last_lr", get_last_lr()),
        new("_schedulers", _schedulers.Select(s => s.StateDict()).ToArray()),
    };

    /// <inheritdoc />
    protected internal override Action PrepareLoad(SchedulerStateDict state)
    {
        var reader = new StateReader(this, state);
        var lastLr = reader.PerGroup("_last_lr", Groups.Count);
        var children = Composite.PrepareChildren(reader, _schedulers);
        reader.EnsureAllRead();
        return () =>
        {
            children();
            SetLastLr(lastLr);
        };
    }

    private static TorchOptimizer Check(IReadOnlyList<LRScheduler> schedulers, TorchOptimizer? optimizer)
    {
        ArgumentNullException.ThrowIfNull(schedulers);
        if (schedulers.Count < 1)
            throw new ArgumentException("ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.", nameof(schedulers));
        optimizer ??= schedulers[0]?.optimizer;
        Composite.CheckChildren("ChainedScheduler", schedulers, optimizer!);
        return optimizer!;
    }
}

/// <summary>What <see cref="ChainedScheduler"/> and <see cref="SequentialLR"/> share.</summary>
internal static class Composite
{
    public static void CheckChildren(string name, IReadOnlyList<LRScheduler> schedulers, TorchOptimizer optimizer)
    {
        for (var i = 0; i < schedulers.Count; i++)
        {
            var scheduler = schedulers[i] ?? throw new ArgumentException($"{name} at index {i} should have `optimizer` as its attribute.", nameof(schedulers));
            if (scheduler is ReduceLROnPlateau)
                throw new ArgumentException(
                    $"{name} does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be specified when calling `step`, but got one at index {i} in the given schedulers sequence.",
                    nameof(schedulers));
            if (!ReferenceEquals(scheduler.optimizer, optimizer))
                throw new ArgumentException(
                    $"{name} expects all schedulers to belong to the same optimizer, but got scheduler {scheduler.GetType().Name} at index {i} has {scheduler.optimizer.GetType().Name}, which is different from {optimizer.GetType().Name}.",
                    nameof(schedulers));
        }
    }

    /// <summary>Checks the nested states of <c>_schedulers</c> against the children; returns the action loading them all.</summary>
    public static Action PrepareChildren(StateReader reader, IReadOnlyList<LRScheduler> children)
    {
        var states = reader.StateDicts("_schedulers");
        if (states.Count != children.Count)
            throw reader.Bad("_schedulers", $"it holds {states.Count} schedulers, this one has {children.Count}");
        var actions = new Action[children.Count];
        for (var i = 0; i < children.Count; i++)
        {
            try
            {
                actions[i] = children[i].PrepareLoad(states[i]);
            }
            catch (ArgumentException e)
            {
                throw reader.Bad("_schedulers", $"scheduler {i}: {e.Message.Split(" (Parameter", 2)[0]}");
            }
        }

        return () =>
        {
            foreach (var action in actions) action();
        };
    }
}
