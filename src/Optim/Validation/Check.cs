using System;
using System.Globalization;
using TorchSharp;

namespace Optim.Validation;

/// <summary>
/// Argument checks with PyTorch's messages ("Invalid learning rate: -0.1", the value printed as Python prints it); every
/// exception names the offending argument. Unlike PyTorch, NaN and infinities are rejected everywhere. An algorithm
/// declares its hyperparameters' rules in its <see cref="OptionSchema{TOptions}"/> (<see cref="Rules"/>); these are for
/// checks the schema cannot express, such as an options record's <c>ValidateCombination</c> or a constructor argument
/// that is not a hyperparameter.
/// </summary>
public static class Check
{
    /// <summary>Accepts finite values ≥ 0 (PyTorch's <c>not 0.0 &lt;= x</c>, plus a finiteness check).</summary>
    /// <param name="value">The value.</param>
    /// <param name="name">The argument's name.</param>
    /// <param name="what">PyTorch's message prefix, e.g. "Invalid learning rate".</param>
    /// <returns><paramref name="value"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The value is out of range: "<paramref name="what"/>: value".</exception>
    public static double NonNegative(double value, string name, string what) =>
        double.IsFinite(value) && value >= 0 ? value : throw Invalid(value, name, what);

    /// <summary>Accepts finite values in [0, 1) (PyTorch's <c>not 0.0 &lt;= beta &lt; 1.0</c>).</summary>
    /// <inheritdoc cref="NonNegative"/>
    public static double UnitInterval(double value, string name, string what) =>
        double.IsFinite(value) && value >= 0 && value < 1 ? value : throw Invalid(value, name, what);

    /// <summary>Accepts finite values in [0, 1] (dampening, RMSprop's alpha).</summary>
    /// <inheritdoc cref="NonNegative"/>
    public static double ClosedUnitInterval(double value, string name, string what) =>
        double.IsFinite(value) && value >= 0 && value <= 1 ? value : throw Invalid(value, name, what);

    /// <summary>
    /// PyTorch's SGD rule <c>nesterov and (momentum &lt;= 0 or dampening != 0)</c>: Nesterov momentum needs a momentum
    /// and no dampening.
    /// </summary>
    internal static void Nesterov(bool nesterov, double momentum, double dampening)
    {
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum requires a momentum and zero dampening", nameof(nesterov));
    }

    /// <summary>
    /// Accepts values a tensor of <paramref name="dtype"/> can hold (ATen's overflow rule for filling one: |value| at
    /// most the dtype's largest finite value). Adagrad fills its state with <c>initial_accumulator_value</c>.
    /// </summary>
    internal static double FitsDtype(double value, torch.ScalarType dtype, string name, string what)
    {
        var max = dtype switch
        {
            torch.ScalarType.Float32 => float.MaxValue,
            torch.ScalarType.Float16 => (double)Half.MaxValue,
            torch.ScalarType.BFloat16 => 3.3895313892515355e38,
            _ => double.PositiveInfinity,
        };
        return Math.Abs(value) <= max ? value : throw new ArgumentOutOfRangeException(name, $"{what}: {Python(value)} overflows {dtype} parameters");
    }

    /// <summary>Accepts only values of a defined enum member.</summary>
    /// <typeparam name="T">The enum type.</typeparam>
    /// <param name="value">The value.</param>
    /// <param name="name">The argument's name.</param>
    /// <returns><paramref name="value"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined member: "Invalid name value: value".</exception>
    public static T Defined<T>(T value, string name) where T : struct, Enum =>
        Enum.IsDefined(value) ? value : throw new ArgumentOutOfRangeException(name, $"Invalid {name} value: {value}");

    private static ArgumentOutOfRangeException Invalid(double value, string name, string what) =>
        new(name, $"{what}: {Python(value)}");

    /// <summary>Formats a double the way Python's <c>str(float)</c> does (<c>0.1</c>, <c>1.0</c>, <c>1e-05</c>, <c>inf</c>), so messages match PyTorch's.</summary>
    /// <param name="value">The value.</param>
    public static string Python(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsPositiveInfinity(value)) return "inf";
        if (double.IsNegativeInfinity(value)) return "-inf";
        var exponent = value == 0 ? 0 : Math.Floor(Math.Log10(Math.Abs(value)));
        if (exponent < -4 || exponent >= 16)
        {
            // Python: 1e-05, 1.5e+16 (at least two exponent digits).
            var s = value.ToString("R", CultureInfo.InvariantCulture).Replace("E", "e", StringComparison.Ordinal);
            var e = s.IndexOf('e', StringComparison.Ordinal);
            if (e < 0) return s;
            var mantissa = s[..e];
            var exp = int.Parse(s[(e + 1)..], CultureInfo.InvariantCulture);
            return $"{mantissa}e{(exp < 0 ? "-" : "+")}{Math.Abs(exp):00}";
        }
        var text = value.ToString("R", CultureInfo.InvariantCulture);
        return text.Contains('.', StringComparison.Ordinal) || text.Contains('E', StringComparison.Ordinal) ? text : text + ".0";
    }
}
