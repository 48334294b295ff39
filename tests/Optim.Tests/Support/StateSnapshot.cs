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
        snapshot.AddRange(sd.ParamGroups.Select(g => (object)(string.Join(",", g.Hyperparameters.Select(h => $"{h.Key}={h.Value}")) + $";initial_lr={g.InitialLr}")));
        foreach (var (id, state) in sd.State)
            foreach (var (key, t) in state) snapshot.Add($"{id}.{key}:{Convert.ToBase64String(t.contiguous().bytes)}");
        snapshot.AddRange(ps.Select(p => (object)Convert.ToBase64String(p.detach().contiguous().bytes)));
        return snapshot;
    }
}
