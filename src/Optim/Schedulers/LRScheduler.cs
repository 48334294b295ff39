using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using static TorchSharp.torch.optim;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// The base of the learning-rate schedulers: PyTorch 2.x's <c>torch.optim.lr_scheduler.LRScheduler</c>. It drives any
/// TorchSharp <see cref="TorchOptimizer"/> (Optim's and TorchSharp's own) through its
/// <see cref="TorchOptimizer.ParamGroups"/>: <see cref="ILearningRateController.LearningRate"/> is PyTorch's
/// <c>group["lr"]</c> and <see cref="ILearningRateController.InitialLearningRate"/> its <c>group["initial_lr"]</c>.
/// </summary>
/// <remarks>
/// <para>
/// Construction takes the initial step, as PyTorch's does: with <c>last_epoch = -1</c> each group's
/// <c>initial_lr</c> is set to its current learning rate by the first of these schedulers to see the group (PyTorch's
/// <c>group.setdefault</c>; later schedulers on the same group keep it), <see cref="base_lrs"/> are read from it,
/// and <c>step()</c> runs once, so <see cref="last_epoch"/> is 0 afterwards. With <c>last_epoch ≥ 0</c> (resuming),
/// the groups' <c>initial_lr</c> are used as they are.
/// </para>
/// <para>
/// <see cref="step()"/> uses the chainable form (<see cref="get_lr"/>, which starts from the groups' current learning
/// rates); <see cref="step(int)"/> (deprecated in PyTorch) jumps to an epoch with the closed form where the scheduler
/// has one. Scalar arithmetic is double precision in Python's order of operations, so the values are PyTorch's.
/// </para>
/// <para>
/// <see cref="StateDict"/> and <see cref="LoadStateDict"/> save and restore the scheduler (not the optimizer: save
/// and load its state too). A load checks every entry before changing anything.
/// </para>
/// </remarks>
public abstract class LRScheduler
{
    // Groups whose initial_lr one of our schedulers has already set (PyTorch: "initial_lr" in group).
    private static readonly ConditionalWeakTable<object, object> InitialLrSet = new();

    private IReadOnlyList<double> _lastLr = Array.Empty<double>();

    /// <summary>Attaches the scheduler to <paramref name="optimizer"/>; a derived constructor ends with <see cref="Initialize"/>.</summary>
    /// <param name="optimizer">The optimizer whose groups are scheduled.</param>
    protected LRScheduler(TorchOptimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        this.optimizer = optimizer;
    }

    /// <summary>The optimizer whose parameter groups this scheduler drives.</summary>
    public TorchOptimizer optimizer { get; }

    /// <summary>The base learning rate of each group (the groups' <c>initial_lr</c> when the scheduler was built).</summary>
    public IReadOnlyList<double> base_lrs { get; protected set; } = Array.Empty<double>();

    /// <summary>The index of the last epoch (or batch) stepped: -1 before the initial step, 0 after it.</summary>
    public int last_epoch { get; protected internal set; } = -1;

    /// <summary>How often <c>step</c> ran (PyTorch's <c>_step_count</c>; the initial step counts).</summary>
    protected internal int StepCount { get; set; }

    /// <summary>True during the initial step taken by the constructor (PyTorch's <c>_is_initial</c>).</summary>
    protected bool IsInitial { get; private set; }

    /// <summary>The learning rates the last step set, one per group.</summary>
    public IReadOnlyList<double> get_last_lr() => _lastLr;

    /// <summary>The optimizer's groups, in order.</summary>
    protected IReadOnlyList<ILearningRateController> Groups => optimizer.ParamGroups.ToList();

    /// <summary>
    /// The end of PyTorch's <c>LRScheduler.__init__</c>: sets (or requires) <c>initial_lr</c>, reads
    /// <see cref="base_lrs"/>, sets <see cref="last_epoch"/> and takes the initial step. Called last by constructors.
    /// </summary>
    /// <param name="last_epoch">-1 to start, or the index of the last epoch when resuming.</param>
    protected void Initialize(int last_epoch)
    {
        if (last_epoch < -1)
            throw new ArgumentException($"Expected last_epoch >= -1, but got {last_epoch}", nameof(last_epoch));
        var groups = Groups;
        if (last_epoch == -1) SetDefaultInitialLr(groups);
        base_lrs = groups.Select(g => g.InitialLearningRate).ToArray();
        this.last_epoch = last_epoch;
        InitialStep();
    }

    /// <summary>PyTorch's <c>group.setdefault("initial_lr", group["lr"])</c> for every group.</summary>
    /// <param name="groups">The optimizer's groups.</param>
    protected static void SetDefaultInitialLr(IReadOnlyList<ILearningRateController> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        foreach (var group in groups)
        {
            if (InitialLrSet.TryGetValue(group, out _)) continue;
            group.InitialLearningRate = group.LearningRate;
            InitialLrSet.AddOrUpdate(group, group);
        }
    }

    /// <summary>Records that <paramref name="group"/>'s <c>initial_lr</c> was set explicitly (OneCycleLR).</summary>
    /// <param name="group">The group.</param>
    /// <param name="initialLr">Its new <c>initial_lr</c>.</param>
    protected static void SetInitialLr(ILearningRateController group, double initialLr)
    {
        ArgumentNullException.ThrowIfNull(group);
        group.InitialLearningRate = initialLr;
        InitialLrSet.AddOrUpdate(group, group);
    }

    /// <summary>PyTorch's <c>_initial_step</c>: resets the step count and steps once with <see cref="IsInitial"/> set.</summary>
    protected internal virtual void InitialStep()
    {
        StepCount = 0;
        IsInitial = true;
        try
        {
            step();
        }
        finally
        {
            IsInitial = false;
        }
    }

    /// <summary>Advances the schedule by one epoch (or batch) with the chainable form, and sets the groups' learning rates.</summary>
    public virtual void step()
    {
        StepCount++;
        UpdateLr(null);
    }

    /// <summary>
    /// Jumps to <paramref name="epoch"/> with the closed form where the scheduler has one (else the chainable form at
    /// that epoch). PyTorch deprecates passing an epoch; it is kept for the schedules that need it.
    /// </summary>
    /// <param name="epoch">The epoch to set.</param>
    public virtual void step(int epoch)
    {
        StepCount++;
        UpdateLr(epoch);
    }

    /// <summary>PyTorch's <c>_update_lr</c>: advances (or sets) <see cref="last_epoch"/>, computes and applies the rates.</summary>
    /// <param name="epoch">Null to advance by one with <see cref="get_lr"/>, or the epoch to jump to.</param>
    protected internal virtual void UpdateLr(int? epoch)
    {
        IReadOnlyList<double> values;
        if (epoch is null)
        {
            last_epoch++;
            values = get_lr();
        }
        else
        {
            last_epoch = epoch.Value;
            values = get_closed_form_lr() ?? get_lr();
        }

        ApplyLearningRates(values);
    }

    /// <summary>Sets each group's learning rate and records <see cref="get_last_lr"/> from the groups.</summary>
    /// <param name="values">One learning rate per group (extra values or groups are ignored, as Python's <c>zip</c>).</param>
    protected void ApplyLearningRates(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var groups = Groups;
        for (var i = 0; i < Math.Min(groups.Count, values.Count); i++) groups[i].LearningRate = values[i];
        RecordLastLr(groups);
    }

    /// <summary>Sets <see cref="get_last_lr"/> to the groups' current learning rates.</summary>
    /// <param name="groups">The optimizer's groups.</param>
    protected void RecordLastLr(IReadOnlyList<ILearningRateController> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        _lastLr = groups.Select(g => g.LearningRate).ToArray();
    }

    /// <summary>Sets <see cref="get_last_lr"/> directly (composite schedulers copy their children's).</summary>
    /// <param name="lastLr">The rates.</param>
    protected void SetLastLr(IReadOnlyList<double> lastLr) => _lastLr = lastLr.ToArray();

    /// <summary>The chainable form: the learning rates of epoch <see cref="last_epoch"/>, one per group.</summary>
    protected abstract IReadOnlyList<double> get_lr();

    /// <summary>The closed form at <see cref="last_epoch"/>, or null where the scheduler has none.</summary>
    protected virtual IReadOnlyList<double>? get_closed_form_lr() => null;

    /// <summary>The scheduler's state (see <see cref="SchedulerStateDict"/>): PyTorch's attribute names and values.</summary>
    public SchedulerStateDict StateDict() => new(GetType().Name, WriteState());

    /// <summary>
    /// Restores a state from <see cref="StateDict"/> of a scheduler of the same class (and, for composite schedulers,
    /// the same children). Every entry is checked first; a failed load changes nothing. The optimizer is not touched:
    /// load its state as well.
    /// </summary>
    /// <param name="state_dict">The state.</param>
    /// <exception cref="ArgumentException">The state does not fit this scheduler; nothing was changed.</exception>
    public void LoadStateDict(SchedulerStateDict state_dict)
    {
        ArgumentNullException.ThrowIfNull(state_dict);
        var apply = PrepareLoad(state_dict);
        apply();
    }

    /// <summary>The entries of <see cref="StateDict"/>: the scheduler's own, then the base's.</summary>
    protected internal virtual IEnumerable<KeyValuePair<string, object?>> WriteState() =>
        WriteOwnState().Concat(new KeyValuePair<string, object?>[]
        {
            new("base_lrs", base_lrs),
            new("last_epoch", (long)last_epoch),
            new("_step_count", (long)StepCount),
            new("_last_lr", get_last_lr()),
        });

    /// <summary>The scheduler's own entries (hyperparameters and counters), in PyTorch's names.</summary>
    protected virtual IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => Array.Empty<KeyValuePair<string, object?>>();

    /// <summary>
    /// Checks <paramref name="state"/> completely and returns the action that applies it (which cannot fail), so a
    /// composite scheduler can check all its children before changing any.
    /// </summary>
    /// <param name="state">The state to load.</param>
    protected internal virtual Action PrepareLoad(SchedulerStateDict state)
    {
        var reader = new StateReader(this, state);
        var groupCount = Groups.Count;
        var baseLrs = reader.PerGroup("base_lrs", groupCount);
        var lastEpoch = reader.Int("last_epoch", min: -1);
        var stepCount = reader.Int("_step_count", min: 0);
        var lastLr = reader.PerGroup("_last_lr", groupCount);
        var own = PrepareOwnState(reader);
        reader.EnsureAllRead();
        return () =>
        {
            base_lrs = baseLrs.ToArray();
            last_epoch = lastEpoch;
            StepCount = stepCount;
            _lastLr = lastLr.ToArray();
            own();
        };
    }

    /// <summary>Reads and checks the scheduler's own entries; returns the action that applies them.</summary>
    /// <param name="reader">The state being loaded.</param>
    protected virtual Action PrepareOwnState(StateReader reader) => () => { };

    /// <summary>Python's <c>a // b</c> on integers (rounds toward negative infinity).</summary>
    internal static long FloorDiv(long a, long b)
    {
        var q = a / b;
        return (a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q;
    }

    /// <summary>Python's <c>a % b</c> on integers (the sign of <paramref name="b"/>).</summary>
    internal static long FloorMod(long a, long b)
    {
        var r = a % b;
        return r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
    }
}

/// <summary>
/// Reads a <see cref="SchedulerStateDict"/> being loaded: each accessor checks the entry's type and range and names
/// the scheduler and key in its error; <see cref="EnsureAllRead"/> rejects entries the scheduler does not know.
/// </summary>
public sealed class StateReader
{
    // LoadStateDict's argument, named in every error (a field, not a literal: the errors are raised away from it).
    private static readonly string StateDictParam = "state_dict";
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    internal StateReader(LRScheduler scheduler, SchedulerStateDict state)
    {
        var expected = scheduler.GetType().Name;
        if (state.Scheduler != expected)
            throw new ArgumentException($"A {state.Scheduler} state dict cannot be loaded into a {expected}.", StateDictParam);
        State = state;
    }

    /// <summary>The dict being read.</summary>
    public SchedulerStateDict State { get; }

    /// <summary>An integer entry within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    /// <param name="key">The entry.</param>
    /// <param name="min">The smallest value allowed.</param>
    /// <param name="max">The largest value allowed.</param>
    public int Int(string key, int min = int.MinValue, int max = int.MaxValue)
    {
        var value = Wrap(key, () => State.GetInt32(key));
        return value >= min && value <= max ? value : throw Bad(key, $"{value} is out of range [{min}, {max}]");
    }

    /// <summary>A finite double (or, with <paramref name="allowInfinity"/>, any non-NaN double).</summary>
    /// <param name="key">The entry.</param>
    /// <param name="allowInfinity">Accept ±infinity.</param>
    public double Double(string key, bool allowInfinity = false)
    {
        var value = Wrap(key, () => State.GetDouble(key));
        if (double.IsNaN(value) || (!allowInfinity && double.IsInfinity(value))) throw Bad(key, $"{value} is not finite");
        return value;
    }

    /// <summary>A finite double or null.</summary>
    /// <param name="key">The entry.</param>
    public double? NullableDouble(string key) => Wrap(key, () => State.GetNullableDouble(key)) is { } v ? Double(key) : null;

    /// <summary>An entry that must be present and None (a function PyTorch leaves out of the state).</summary>
    /// <param name="key">The entry.</param>
    public void None(string key)
    {
        var value = Wrap(key, () => State[key]);
        if (value is not null) throw Bad(key, "functions are not part of a state dict; it must be None");
    }

    /// <summary>A boolean entry.</summary>
    /// <param name="key">The entry.</param>
    public bool Bool(string key) => Wrap(key, () => State.GetBoolean(key));

    /// <summary>A string entry that must be one of <paramref name="allowed"/>.</summary>
    /// <param name="key">The entry.</param>
    /// <param name="allowed">The accepted values.</param>
    public string String(string key, params string[] allowed)
    {
        var value = Wrap(key, () => State.GetString(key));
        return allowed.Length == 0 || allowed.Contains(value)
            ? value
            : throw Bad(key, $"'{value}' is not one of {string.Join(", ", allowed.Select(a => $"'{a}'"))}");
    }

    /// <summary>A list of finite doubles, one per parameter group.</summary>
    /// <param name="key">The entry.</param>
    /// <param name="groups">The number of groups.</param>
    public IReadOnlyList<double> PerGroup(string key, int groups)
    {
        var values = Wrap(key, () => State.GetDoubles(key));
        if (values.Count != groups) throw Bad(key, $"it has {values.Count} values, the optimizer has {groups} param groups");
        if (values.Any(v => !double.IsFinite(v))) throw Bad(key, "a value is not finite");
        return values;
    }

    /// <summary>A list of finite doubles of any length.</summary>
    /// <param name="key">The entry.</param>
    public IReadOnlyList<double> Doubles(string key)
    {
        var values = Wrap(key, () => State.GetDoubles(key));
        if (values.Any(v => !double.IsFinite(v))) throw Bad(key, "a value is not finite");
        return values;
    }

    /// <summary>A 64-bit integer entry within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    /// <param name="key">The entry.</param>
    /// <param name="min">The smallest value allowed.</param>
    /// <param name="max">The largest value allowed.</param>
    public long Int64(string key, long min = long.MinValue, long max = long.MaxValue)
    {
        var value = Wrap(key, () => State.GetInt64(key));
        return value >= min && value <= max ? value : throw Bad(key, $"{value} is out of range [{min}, {max}]");
    }

    /// <summary>A list of integers.</summary>
    /// <param name="key">The entry.</param>
    public IReadOnlyList<long> Int64s(string key) => Wrap(key, () => State.GetInt64s(key));

    /// <summary>A list of nested state dicts.</summary>
    /// <param name="key">The entry.</param>
    public IReadOnlyList<SchedulerStateDict> StateDicts(string key) => Wrap(key, () => State.GetStateDicts(key));

    /// <summary>An error about <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    /// <param name="problem">What is wrong with it.</param>
    public ArgumentException Bad(string key, string problem) =>
        new($"Cannot load the {State.Scheduler} state dict: '{key}': {problem}.", StateDictParam);

    /// <summary>Throws if the dict holds an entry no accessor read.</summary>
    public void EnsureAllRead()
    {
        var unknown = State.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"Cannot load the {State.Scheduler} state dict: unexpected entries {string.Join(", ", unknown.Select(k => $"'{k}'"))}.", StateDictParam);
    }

    private T Wrap<T>(string key, Func<T> read)
    {
        _read.Add(key);
        try
        {
            return read();
        }
        catch (KeyNotFoundException e)
        {
            throw new ArgumentException($"Cannot load the state dict: {e.Message}", StateDictParam, e);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Cannot load the state dict: {e.Message.Split(" (Parameter", 2)[0]}", StateDictParam, e);
        }
    }
}
