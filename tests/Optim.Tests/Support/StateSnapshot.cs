using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;

namespace Optim.Tests.Support;

/// <summary>Everything an optimizer step or a load may change, as comparable values.</summary>
public static class StateSnapshot
{
    /// <summary>Every group's hyperparameters and initial lr, every state tensor's bytes and every parameter's bytes.</summary>
    public static List<object> Of(Optimizer opt, IReadOnlyList<Parameter> ps)
    {
        var sd = opt.StateDict();
        var snapshot = new List<object>();
        snapshot.AddRange(sd.ParamGroups.Select(g => (object)(string.Join(",", g.Hyperparameters.Select(h => $"{h.Key}={Hyperparameter(h.Value)}")) + $";initial_lr={g.InitialLr}")));
        foreach (var (id, state) in sd.State)
            foreach (var (key, t) in state) snapshot.Add($"{id}.{key}:{Convert.ToBase64String(t.cpu().contiguous().bytes)}");
        // Optimizer-wide state (LBFGS's): tensors by their bytes, lists entry by entry, numbers as they print.
        foreach (var (key, value) in sd.Global) snapshot.Add($"global.{key}:{Global(value, t => Convert.ToBase64String(t.cpu().contiguous().bytes))}");
        snapshot.AddRange(ps.Select(p => (object)Convert.ToBase64String(p.detach().cpu().contiguous().bytes)));
        return snapshot;
    }

    // A list (Muon's ns_coefficients) by its elements, which its ToString does not show.
    private static string? Hyperparameter(object? value) =>
        value is IReadOnlyList<double> list ? "[" + string.Join(",", list.Select(x => x.ToString("R", System.Globalization.CultureInfo.InvariantCulture))) + "]"
        : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>An optimizer-wide state value as text, its tensors written by <paramref name="tensor"/>.</summary>
    public static string Global(object value, Func<TorchSharp.torch.Tensor, string> tensor) => value switch
    {
        TorchSharp.torch.Tensor t => tensor(t),
        IEnumerable<TorchSharp.torch.Tensor> list => "[" + string.Join("|", list.Select(tensor)) + "]",
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) + ":" + value.GetType().Name,
    };
}
