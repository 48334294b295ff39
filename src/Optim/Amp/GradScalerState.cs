using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text.Json.Serialization;

namespace Optim.Amp;

/// <summary>
/// A <see cref="GradScaler"/>'s state, PyTorch's <c>GradScaler.state_dict()</c> with its five keys. System.Text.Json
/// writes it under PyTorch's key names (<c>scale</c>, <c>growth_factor</c>, <c>backoff_factor</c>,
/// <c>growth_interval</c>, <c>_growth_tracker</c>), and doubles round-trip exactly, so it fits a JSON training
/// checkpoint as it is.
/// </summary>
/// <param name="Scale">The current loss scale (a float32 value, widened).</param>
/// <param name="GrowthFactor">The factor the scale grows by after <paramref name="GrowthInterval"/> clean steps.</param>
/// <param name="BackoffFactor">The factor the scale shrinks by after a step whose gradients overflowed.</param>
/// <param name="GrowthInterval">How many consecutive clean steps make the scale grow.</param>
/// <param name="GrowthTracker">Consecutive clean steps since the scale last changed.</param>
public sealed record GradScalerState(
    [property: JsonPropertyName("scale")] double Scale,
    [property: JsonPropertyName("growth_factor")] double GrowthFactor,
    [property: JsonPropertyName("backoff_factor")] double BackoffFactor,
    [property: JsonPropertyName("growth_interval")] int GrowthInterval,
    [property: JsonPropertyName("_growth_tracker")] int GrowthTracker)
{
    /// <summary>The state under PyTorch's keys, in PyTorch's order (<c>double</c> and <c>int</c> values).</summary>
    public IReadOnlyList<KeyValuePair<string, object>> ToDictionary() => new KeyValuePair<string, object>[]
    {
        new("scale", Scale),
        new("growth_factor", GrowthFactor),
        new("backoff_factor", BackoffFactor),
        new("growth_interval", GrowthInterval),
        new("_growth_tracker", GrowthTracker),
    };

    /// <summary>
    /// Reads a state from PyTorch's keys (numbers of any CLR numeric type; the two integers must be integral).
    /// </summary>
    /// <param name="values">The five entries of a PyTorch <c>GradScaler.state_dict()</c>.</param>
    /// <exception cref="ArgumentException">A key is missing or a value is not a number of the right kind.</exception>
    public static GradScalerState FromDictionary(IReadOnlyDictionary<string, object> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return new GradScalerState(
            Number(values, "scale"),
            Number(values, "growth_factor"),
            Number(values, "backoff_factor"),
            Integer(values, "growth_interval"),
            Integer(values, "_growth_tracker"));
    }

    private static double Number(IReadOnlyDictionary<string, object> values, string key)
    {
        if (!values.TryGetValue(key, out var value)) throw new ArgumentException($"the GradScaler state dict has no '{key}'", nameof(values));
        return value switch
        {
            double d => d,
            float f => f,
            int i => i,
            long l => l,
            _ => throw new ArgumentException($"'{key}' must be a number, not {value?.GetType().Name ?? "null"}", nameof(values)),
        };
    }

    private static int Integer(IReadOnlyDictionary<string, object> values, string key)
    {
        var d = Number(values, key);
        if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue)
            throw new ArgumentException($"'{key}' must be an integer, not {d.ToString(CultureInfo.InvariantCulture)}", nameof(values));
        return (int)d;
    }
}
