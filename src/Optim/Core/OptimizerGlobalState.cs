using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Linq;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// State that belongs to the optimizer as a whole rather than to one parameter (LBFGS's history, counters and flat
/// gradient, for example): values by name, in the order they were first set. A value is a <see cref="Tensor"/>, a list
/// of tensors (<see cref="IReadOnlyList{Tensor}"/>), a <see cref="double"/>, a <see cref="long"/>, a <see cref="bool"/>
/// or a <see cref="string"/>. The optimizer owns the tensors; read them, don't dispose them.
/// </summary>
public sealed class OptimizerGlobalState : IReadOnlyDictionary<string, object>
{
    private readonly List<KeyValuePair<string, object>> _entries = new();

    /// <inheritdoc/>
    public object this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"No optimizer-wide state '{key}'.");

    /// <inheritdoc/>
    public IEnumerable<string> Keys => _entries.Select(e => e.Key);

    /// <inheritdoc/>
    public IEnumerable<object> Values => _entries.Select(e => e.Value);

    /// <inheritdoc/>
    public int Count => _entries.Count;

    /// <inheritdoc/>
    public bool ContainsKey(string key) => _entries.Exists(e => e.Key == key);

    /// <inheritdoc/>
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out object value)
    {
        var i = _entries.FindIndex(e => e.Key == key);
        value = i >= 0 ? _entries[i].Value : null;
        return i >= 0;
    }

    /// <summary>The value under <paramref name="key"/> as <typeparamref name="T"/>, or <paramref name="fallback"/> when absent.</summary>
    /// <typeparam name="T">The value's type.</typeparam>
    /// <param name="key">The name.</param>
    /// <param name="fallback">What to return when there is no such value.</param>
    public T Get<T>(string key, T fallback) => TryGetValue(key, out var value) ? (T)value : fallback;

    /// <summary>
    /// Stores <paramref name="value"/> under <paramref name="key"/>, taking ownership of its tensors (detached from any
    /// dispose scope); tensors of a value it replaces are disposed unless they are part of the new value.
    /// </summary>
    /// <param name="key">The name.</param>
    /// <param name="value">A supported value (see the class summary).</param>
    /// <exception cref="ArgumentException">An unsupported value type, or a disposed tensor.</exception>
    public void Set(string key, object value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var normalized = Normalize(value, key);
        foreach (var t in TensorsOf(normalized)) t.DetachFromDisposeScope();
        var i = _entries.FindIndex(e => e.Key == key);
        if (i >= 0)
        {
            var keep = new HashSet<Tensor>(TensorsOf(normalized), ReferenceEqualityComparer.Instance);
            foreach (var old in TensorsOf(_entries[i].Value).Where(t => !keep.Contains(t))) old.Dispose();
            _entries[i] = new(key, normalized);
        }
        else
        {
            _entries.Add(new(key, normalized));
        }
    }

    /// <summary>Removes (and disposes) the value under <paramref name="key"/>; returns whether there was one.</summary>
    /// <param name="key">The name.</param>
    public bool Remove(string key)
    {
        var i = _entries.FindIndex(e => e.Key == key);
        if (i < 0) return false;
        foreach (var t in TensorsOf(_entries[i].Value)) t.Dispose();
        _entries.RemoveAt(i);
        return true;
    }

    /// <summary>Disposes every tensor and forgets every value.</summary>
    internal void Clear()
    {
        foreach (var t in _entries.SelectMany(e => TensorsOf(e.Value))) t.Dispose();
        _entries.Clear();
    }

    /// <summary>Moves the values of <paramref name="other"/> into this state (after validation), replacing the current ones.</summary>
    internal void ReplaceWith(OptimizerGlobalState other)
    {
        Clear();
        _entries.AddRange(other._entries);
        other._entries.Clear();
    }

    /// <summary>A deep copy: values copied, tensors cloned (and detached from any dispose scope).</summary>
    internal OptimizerGlobalState Clone()
    {
        var copy = new OptimizerGlobalState();
        foreach (var (key, value) in _entries) copy._entries.Add(new(key, CloneValue(value)));
        return copy;
    }

    /// <summary>The tensors a value holds (none for scalars).</summary>
    /// <param name="value">A supported value.</param>
    public static IEnumerable<Tensor> TensorsOf(object value) => value switch
    {
        Tensor t => new[] { t },
        IReadOnlyList<Tensor> list => list,
        _ => Array.Empty<Tensor>(),
    };

    /// <summary>A deep copy of a supported value: tensors detached, cloned and detached from any dispose scope.</summary>
    /// <param name="value">A supported value.</param>
    public static object CloneValue(object value) => value switch
    {
        Tensor t => DetachedClone(t),
        IReadOnlyList<Tensor> list => list.Select(DetachedClone).ToArray(),
        _ => value,
    };

    // A copy outside any dispose scope; the detach() view is disposed at once (it would count as a live tensor until
    // its finalizer ran, one per state tensor per closure-driven step).
    internal static Tensor DetachedClone(Tensor t)
    {
        using var detached = t.detach();
        return detached.clone().DetachFromDisposeScope();
    }

    // int widens to long and float to double, so values keep one type per kind; anything else is refused.
    internal static object Normalize(object value, string key) => value switch
    {
        null => throw new ArgumentNullException(nameof(value), $"optimizer-wide state '{key}' is null"),
        Tensor t when t.IsInvalid => throw new ArgumentException($"optimizer-wide state '{key}' is a disposed tensor", nameof(value)),
        Tensor => value,
        IEnumerable<Tensor> list => list.Select(t => t is null || t.IsInvalid
            ? throw new ArgumentException($"optimizer-wide state '{key}' holds a null or disposed tensor", nameof(value))
            : t).ToArray(),
        double or long or bool or string => value,
        int i => (long)i,
        float f => (double)f,
        _ => throw new ArgumentException(
            $"optimizer-wide state '{key}' is a {value.GetType().Name}; supported are Tensor, a list of tensors, double, long, bool and string",
            nameof(value)),
    };

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, object>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
