using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// The state of one parameter (PyTorch's <c>optimizer.state[p]</c>): tensors by PyTorch's key names, in the order the
/// algorithm created them. The optimizer owns these tensors; read them, don't dispose them.
/// </summary>
public sealed class ParameterState : IReadOnlyDictionary<string, Tensor>
{
    private readonly List<KeyValuePair<string, Tensor>> _entries = new(4);

    // What the last full check against the state schema saw: the state's version (bumped by every change made through
    // this class) and its parameter's geometry. A step re-checks fully only when either changed.
    private int _version;
    private int _checkedVersion = -1;
    private long[] _checkedShape = Array.Empty<long>();
    private long[] _checkedNumels = Array.Empty<long>();
    private torch.ScalarType[] _checkedDtypes = Array.Empty<torch.ScalarType>();
    private torch.ScalarType _checkedDtype;
    private DeviceType _checkedDevice;
    private int _checkedDeviceIndex;

    /// <summary>Bumped by every change made through this class (a flat buffer re-gathers a state whose version moved).</summary>
    internal int Version => _version;

    /// <summary>
    /// Told of every change made through this class (<see cref="StateWatch.Changed"/>): a flat buffer watches the states
    /// it made views of with one object instead of reading every state's version before every step.
    /// </summary>
    internal StateWatch? Watch { get; set; }

    /// <summary>Records that the state was checked against <paramref name="parameter"/> as it is now.</summary>
    internal void MarkChecked(Tensor parameter)
    {
        var ndim = (int)parameter.ndim;
        _checkedShape = new long[ndim];
        for (var d = 0; d < ndim; d++) _checkedShape[d] = parameter.size(d);
        _checkedNumels = _entries.Select(e => e.Value.numel()).ToArray();
        _checkedDtypes = _entries.Select(e => e.Value.dtype).ToArray();
        _checkedDtype = parameter.dtype;
        _checkedDevice = parameter.device_type;
        _checkedDeviceIndex = parameter.device_index;
        _checkedVersion = _version;
    }

    /// <summary>
    /// Whether nothing changed since <see cref="MarkChecked"/>: no entry replaced or removed, the parameter's shape,
    /// dtype and device, and every state tensor alive with the element count and dtype it had (a few property reads
    /// instead of the full check).
    /// </summary>
    internal bool UnchangedSinceCheck(Tensor parameter)
    {
        if (_checkedVersion != _version || parameter.dtype != _checkedDtype || parameter.device_type != _checkedDevice
            || parameter.device_index != _checkedDeviceIndex || parameter.ndim != _checkedShape.Length)
            return false;
        for (var d = 0; d < _checkedShape.Length; d++)
        {
            if (parameter.size(d) != _checkedShape[d]) return false;
        }
        for (var i = 0; i < _entries.Count; i++)
        {
            var t = _entries[i].Value;
            if (t.IsInvalid || t.numel() != _checkedNumels[i] || t.dtype != _checkedDtypes[i]) return false;
        }
        return true;
    }

    /// <summary>Whether the algorithm has initialized this state (it may legitimately hold no tensors).</summary>
    public bool IsInitialized { get; internal set; }

    /// <inheritdoc/>
    public Tensor this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"No optimizer state '{key}'.");

    /// <inheritdoc/>
    public IEnumerable<string> Keys => _entries.Select(e => e.Key);

    /// <inheritdoc/>
    public IEnumerable<Tensor> Values => _entries.Select(e => e.Value);

    /// <inheritdoc/>
    public int Count => _entries.Count;

    /// <inheritdoc/>
    public bool ContainsKey(string key) => _entries.Exists(e => e.Key == key);

    /// <inheritdoc/>
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out Tensor value)
    {
        foreach (var entry in _entries)
        {
            if (entry.Key == key)
            {
                value = entry.Value;
                return true;
            }
        }
        value = null;
        return false;
    }

    /// <summary>The tensor under <paramref name="key"/>, or null.</summary>
    public Tensor? Get(string key) => TryGetValue(key, out var value) ? value : null;

    /// <summary>
    /// Stores <paramref name="value"/> under <paramref name="key"/>, taking ownership: it is detached from any dispose
    /// scope (state outlives the step) and a tensor it replaces is disposed.
    /// </summary>
    public void Set(string key, Tensor value)
    {
        Bump();
        ArgumentNullException.ThrowIfNull(value);
        value.DetachFromDisposeScope();
        IsInitialized = true;
        for (var i = 0; i < _entries.Count; i++)
        {
            if (_entries[i].Key != key) continue;
            if (!ReferenceEquals(_entries[i].Value, value)) _entries[i].Value.Dispose();
            _entries[i] = new(key, value);
            return;
        }
        _entries.Add(new(key, value));
    }

    /// <summary>Removes (and disposes) the tensor under <paramref name="key"/>; returns whether there was one.</summary>
    /// <param name="key">The key.</param>
    public bool Remove(string key)
    {
        Bump();
        var i = _entries.FindIndex(e => e.Key == key);
        if (i < 0) return false;
        _entries[i].Value.Dispose();
        _entries.RemoveAt(i);
        return true;
    }

    /// <summary>Disposes every tensor and forgets them.</summary>
    internal void Clear()
    {
        Bump();
        foreach (var entry in _entries) entry.Value.Dispose();
        _entries.Clear();
        IsInitialized = false;
    }

    /// <summary>Moves the contents of <paramref name="other"/> into this state (used by loads, after validation).</summary>
    internal void ReplaceWith(ParameterState other)
    {
        Bump();
        Clear();
        _entries.AddRange(other._entries);
        IsInitialized = other.IsInitialized;
        other._entries.Clear();
    }

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => _entries.GetEnumerator();

    private void Bump()
    {
        _version++;
        if (Watch is { } watch) watch.Changed = true;
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Set when any of the <see cref="ParameterState"/>s that hold it as their <see cref="ParameterState.Watch"/> changes.</summary>
internal sealed class StateWatch
{
    /// <summary>Whether a watched state changed since this watch was handed out.</summary>
    public bool Changed { get; set; }
}
