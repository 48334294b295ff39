using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using static TorchSharp.torch;

namespace Optim.Formats.PyTorch;

/// <summary>
/// The Python values a PyTorch checkpoint holds, as this library represents them: <c>None</c> is null, <c>bool</c>,
/// <c>int</c> (a <see cref="long"/>), <c>float</c> (a <see cref="double"/>), <c>str</c>, a tensor (<see cref="Tensor"/>),
/// a list (<see cref="List{T}"/> of values), a tuple (<see cref="PyTuple"/>) and a dict (<see cref="PyDict"/>).
/// </summary>
internal static class PyValues
{
    /// <summary>How Python's <c>repr</c> would name the value's type, for messages.</summary>
    public static string TypeName(object? value) => value switch
    {
        null => "None",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        Tensor => "Tensor",
        List<object?> => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        _ => value.GetType().Name,
    };

    /// <summary>
    /// A number as a double: a float, an int that a double holds exactly, or a one-element floating-point tensor
    /// (PyTorch 2.x accepts <c>lr</c> and <c>betas</c> as tensors).
    /// </summary>
    public static bool TryDouble(object? value, out double result)
    {
        switch (value)
        {
            case double d:
                result = d;
                return true;
            case long l when Math.Abs(l) <= 1L << 53:
                result = l;
                return true;
            case Tensor t when t.numel() == 1 && t.is_floating_point():
                using (var d = t.to(ScalarType.Float64)) result = d.item<double>();
                return true;
            default:
                result = 0;
                return false;
        }
    }

    /// <summary>The items of a list or a tuple, or null.</summary>
    public static IReadOnlyList<object?>? Sequence(object? value) => value switch
    {
        List<object?> list => list,
        PyTuple tuple => tuple.Items,
        _ => null,
    };
}

/// <summary>A Python tuple.</summary>
/// <param name="Items">The items.</param>
internal sealed record PyTuple(IReadOnlyList<object?> Items)
{
    /// <summary>A tuple of the given items.</summary>
    public static PyTuple Of(params object?[] items) => new(items);
}

/// <summary>
/// A Python dict, <c>collections.OrderedDict</c> or <c>collections.Counter</c> (see <see cref="Kind"/>): entries in
/// insertion order, keys strings or ints (the only keys state dicts have; a file with others is rejected).
/// </summary>
internal sealed class PyDict
{
    private readonly List<KeyValuePair<object, object?>> _entries = new();
    private readonly Dictionary<object, int> _index = new();

    /// <summary>An empty dict.</summary>
    /// <param name="kind">The Python class it is pickled as.</param>
    public PyDict(PyDictKind kind = PyDictKind.Dict) => Kind = kind;

    /// <summary>The Python class: a plain dict, an OrderedDict (module state dicts) or a Counter (MultiStepLR's milestones).</summary>
    public PyDictKind Kind { get; }

    /// <summary>The entries, in insertion order.</summary>
    public IReadOnlyList<KeyValuePair<object, object?>> Entries => _entries;

    /// <summary>The number of entries.</summary>
    public int Count => _entries.Count;

    /// <summary>Sets <paramref name="key"/> (Python's <c>d[key] = value</c>: an existing key keeps its position).</summary>
    /// <exception cref="InvalidDataException">The key is neither a string nor an int.</exception>
    public void Set(object? key, object? value)
    {
        if (key is not (string or long))
            throw new InvalidDataException($"a dict key is a {PyValues.TypeName(key)}; state dicts have str and int keys only.");
        if (_index.TryGetValue(key, out var i))
        {
            _entries[i] = new(key, value);
            return;
        }
        _index[key] = _entries.Count;
        _entries.Add(new(key, value));
    }

    /// <summary>Whether the dict has <paramref name="key"/>.</summary>
    public bool ContainsKey(object key) => _index.ContainsKey(key);

    /// <summary>The value under <paramref name="key"/>, or false.</summary>
    public bool TryGetValue(object key, out object? value)
    {
        if (_index.TryGetValue(key, out var i))
        {
            value = _entries[i].Value;
            return true;
        }
        value = null;
        return false;
    }

    /// <summary>The string keys, in order (other keys are skipped).</summary>
    public IEnumerable<string> StringKeys => _entries.Select(e => e.Key).OfType<string>();
}

/// <summary>The Python class of a <see cref="PyDict"/>.</summary>
internal enum PyDictKind
{
    /// <summary><c>dict</c>.</summary>
    Dict,

    /// <summary><c>collections.OrderedDict</c>.</summary>
    OrderedDict,

    /// <summary><c>collections.Counter</c>.</summary>
    Counter,
}
