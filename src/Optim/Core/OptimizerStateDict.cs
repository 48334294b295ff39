using System;
using System.Collections.Generic;
using System.Linq;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// An optimizer's state in PyTorch's shape: per-parameter state keyed by integer ids (assigned in order of appearance
/// across groups), the groups with their hyperparameters and the ids of their parameters, and the optimizer-wide state
/// (<see cref="Global"/>, empty for most algorithms).
/// </summary>
/// <remarks>
/// Like PyTorch's, a dict returned by <see cref="Optimizer.StateDict"/> references the optimizer's live tensors; it
/// changes as training continues, and disposing the optimizer disposes them. Use <see cref="DeepCopy"/> for a snapshot.
/// </remarks>
/// <param name="OptimizerType">The algorithm's name (the optimizer's class name, e.g. "Adam").</param>
/// <param name="State">Per-parameter state by id.</param>
/// <param name="ParamGroups">The parameter groups, in order.</param>
public sealed record OptimizerStateDict(
    string OptimizerType,
    IReadOnlyDictionary<int, IReadOnlyDictionary<string, Tensor>> State,
    IReadOnlyList<ParamGroupState> ParamGroups)
{
    private static readonly IReadOnlyDictionary<string, object> NoGlobalState = new Dictionary<string, object>();

    /// <summary>
    /// The optimizer-wide state by name (see <see cref="OptimizerGlobalState"/> for the value types); empty unless the
    /// algorithm keeps such state.
    /// </summary>
    public IReadOnlyDictionary<string, object> Global { get; init; } = NoGlobalState;

    /// <summary>
    /// Set by checkpoint readers on a dict whose tensors are new and owned by the reader's caller, so
    /// <see cref="Optimizer.LoadStateDict"/> may take them over (sharing their storage) instead of copying them.
    /// </summary>
    internal bool TensorsAreStaged { get; init; }

    /// <summary>Every tensor the dict references: per-parameter state, then optimizer-wide state.</summary>
    public IEnumerable<Tensor> Tensors() =>
        State.Values.SelectMany(s => s.Values).Concat(Global.Values.SelectMany(OptimizerGlobalState.TensorsOf));

    /// <summary>
    /// Throws if any tensor of the dict is null or has been disposed (a dict taken from an optimizer that was disposed
    /// since): such a dict would otherwise be written or loaded as if that state did not exist.
    /// </summary>
    /// <exception cref="ObjectDisposedException">A tensor of the dict was disposed.</exception>
    public void ThrowIfDisposed()
    {
        foreach (var (id, entries) in State)
        {
            foreach (var (key, tensor) in entries)
            {
                if (tensor is null || tensor.IsInvalid)
                    throw new ObjectDisposedException(nameof(OptimizerStateDict),
                        $"state '{key}' of parameter id {id} has been disposed (was the optimizer disposed after this state dict was taken? Copy it with DeepCopy first)");
            }
        }
        foreach (var (key, value) in Global)
        {
            if (OptimizerGlobalState.TensorsOf(value).Any(t => t is null || t.IsInvalid))
                throw new ObjectDisposedException(nameof(OptimizerStateDict), $"optimizer-wide state '{key}' has been disposed");
        }
    }

    /// <summary>A deep copy: every tensor cloned and detached from any dispose scope. The caller owns the copies.</summary>
    /// <exception cref="ObjectDisposedException">A tensor of the dict was disposed.</exception>
    public OptimizerStateDict DeepCopy()
    {
        ThrowIfDisposed();
        return this with
        {
            State = State.ToDictionary(
                s => s.Key,
                s => (IReadOnlyDictionary<string, Tensor>)s.Value.ToDictionary(e => e.Key, e => OptimizerGlobalState.DetachedClone(e.Value))),
            Global = Global.ToDictionary(g => g.Key, g => OptimizerGlobalState.CloneValue(g.Value)),
        };
    }

    /// <summary>Disposes every tensor of this dict. Only for dicts the caller owns (clones, or ones it built).</summary>
    public void DisposeTensors()
    {
        foreach (var tensor in Tensors()) tensor?.Dispose();
    }
}

/// <summary>One parameter group of an <see cref="OptimizerStateDict"/>.</summary>
/// <param name="Hyperparameters">The group's options by PyTorch's names, in the schema's order, each as its declared type.</param>
/// <param name="InitialLr">The base learning rate schedulers use (PyTorch's <c>initial_lr</c>).</param>
/// <param name="Params">The ids of the group's parameters, in order.</param>
public sealed record ParamGroupState(
    IReadOnlyList<KeyValuePair<string, object?>> Hyperparameters,
    double InitialLr,
    IReadOnlyList<int> Params)
{
    /// <summary>
    /// The names of the group's parameters, in the order of <see cref="Params"/> (PyTorch's <c>param_names</c>), when the
    /// optimizer was built from named parameters (<c>model.named_parameters()</c>); null otherwise. A load does not match
    /// parameters by name (as in PyTorch, positions decide): the names it carries replace the group's names, and a dict
    /// without them leaves the names as they are.
    /// </summary>
    public IReadOnlyList<string>? ParamNames { get; init; }

    /// <summary>The hyperparameter called <paramref name="name"/>.</summary>
    /// <param name="name">PyTorch's name.</param>
    /// <exception cref="KeyNotFoundException">The group has no such hyperparameter.</exception>
    public object? this[string name]
    {
        get
        {
            foreach (var (key, value) in Hyperparameters)
            {
                if (key == name) return value;
            }
            throw new KeyNotFoundException($"No hyperparameter '{name}'.");
        }
    }
}
