using System;
using System.Collections;
using System.Collections.Generic;
using System.Collections.ObjectModel;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Linq;

namespace Optim.Schedulers;

/// <summary>
/// A scheduler's state: an ordered map from PyTorch's attribute names (<c>last_epoch</c>, <c>base_lrs</c>,
/// <c>_step_count</c>, <c>_last_lr</c>, the scheduler's own hyperparameters and counters) to plain values, plus the
/// name of the scheduler class that wrote it.
/// </summary>
/// <remarks>
/// <para>
/// A value is one of: <see langword="null"/> (Python's <c>None</c>), <see cref="double"/>, <see cref="long"/> (Python
/// ints; <see cref="int"/> is stored as <see cref="long"/>), <see cref="bool"/>, <see cref="string"/>, a list of
/// doubles, a list of longs, or a list of nested <see cref="SchedulerStateDict"/>s (the <c>_schedulers</c> of
/// <see cref="ChainedScheduler"/> and <see cref="SequentialLR"/>). The dict is immutable; lists are copied in.
/// </para>
/// <para>
/// Like PyTorch's, it holds no functions: the <c>lr_lambda</c>s of <see cref="LambdaLR"/> and
/// <see cref="MultiplicativeLR"/> and a custom <c>scale_fn</c> of <see cref="CyclicLR"/> stay with the scheduler that
/// loads the dict. Nor does it hold the optimizer's learning rates or momentum: save and load the optimizer's state
/// with it.
/// </para>
/// </remarks>
public sealed class SchedulerStateDict : IReadOnlyDictionary<string, object?>
{
    private readonly List<KeyValuePair<string, object?>> _entries;
    private readonly Dictionary<string, object?> _index;

    /// <summary>Builds a dict, checking every value's type and copying lists.</summary>
    /// <param name="scheduler">The class name of the scheduler the state belongs to (e.g. "StepLR").</param>
    /// <param name="entries">The entries, in order; keys must be unique.</param>
    /// <exception cref="ArgumentException">A key repeats, or a value has a type a state dict cannot hold.</exception>
    public SchedulerStateDict(string scheduler, IEnumerable<KeyValuePair<string, object?>> entries)
    {
        ArgumentException.ThrowIfNullOrEmpty(scheduler);
        ArgumentNullException.ThrowIfNull(entries);
        Scheduler = scheduler;
        _entries = new List<KeyValuePair<string, object?>>();
        _index = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in entries)
        {
            ArgumentNullException.ThrowIfNull(key, nameof(entries));
            var normalized = Normalize(key, value);
            if (!_index.TryAdd(key, normalized))
                throw new ArgumentException($"Duplicate key '{key}' in a {scheduler} state dict.", nameof(entries));
            _entries.Add(new KeyValuePair<string, object?>(key, normalized));
        }
    }

    /// <summary>The class name of the scheduler that wrote this state (loading checks it).</summary>
    public string Scheduler { get; }

    /// <inheritdoc />
    public object? this[string key] =>
        _index.TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"The {Scheduler} state dict has no '{key}'.");

    /// <inheritdoc />
    public IEnumerable<string> Keys => _entries.Select(e => e.Key);

    /// <inheritdoc />
    public IEnumerable<object?> Values => _entries.Select(e => e.Value);

    /// <inheritdoc />
    public int Count => _entries.Count;

    /// <inheritdoc />
    public bool ContainsKey(string key) => _index.ContainsKey(key);

    /// <inheritdoc />
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out object? value) => _index.TryGetValue(key, out value);

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>A copy with <paramref name="key"/> set to <paramref name="value"/> (added at the end if new).</summary>
    /// <param name="key">The entry to set.</param>
    /// <param name="value">Its new value (same type rules as the constructor).</param>
    public SchedulerStateDict With(string key, object? value)
    {
        var found = false;
        var entries = _entries.Select(e =>
        {
            if (e.Key != key) return e;
            found = true;
            return new KeyValuePair<string, object?>(key, value);
        }).ToList();
        if (!found) entries.Add(new KeyValuePair<string, object?>(key, value));
        return new SchedulerStateDict(Scheduler, entries);
    }

    /// <summary>A copy without <paramref name="key"/>.</summary>
    /// <param name="key">The entry to drop.</param>
    public SchedulerStateDict Without(string key) => new(Scheduler, _entries.Where(e => e.Key != key));

    /// <summary>The double at <paramref name="key"/> (a long is widened).</summary>
    /// <param name="key">The entry.</param>
    /// <exception cref="ArgumentException">The key is missing or holds another type.</exception>
    public double GetDouble(string key) => Get(key) switch
    {
        double d => d,
        long l => l,
        var other => throw WrongType(key, other, "a number"),
    };

    /// <summary>The double or null at <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    public double? GetNullableDouble(string key) => Get(key) is null ? null : GetDouble(key);

    /// <summary>The integer at <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    public long GetInt64(string key) => Get(key) is long l ? l : throw WrongType(key, Get(key), "an integer");

    /// <summary>The integer at <paramref name="key"/>, which must fit an <see cref="int"/>.</summary>
    /// <param name="key">The entry.</param>
    public int GetInt32(string key)
    {
        var value = GetInt64(key);
        return value is >= int.MinValue and <= int.MaxValue
            ? (int)value
            : throw new ArgumentException($"The {Scheduler} state dict's '{key}' ({value}) does not fit a 32-bit integer.", nameof(key));
    }

    /// <summary>The boolean at <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    public bool GetBoolean(string key) => Get(key) is bool b ? b : throw WrongType(key, Get(key), "a boolean");

    /// <summary>The string at <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    public string GetString(string key) => Get(key) is string s ? s : throw WrongType(key, Get(key), "a string");

    /// <summary>The list of doubles at <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    public IReadOnlyList<double> GetDoubles(string key) => Get(key) switch
    {
        IReadOnlyList<double> d => d,
        IReadOnlyList<long> { Count: 0 } => Array.Empty<double>(),
        var other => throw WrongType(key, other, "a list of numbers"),
    };

    /// <summary>The list of integers at <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    public IReadOnlyList<long> GetInt64s(string key) => Get(key) switch
    {
        IReadOnlyList<long> l => l,
        IReadOnlyList<double> { Count: 0 } => Array.Empty<long>(),
        var other => throw WrongType(key, other, "a list of integers"),
    };

    /// <summary>The list of nested state dicts at <paramref name="key"/>.</summary>
    /// <param name="key">The entry.</param>
    public IReadOnlyList<SchedulerStateDict> GetStateDicts(string key) =>
        Get(key) is IReadOnlyList<SchedulerStateDict> s ? s : throw WrongType(key, Get(key), "a list of scheduler state dicts");

    /// <summary>A readable rendering, e.g. <c>StepLR{step_size=3, gamma=0.5, ...}</c>.</summary>
    public override string ToString() =>
        $"{Scheduler}{{{string.Join(", ", _entries.Select(e => $"{e.Key}={Format(e.Value)}"))}}}";

    private object? Get(string key) =>
        _index.TryGetValue(key, out var value)
            ? value
            : throw new ArgumentException($"The {Scheduler} state dict has no '{key}'.", nameof(key));

    private ArgumentException WrongType(string key, object? value, string expected) =>
        new($"The {Scheduler} state dict's '{key}' should be {expected}, but is {Describe(value)}.", nameof(key));

    private static string Describe(object? value) => value switch
    {
        null => "None",
        IReadOnlyList<double> => "a list of numbers",
        IReadOnlyList<long> => "a list of integers",
        IReadOnlyList<SchedulerStateDict> => "a list of state dicts",
        _ => $"{value.GetType().Name} {Format(value)}",
    };

    private static string Format(object? value) => value switch
    {
        null => "None",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "True" : "False",
        string s => $"'{s}'",
        IReadOnlyList<double> d => $"[{string.Join(", ", d.Select(x => x.ToString("R", CultureInfo.InvariantCulture)))}]",
        IReadOnlyList<long> l => $"[{string.Join(", ", l)}]",
        IReadOnlyList<SchedulerStateDict> s => $"[{string.Join(", ", s)}]",
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    private static object? Normalize(string key, object? value) => value switch
    {
        null or double or long or bool or string => value,
        int i => (long)i,
        float f => (double)f,
        IEnumerable<double> d => new ReadOnlyCollection<double>(d.ToArray()),
        IEnumerable<long> l => new ReadOnlyCollection<long>(l.ToArray()),
        IEnumerable<int> i => new ReadOnlyCollection<long>(i.Select(x => (long)x).ToArray()),
        IEnumerable<SchedulerStateDict> s => new ReadOnlyCollection<SchedulerStateDict>(s.Select(x => x ?? throw new ArgumentException($"'{key}' holds a null state dict.", nameof(value))).ToArray()),
        _ => throw new ArgumentException($"'{key}': a scheduler state dict cannot hold a {value.GetType().Name}.", nameof(value)),
    };
}
