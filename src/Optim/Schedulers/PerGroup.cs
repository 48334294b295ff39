using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using static TorchSharp.torch.optim;

namespace Optim.Schedulers;

/// <summary>
/// A value for every parameter group, or one value per group: PyTorch's "float or list" arguments (<c>max_lr</c>,
/// <c>base_momentum</c>, <c>swa_lr</c>, ...). Converts implicitly from a <see cref="double"/>, a <c>double[]</c> and a
/// <see cref="List{T}"/> of doubles, so <c>max_lr: 0.1</c> and <c>max_lr: new[] { 0.1, 0.01 }</c> both read as in Python.
/// </summary>
public readonly struct PerGroup : IEquatable<PerGroup>
{
    private readonly double _single;
    private readonly double[]? _values;

    /// <summary>The same value for every group.</summary>
    /// <param name="value">The value.</param>
    public PerGroup(double value)
    {
        _single = value;
        _values = null;
    }

    /// <summary>One value per group, in the groups' order.</summary>
    /// <param name="values">The values.</param>
    public PerGroup(IEnumerable<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _single = 0;
        _values = values.ToArray();
    }

    /// <summary>Whether this holds one value per group (a list) rather than one value for all.</summary>
    public bool IsList => _values is not null;

    internal double ScalarValue => _single;

    /// <summary>One value for every group.</summary>
    /// <param name="value">The value.</param>
    public static implicit operator PerGroup(double value) => new(value);

    /// <summary>One value per group.</summary>
    /// <param name="values">The values.</param>
    public static implicit operator PerGroup(double[] values) => new(values);

    /// <summary>One value per group.</summary>
    /// <param name="values">The values.</param>
    public static implicit operator PerGroup(List<double> values) => new(values);

    /// <summary>
    /// PyTorch's <c>_format_param</c>: the list for <paramref name="groups"/> groups, checking a list's length (and,
    /// unlike PyTorch, that every value is finite).
    /// </summary>
    /// <param name="name">The argument's name, for the error.</param>
    /// <param name="groups">The optimizer's groups.</param>
    public IReadOnlyList<double> Format(string name, IReadOnlyCollection<ILearningRateController> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        double[] result;
        if (_values is null)
        {
            result = Enumerable.Repeat(_single, groups.Count).ToArray();
        }
        else
        {
            if (_values.Length != groups.Count)
                throw new ArgumentException(
                    $"{name} must have the same length as optimizer.param_groups. {name} has {_values.Length} values, param_groups has {groups.Count}.", name);
            result = (double[])_values.Clone();
        }

        foreach (var v in result)
            if (!double.IsFinite(v)) throw new ArgumentException($"Expected finite {name}, but got {v.ToString(CultureInfo.InvariantCulture)}", name);
        return result;
    }

    /// <inheritdoc />
    public bool Equals(PerGroup other) =>
        _values is null ? other._values is null && _single.Equals(other._single) : other._values is not null && _values.SequenceEqual(other._values);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is PerGroup other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => _values is null ? _single.GetHashCode() : _values.Length;

    /// <summary>Equality of the values.</summary>
    /// <param name="left">One value.</param>
    /// <param name="right">The other.</param>
    public static bool operator ==(PerGroup left, PerGroup right) => left.Equals(right);

    /// <summary>Inequality of the values.</summary>
    /// <param name="left">One value.</param>
    /// <param name="right">The other.</param>
    public static bool operator !=(PerGroup left, PerGroup right) => !left.Equals(right);
}

/// <summary>Argument checks shared by the schedulers (PyTorch's messages where it has them).</summary>
internal static class Args
{
    public static double Finite(double value, string name) =>
        double.IsFinite(value) ? value : throw new ArgumentException($"Expected finite {name}, but got {Format(value)}", name);

    public static int Positive(int value, string name) =>
        value > 0 ? value : throw new ArgumentException($"Expected positive integer {name}, but got {value}", name);

    public static int NonNegative(int value, string name) =>
        value >= 0 ? value : throw new ArgumentException($"Expected non-negative integer {name}, but got {value}", name);

    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Python's <c>repr</c> of a float, as PyTorch's messages print it (0.5, 1.0, 1e-05).</summary>
    public static string Py(double value)
    {
        if (double.IsPositiveInfinity(value)) return "inf";
        if (double.IsNegativeInfinity(value)) return "-inf";
        if (double.IsNaN(value)) return "nan";
        var s = value.ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains('E', StringComparison.Ordinal))
        {
            var parts = s.Split('E');
            var exponent = int.Parse(parts[1], CultureInfo.InvariantCulture);
            return $"{parts[0]}e{(exponent < 0 ? "-" : "+")}{Math.Abs(exponent):00}";
        }

        return s.Contains('.', StringComparison.Ordinal) ? s : s + ".0";
    }
}

/// <summary>
/// Reads and writes the momentum a scheduler cycles: <see cref="IBetas"/>' beta1 when every group has betas (PyTorch:
/// <c>"betas" in optimizer.defaults</c>), else <see cref="IMomentum"/>'s momentum.
/// </summary>
internal static class Momentum
{
    public const string Unsupported = "optimizer must support momentum or beta1 with `cycle_momentum` option enabled";

    /// <summary>True for beta1, false for momentum; throws when the groups support neither.</summary>
    public static bool UseBeta1(IReadOnlyList<ILearningRateController> groups, string cycle_momentum)
    {
        if (groups.Count > 0 && groups.All(g => g is IBetas)) return true;
        if (groups.Count > 0 && groups.All(g => g is IMomentum)) return false;
        throw new ArgumentException(Unsupported, cycle_momentum);
    }

    /// <summary>Checks that a loaded <c>use_beta1</c> fits the groups.</summary>
    public static bool Fits(IReadOnlyList<ILearningRateController> groups, bool useBeta1) =>
        useBeta1 ? groups.All(g => g is IBetas) : groups.All(g => g is IMomentum);

    public static void Set(ILearningRateController group, bool useBeta1, double value)
    {
        if (useBeta1)
        {
            var betas = (IBetas)group;
            betas.Betas = (value, betas.Betas.Item2);
        }
        else
        {
            ((IMomentum)group).Momentum = value;
        }
    }

    public static double Get(ILearningRateController group, bool useBeta1) =>
        useBeta1 ? ((IBetas)group).Betas.Item1 : ((IMomentum)group).Momentum;
}
