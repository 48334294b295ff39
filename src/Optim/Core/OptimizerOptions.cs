using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;
using System.Text;
using Optim.Validation;

namespace Optim;

/// <summary>
/// The hyperparameters of one parameter group: an immutable value. Every property validates itself when it is set,
/// so an invalid instance cannot exist; derive a changed copy with <c>with { Lr = 0.01 }</c>.
/// </summary>
public abstract record OptimizerOptions
{
    private readonly double _lr = 1e-3;
    private readonly Implementation _implementation;

    /// <summary>The learning rate (PyTorch's <c>lr</c>).</summary>
    public double Lr { get => _lr; init => _lr = Check.NonNegative(value, "lr", "Invalid learning rate"); }

    /// <summary>Which kernels run the update; see <see cref="Optim.Implementation"/>.</summary>
    public Implementation Implementation
    {
        get => _implementation;
        init => _implementation = Check.Defined(value, "implementation");
    }

    /// <summary>Rules that involve more than one hyperparameter; the base calls it whenever a group's options change.</summary>
    protected internal virtual void Validate() { }

    /// <summary>
    /// The hyperparameters by PyTorch's snake_case names (<c>lr</c>, <c>weight_decay</c>, ...), in declaration order,
    /// as <see cref="double"/>, <see cref="bool"/> or <see cref="Optim.Implementation"/> values.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, object>> ToHyperparameters() =>
        Fields(GetType()).Select(f => new KeyValuePair<string, object>(f.Name, f.Property.GetValue(this)!)).ToList();

    /// <summary>
    /// A copy with the named hyperparameters replaced; every name must exist and every value must have the field's type.
    /// Validation runs as for any other change.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown name, a value of the wrong type, or an invalid value.</exception>
    public OptimizerOptions WithHyperparameters(IEnumerable<KeyValuePair<string, object>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var copy = this with { };
        var fields = Fields(GetType());
        foreach (var (name, value) in values)
        {
            var field = fields.FirstOrDefault(f => f.Name == name)
                ?? throw new ArgumentException($"{GetType().Name} has no hyperparameter '{name}'.", nameof(values));
            if (value is null || value.GetType() != field.Property.PropertyType)
                throw new ArgumentException(
                    $"Hyperparameter '{name}' of {GetType().Name} must be a {field.Property.PropertyType.Name}, not {value?.GetType().Name ?? "null"}.",
                    nameof(values));
            try
            {
                field.Property.SetValue(copy, value);
            }
            catch (TargetInvocationException e) when (e.InnerException is ArgumentException inner)
            {
                throw inner;
            }
        }
        copy.Validate();
        return copy;
    }

    private sealed record Field(string Name, PropertyInfo Property);

    private static readonly Dictionary<Type, Field[]> FieldCache = new();

    // Hyperparameters are the public get/init properties of double, bool or Implementation type, base class first.
    private static Field[] Fields(Type type)
    {
        lock (FieldCache)
        {
            if (FieldCache.TryGetValue(type, out var cached)) return cached;
            var chain = new List<Type>();
            for (var t = type; t != null && t != typeof(object); t = t.BaseType) chain.Insert(0, t);
            var fields = chain
                .SelectMany(t => t.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
                .Where(p => p.CanWrite && (p.PropertyType == typeof(double) || p.PropertyType == typeof(bool) || p.PropertyType == typeof(Implementation)))
                .Select(p => new Field(SnakeCase(p.Name), p))
                .ToArray();
            FieldCache[type] = fields;
            return fields;
        }
    }

    private static string SnakeCase(string name)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0) sb.Append('_');
            sb.Append(char.ToLower(name[i], CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }
}

/// <summary>Options of algorithms that have a momentum coefficient, which TorchSharp's cyclic schedulers can drive.</summary>
public interface IMomentumOptions
{
    /// <summary>The momentum coefficient.</summary>
    double Momentum { get; }

    /// <summary>A copy with another momentum (validated).</summary>
    OptimizerOptions WithMomentum(double momentum);
}

/// <summary>Options of algorithms that have Adam's (beta1, beta2), which TorchSharp's <c>OneCycleLR</c> can drive.</summary>
public interface IBetasOptions
{
    /// <summary>The coefficient of the running average of the gradient.</summary>
    double Beta1 { get; }

    /// <summary>The coefficient of the running average of the squared gradient.</summary>
    double Beta2 { get; }

    /// <summary>A copy with other betas (validated).</summary>
    OptimizerOptions WithBetas(double beta1, double beta2);
}
