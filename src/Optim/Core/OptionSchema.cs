using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;
using Optim.Validation;

namespace Optim;

/// <summary>The value types a hyperparameter may have; each maps to one CLR type (see <see cref="Hyperparameter.ValueType"/>).</summary>
public enum HyperparameterType
{
    /// <summary>A <see cref="double"/> (a Python float).</summary>
    Double,

    /// <summary>A <see cref="bool"/>.</summary>
    Bool,

    /// <summary>An <see cref="int"/>.</summary>
    Int,

    /// <summary>A <see cref="long"/>.</summary>
    Long,

    /// <summary>A <see cref="string"/>, or null where the hyperparameter allows it (PyTorch's <c>None</c>).</summary>
    String,

    /// <summary>A value of one enum type.</summary>
    Enum,

    /// <summary>A pair of doubles, <c>(double, double)</c> (PyTorch's <c>betas</c>, <c>etas</c>).</summary>
    DoublePair,

    /// <summary>A list of doubles, <c>IReadOnlyList&lt;double&gt;</c>.</summary>
    DoubleList,
}

/// <summary>
/// One hyperparameter of an options record, as its algorithm declares it: PyTorch's snake_case name, its type, its
/// validation rule and message, and how to read and replace it. Everything that names, stores or checks
/// hyperparameters (state dicts, checkpoints, group overrides, error messages) reads these declarations.
/// </summary>
public abstract class Hyperparameter
{
    private protected Hyperparameter(string name, HyperparameterType type, Type valueType, string rule)
    {
        Name = name;
        Type = type;
        ValueType = valueType;
        Rule = rule;
    }

    /// <summary>PyTorch's name (<c>lr</c>, <c>weight_decay</c>, ...), used in state dicts, checkpoints and messages.</summary>
    public string Name { get; }

    /// <summary>The value's kind.</summary>
    public HyperparameterType Type { get; }

    /// <summary>The CLR type of values: what <see cref="OptimizerOptions.ToHyperparameters"/> returns for it.</summary>
    public Type ValueType { get; }

    /// <summary>The accepted values, in words (for documentation and messages).</summary>
    public string Rule { get; }

    /// <summary>The value in <paramref name="options"/>, boxed as <see cref="ValueType"/>.</summary>
    /// <param name="options">Options of the record type that declared this hyperparameter.</param>
    public abstract object? GetValue(OptimizerOptions options);

    /// <summary>A copy of <paramref name="options"/> with this hyperparameter replaced (not yet validated).</summary>
    /// <param name="options">Options of the record type that declared this hyperparameter.</param>
    /// <param name="value">A value of <see cref="ValueType"/>.</param>
    /// <exception cref="ArgumentException">The value is not of <see cref="ValueType"/>.</exception>
    public abstract OptimizerOptions WithValue(OptimizerOptions options, object? value);

    /// <summary>Throws an <see cref="ArgumentException"/> naming this hyperparameter if the value in <paramref name="options"/> breaks the rule.</summary>
    /// <param name="options">The options to check.</param>
    public abstract void Validate(OptimizerOptions options);

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {Type} ({Rule})";
}

/// <summary>A rule a hyperparameter's value must follow, and PyTorch's message when it does not.</summary>
/// <typeparam name="T">The value type.</typeparam>
/// <param name="Accepts">Whether a value is valid.</param>
/// <param name="Message">The exception message for an invalid value (PyTorch's text where it has one).</param>
/// <param name="Description">The accepted values, in words.</param>
public sealed record Rule<T>(Func<T, bool> Accepts, Func<T, string> Message, string Description);

/// <summary>
/// The rules algorithms use. Messages quote values the way Python's <c>str</c> prints them, so they read as PyTorch's.
/// Unlike PyTorch, NaN and infinities are rejected wherever a number is bounded.
/// </summary>
public static class Rules
{
    /// <summary>Any value.</summary>
    /// <typeparam name="T">The value type.</typeparam>
    public static Rule<T> Any<T>() => new(_ => true, _ => "", "any value");

    /// <summary>Finite and ≥ 0 (PyTorch's <c>not 0.0 &lt;= x</c>, plus finiteness).</summary>
    /// <param name="message">PyTorch's message prefix, e.g. "Invalid learning rate".</param>
    public static Rule<double> NonNegative(string message) =>
        new(v => double.IsFinite(v) && v >= 0, v => $"{message}: {Check.Python(v)}", "finite, >= 0");

    /// <summary>Finite and &gt; 0.</summary>
    /// <param name="message">The message prefix.</param>
    public static Rule<double> Positive(string message) =>
        new(v => double.IsFinite(v) && v > 0, v => $"{message}: {Check.Python(v)}", "finite, > 0");

    /// <summary>Any finite value (where PyTorch checks nothing, as ASGD's <c>t0</c>; NaN and infinities are still rejected).</summary>
    /// <param name="message">The message prefix.</param>
    public static Rule<double> Finite(string message) =>
        new(double.IsFinite, v => $"{message}: {Check.Python(v)}", "finite");

    /// <summary>Finite, in [0, 1) (PyTorch's <c>not 0.0 &lt;= beta &lt; 1.0</c>).</summary>
    /// <param name="message">The message prefix.</param>
    public static Rule<double> HalfOpenUnit(string message) =>
        new(v => double.IsFinite(v) && v >= 0 && v < 1, v => $"{message}: {Check.Python(v)}", "finite, in [0, 1)");

    /// <summary>Finite, in [0, 1] (momentum, dampening, RMSprop's alpha).</summary>
    /// <param name="message">The message prefix.</param>
    public static Rule<double> ClosedUnit(string message) =>
        new(v => double.IsFinite(v) && v >= 0 && v <= 1, v => $"{message}: {Check.Python(v)}", "finite, in [0, 1]");

    /// <summary>Finite and ≤ 0 (Adafactor's <c>beta2_decay</c>).</summary>
    /// <param name="message">The message prefix.</param>
    public static Rule<double> NonPositive(string message) =>
        new(v => double.IsFinite(v) && v <= 0, v => $"{message}: {Check.Python(v)}", "finite, <= 0");

    /// <summary>Finite and at least <paramref name="minimum"/> (Adafactor's <c>d</c>).</summary>
    /// <param name="minimum">The smallest valid value.</param>
    /// <param name="message">The message prefix.</param>
    public static Rule<double> Minimum(double minimum, string message) =>
        new(v => double.IsFinite(v) && v >= minimum, v => $"{message}: {Check.Python(v)}", $"finite, >= {Check.Python(minimum)}");

    /// <summary>Null (PyTorch's None), or finite and ≥ 0 (Adafactor's <c>eps1</c>).</summary>
    /// <param name="message">The message prefix.</param>
    public static Rule<double?> NullOrNonNegative(string message) =>
        new(v => v is not { } x || (double.IsFinite(x) && x >= 0), v => $"{message}: {(v is { } x ? Check.Python(x) : "None")}", "None, or finite, >= 0");

    /// <summary>An integer of at least <paramref name="minimum"/>.</summary>
    /// <param name="minimum">The smallest valid value.</param>
    /// <param name="message">The message prefix.</param>
    public static Rule<int> AtLeast(int minimum, string message) =>
        new(v => v >= minimum, v => $"{message}: {v}", $">= {minimum}");

    /// <summary>A long of at least <paramref name="minimum"/>.</summary>
    /// <param name="minimum">The smallest valid value.</param>
    /// <param name="message">The message prefix.</param>
    public static Rule<long> AtLeast(long minimum, string message) =>
        new(v => v >= minimum, v => $"{message}: {v}", $">= {minimum}");

    /// <summary>One of the given strings (null allowed when listed).</summary>
    /// <param name="message">The message prefix.</param>
    /// <param name="values">The accepted values.</param>
    public static Rule<string?> OneOf(string message, params string?[] values) =>
        new(v => values.Contains(v), v => $"{message}: {v ?? "None"}", "one of " + string.Join(", ", values.Select(v => v ?? "None")));

    /// <summary>A defined member of the enum.</summary>
    /// <typeparam name="TEnum">The enum type.</typeparam>
    /// <param name="name">The argument's name, for the message.</param>
    public static Rule<TEnum> Defined<TEnum>(string name) where TEnum : struct, Enum =>
        new(v => Enum.IsDefined(v), v => $"Invalid {name} value: {v}", "a defined " + typeof(TEnum).Name);

    /// <summary>Every element follows <paramref name="element"/>.</summary>
    /// <param name="element">The rule for each element.</param>
    public static Rule<IReadOnlyList<double>> Each(Rule<double> element) =>
        new(v => v.All(element.Accepts), v => element.Message(v.First(x => !element.Accepts(x))), "each " + element.Description);
}

/// <summary>
/// The hyperparameters of one options record, declared once by its algorithm in a table: order (PyTorch's validation
/// order, which is also the order of state dicts and checkpoints), names, types, rules and messages.
/// </summary>
public abstract class OptionSchema : IReadOnlyList<Hyperparameter>
{
    private protected readonly List<Hyperparameter> Fields = new();

    /// <summary>The options record type the schema describes.</summary>
    public abstract Type OptionsType { get; }

    /// <inheritdoc/>
    public Hyperparameter this[int index] => Fields[index];

    /// <inheritdoc/>
    public int Count => Fields.Count;

    /// <summary>The hyperparameter called <paramref name="name"/>, or null.</summary>
    /// <param name="name">PyTorch's name.</param>
    public Hyperparameter? Find(string name) => Fields.Find(f => f.Name == name);

    /// <inheritdoc/>
    public IEnumerator<Hyperparameter> GetEnumerator() => Fields.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>The schema of <typeparamref name="TOptions"/>, built as a fluent table.</summary>
/// <typeparam name="TOptions">The options record.</typeparam>
public sealed class OptionSchema<TOptions> : OptionSchema where TOptions : OptimizerOptions
{
    /// <inheritdoc/>
    public override Type OptionsType => typeof(TOptions);

    /// <summary>The learning rate, <c>lr</c> (non-negative, PyTorch's message). Every algorithm lists it first.</summary>
    public OptionSchema<TOptions> Lr() =>
        Double("lr", o => o.Lr, (o, v) => (TOptions)((OptimizerOptions)o with { Lr = v }), Rules.NonNegative("Invalid learning rate"));

    /// <summary><c>implementation</c>, which kernels run the update; every algorithm lists it last.</summary>
    public OptionSchema<TOptions> Implementation() =>
        Enum("implementation", o => o.Implementation, (o, v) => (TOptions)((OptimizerOptions)o with { Implementation = v }), Rules.Defined<Implementation>("implementation"));

    /// <summary>Declares a double.</summary>
    /// <param name="name">PyTorch's name.</param>
    /// <param name="get">Reads it.</param>
    /// <param name="with">Returns a copy with it replaced.</param>
    /// <param name="rule">Its rule.</param>
    public OptionSchema<TOptions> Double(string name, Func<TOptions, double> get, Func<TOptions, double, TOptions> with, Rule<double> rule) =>
        Add(new Field<double>(name, HyperparameterType.Double, get, with, rule));

    /// <summary>Declares a double that may be null (PyTorch's <c>None</c>); its type is <see cref="HyperparameterType.Double"/>.</summary>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> NullableDouble(string name, Func<TOptions, double?> get, Func<TOptions, double?, TOptions> with, Rule<double?> rule) =>
        Add(new Field<double?>(name, HyperparameterType.Double, get, with, rule));

    /// <summary>Declares a bool (any value valid).</summary>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> Bool(string name, Func<TOptions, bool> get, Func<TOptions, bool, TOptions> with) =>
        Add(new Field<bool>(name, HyperparameterType.Bool, get, with, Rules.Any<bool>()));

    /// <summary>Declares an int.</summary>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> Int(string name, Func<TOptions, int> get, Func<TOptions, int, TOptions> with, Rule<int> rule) =>
        Add(new Field<int>(name, HyperparameterType.Int, get, with, rule));

    /// <summary>Declares a long.</summary>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> Long(string name, Func<TOptions, long> get, Func<TOptions, long, TOptions> with, Rule<long> rule) =>
        Add(new Field<long>(name, HyperparameterType.Long, get, with, rule));

    /// <summary>Declares a string (null allowed where the rule allows it).</summary>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> String(string name, Func<TOptions, string?> get, Func<TOptions, string?, TOptions> with, Rule<string?> rule) =>
        Add(new Field<string?>(name, HyperparameterType.String, get, with, rule));

    /// <summary>Declares an enum.</summary>
    /// <typeparam name="TEnum">The enum type.</typeparam>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> Enum<TEnum>(string name, Func<TOptions, TEnum> get, Func<TOptions, TEnum, TOptions> with, Rule<TEnum> rule)
        where TEnum : struct, Enum =>
        Add(new Field<TEnum>(name, HyperparameterType.Enum, get, with, rule));

    /// <summary>Declares a pair of doubles.</summary>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> Pair(string name, Func<TOptions, (double, double)> get, Func<TOptions, (double, double), TOptions> with,
        Rule<(double, double)> rule) =>
        Add(new Field<(double, double)>(name, HyperparameterType.DoublePair, get, with, rule));

    /// <summary>Declares a list of doubles.</summary>
    /// <inheritdoc cref="Double"/>
    public OptionSchema<TOptions> List(string name, Func<TOptions, IReadOnlyList<double>> get,
        Func<TOptions, IReadOnlyList<double>, TOptions> with, Rule<IReadOnlyList<double>> rule) =>
        Add(new Field<IReadOnlyList<double>>(name, HyperparameterType.DoubleList, get, with, rule));

    private OptionSchema<TOptions> Add(Hyperparameter field)
    {
        if (Find(field.Name) is not null) throw new InvalidOperationException($"{typeof(TOptions).Name} declares '{field.Name}' twice.");
        Fields.Add(field);
        return this;
    }

    private sealed class Field<T> : Hyperparameter
    {
        private readonly Func<TOptions, T> _get;
        private readonly Func<TOptions, T, TOptions> _with;
        private readonly Rule<T> _rule;

        public Field(string name, HyperparameterType type, Func<TOptions, T> get, Func<TOptions, T, TOptions> with, Rule<T> rule)
            : base(name, type, typeof(T) == typeof(string) ? typeof(string) : typeof(T), rule.Description)
        {
            _get = get;
            _with = with;
            _rule = rule;
        }

        public override object? GetValue(OptimizerOptions options) => _get(Typed(options));

        public override OptimizerOptions WithValue(OptimizerOptions options, object? value)
        {
            if (!TryConvert(value, out var typed))
                throw new ArgumentException(
                    $"Hyperparameter '{Name}' of {typeof(TOptions).Name} must be a {Describe(typeof(T))}, not {(value is null ? "null" : Describe(value.GetType()))}.",
                    Name);
            return _with(Typed(options), typed);
        }

        public override void Validate(OptimizerOptions options)
        {
            var value = _get(Typed(options));
            if (!_rule.Accepts(value)) throw new ArgumentOutOfRangeException(Name, _rule.Message(value));
        }

        private static TOptions Typed(OptimizerOptions options) => options as TOptions
            ?? throw new ArgumentException($"Expected {typeof(TOptions).Name}, got {options?.GetType().Name ?? "null"}.", nameof(options));

        // Exact types only, except what widens losslessly (an int where a long belongs) and any double list.
        private static bool TryConvert(object? value, out T typed)
        {
            switch (value)
            {
                case T t:
                    typed = t;
                    return true;
                case null when typeof(T) == typeof(string) || typeof(T) == typeof(double?):
                    typed = default!;
                    return true;
                case int i when typeof(T) == typeof(long):
                    typed = (T)(object)(long)i;
                    return true;
                case IEnumerable<double> list when typeof(T) == typeof(IReadOnlyList<double>):
                    typed = (T)(object)list.ToArray();
                    return true;
                default:
                    typed = default!;
                    return false;
            }
        }

        private static string Describe(Type t) =>
            t == typeof(ValueTuple<double, double>) ? "(double, double)" : t == typeof(IReadOnlyList<double>) ? "list of doubles" : t.Name;
    }
}
