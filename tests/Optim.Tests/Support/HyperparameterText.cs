using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Optim.Validation;

namespace Optim.Tests.Support;

/// <summary>Formats hyperparameter values for test messages, as Python prints them.</summary>
internal static class HyperparameterText
{
    public static string Format(object? value) => value switch
    {
        null => "None",
        double d => Check.Python(d),
        bool b => b ? "True" : "False",
        (double a, double b) => $"({Check.Python(a)}, {Check.Python(b)})",
        IEnumerable<double> list => "[" + string.Join(", ", list.Select(Check.Python)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
