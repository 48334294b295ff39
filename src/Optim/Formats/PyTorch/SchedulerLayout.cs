using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Amp;
using Optim.Schedulers;

namespace Optim.Formats.PyTorch;

/// <summary>
/// Maps <see cref="SchedulerStateDict"/> and <see cref="GradScalerState"/> to PyTorch's <c>scheduler.state_dict()</c>
/// and <c>scaler.state_dict()</c> and back. Scheduler state dicts already use PyTorch's attribute names; what differs is
/// that PyTorch's hold bookkeeping of its own (<c>verbose</c>, <c>_get_lr_called_within_step</c>, <c>_is_initial</c>,
/// <c>lr_lambdas</c>), keep MultiStepLR's milestones in a <c>Counter</c>, and lack a few entries that Optim's
/// schedulers keep where PyTorch keeps them in the param groups (OneCycleLR's rates, for example).
/// </summary>
internal static class SchedulerLayout
{
    // PyTorch's attributes that carry nothing a resumed scheduler needs (lr_lambdas: functions' __dict__s, or None).
    private static readonly HashSet<string> PyTorchOnly = ["verbose", "_get_lr_called_within_step", "_is_initial", "lr_lambdas"];

    /// <summary>PyTorch's state dict of a scheduler whose Optim state dict is <paramref name="state"/>.</summary>
    public static PyDict ToPyTorch(SchedulerStateDict state)
    {
        var py = new PyDict();
        foreach (var (key, value) in state)
        {
            py.Set(key, value switch
            {
                IReadOnlyList<SchedulerStateDict> children => children.Select(c => (object?)ToPyTorch(c)).ToList(),
                IReadOnlyList<long> milestones when key == "milestones" && state.Scheduler == nameof(MultiStepLR) => Counter(milestones),
                IReadOnlyList<double> list => list.Select(v => (object?)v).ToList(),
                IReadOnlyList<long> list => list.Select(v => (object?)v).ToList(),
                _ => value,
            });
        }
        return py;
    }

    private static PyDict Counter(IReadOnlyList<long> milestones)
    {
        var counter = new PyDict(PyDictKind.Counter);
        foreach (var group in milestones.GroupBy(m => m)) counter.Set(group.Key, (long)group.Count());
        return counter;
    }

    /// <summary>
    /// The state dict for the scheduler whose state is <paramref name="current"/> that PyTorch's <paramref name="root"/> holds: its entries converted
    /// to the types the scheduler's own state dict has, PyTorch's bookkeeping dropped, and entries PyTorch does not keep
    /// taken from the scheduler as it is. The scheduler's <c>LoadStateDict</c> checks the result.
    /// </summary>
    /// <exception cref="ArgumentException">Not a scheduler state dict, or an entry of an unexpected type.</exception>
    public static SchedulerStateDict FromPyTorch(object? root, SchedulerStateDict current, string where)
    {
        if (root is not PyDict py || py.Entries.Any(e => e.Key is not string))
            throw Invalid($"{where} is a {PyValues.TypeName(root)}, not a scheduler's state_dict().");
        var entries = new List<KeyValuePair<string, object?>>();
        foreach (var (key, value) in current)
        {
            if (!py.TryGetValue(key, out var saved))
            {
                entries.Add(new(key, value));
                continue;
            }
            entries.Add(new(key, Convert(saved, value, $"{where}['{key}']")));
        }
        foreach (var key in py.StringKeys)
        {
            if (!current.ContainsKey(key) && !PyTorchOnly.Contains(key))
                entries.Add(new(key, Convert(py.TryGetValue(key, out var v) ? v : null, null, $"{where}['{key}']")));
        }
        try
        {
            return new SchedulerStateDict(current.Scheduler, entries);
        }
        catch (ArgumentException e)
        {
            throw Invalid($"{where}: {e.Message}");
        }
    }

    private static object? Convert(object? saved, object? like, string where)
    {
        switch (like)
        {
            case IReadOnlyList<SchedulerStateDict> children:
                var list = PyValues.Sequence(saved) ?? throw Invalid($"{where} is a {PyValues.TypeName(saved)}, not a list of state dicts.");
                if (list.Count != children.Count) throw Invalid($"{where} has {list.Count} schedulers, this one {children.Count}.");
                return list.Select((child, i) => FromPyTorch(child, children[i], $"{where}[{i}]")).ToList();
            case IReadOnlyList<long> when saved is PyDict { Kind: PyDictKind.Counter } counter:
                return counter.Entries.SelectMany(e => Enumerable.Repeat(e.Key is long k ? k : throw Invalid($"{where} counts a {PyValues.TypeName(e.Key)}."),
                    (int)Math.Clamp((long)e.Value!, 0, 1 << 20))).Order().ToList();
            case IReadOnlyList<long>:
                return PyValues.Sequence(saved)?.Select(v => v as long? ?? throw Invalid($"{where} holds a {PyValues.TypeName(v)}, not an int.")).ToList()
                    ?? throw Invalid($"{where} is a {PyValues.TypeName(saved)}, not a list of ints.");
            case IReadOnlyList<double>:
                return PyValues.Sequence(saved)?.Select(v => PyValues.TryDouble(v, out var d) ? d : throw Invalid($"{where} holds a {PyValues.TypeName(v)}, not a number.")).ToList()
                    ?? throw Invalid($"{where} is a {PyValues.TypeName(saved)}, not a list of numbers.");
            case double when PyValues.TryDouble(saved, out var number):
                return number;
        }
        return saved switch
        {
            null or bool or long or double or string => saved,
            _ when PyValues.Sequence(saved) is { } items && items.All(i => i is long) => items.Cast<long>().ToList(),
            _ when PyValues.Sequence(saved) is { } items && items.All(i => PyValues.TryDouble(i, out _)) =>
                items.Select(i => PyValues.TryDouble(i, out var d) ? d : 0).ToList(),
            _ => throw Invalid($"{where} is a {PyValues.TypeName(saved)}, which a scheduler state dict does not hold."),
        };
    }

    /// <summary>PyTorch's <c>GradScaler.state_dict()</c>: the five entries, or empty for a disabled scaler.</summary>
    public static PyDict ScalerToPyTorch(GradScalerState? state)
    {
        var py = new PyDict();
        if (state is null) return py;
        foreach (var (key, value) in state.ToDictionary()) py.Set(key, value is int i ? (long)i : value);
        return py;
    }

    /// <summary>The scaler state PyTorch's <c>GradScaler.state_dict()</c> holds; null for a disabled scaler's empty dict.</summary>
    public static GradScalerState? ScalerFromPyTorch(object? root, string where)
    {
        if (root is not PyDict py) throw Invalid($"{where} is a {PyValues.TypeName(root)}, not a GradScaler's state_dict().");
        if (py.Count == 0) return null;
        var values = new Dictionary<string, object>();
        foreach (var (key, value) in py.Entries)
        {
            if (key is not string name || value is not (long or double)) throw Invalid($"{where} has an entry that is not a number.");
            values[name] = value;
        }
        try
        {
            return GradScalerState.FromDictionary(values);
        }
        catch (ArgumentException e)
        {
            throw Invalid($"{where}: {e.Message}");
        }
    }

    private static readonly string StateDictArgument = "state_dict";

    private static ArgumentException Invalid(string message) => new(message, StateDictArgument);
}
