using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// An optimizer's state in PyTorch's shape: per-parameter state keyed by integer ids (assigned in order of appearance
/// across groups), and the groups with their hyperparameters and the ids of their parameters.
/// </summary>
/// <remarks>
/// Like PyTorch's, a dict returned by <see cref="Optimizer.StateDict"/> references the optimizer's live tensors; it
/// changes as training continues. Use <see cref="DeepCopy"/> for a snapshot, or <see cref="Optimizer.Save(string)"/>.
/// </remarks>
/// <param name="OptimizerType">The algorithm's name (the optimizer's class name, e.g. "Adam").</param>
/// <param name="State">Per-parameter state by id.</param>
/// <param name="ParamGroups">The parameter groups, in order.</param>
public sealed record OptimizerStateDict(
    string OptimizerType,
    IReadOnlyDictionary<int, IReadOnlyDictionary<string, Tensor>> State,
    IReadOnlyList<ParamGroupState> ParamGroups)
{
    /// <summary>A deep copy: every tensor cloned and detached from any dispose scope. The caller owns the copies.</summary>
    public OptimizerStateDict DeepCopy() => this with
    {
        State = State.ToDictionary(
            s => s.Key,
            s => (IReadOnlyDictionary<string, Tensor>)s.Value.ToDictionary(e => e.Key, e => e.Value.detach().clone().DetachFromDisposeScope())),
    };

    /// <summary>Disposes every tensor of this dict. Only for dicts the caller owns (clones, or ones it built).</summary>
    public void DisposeTensors()
    {
        foreach (var tensor in State.Values.SelectMany(s => s.Values)) tensor.Dispose();
    }
}

/// <summary>One parameter group of an <see cref="OptimizerStateDict"/>.</summary>
/// <param name="Hyperparameters">The group's options by PyTorch's names, in declaration order.</param>
/// <param name="InitialLr">The base learning rate schedulers use (PyTorch's <c>initial_lr</c>).</param>
/// <param name="Params">The ids of the group's parameters, in order.</param>
public sealed record ParamGroupState(
    IReadOnlyList<KeyValuePair<string, object>> Hyperparameters,
    double InitialLr,
    IReadOnlyList<int> Params)
{
    /// <summary>The hyperparameter called <paramref name="name"/>.</summary>
    public object this[string name] =>
        Hyperparameters.FirstOrDefault(h => h.Key == name).Value ?? throw new KeyNotFoundException($"No hyperparameter '{name}'.");
}
