using System.Collections.Generic;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// What an algorithm's update works on, as PyTorch's update functions do: parallel plain lists of the parameters that
/// have gradients, their gradients and their state.
/// </summary>
public sealed class StepBatch
{
    private readonly List<Parameter> _params = new();
    private readonly List<Tensor> _grads = new();
    private readonly List<ParameterState> _states = new();
    private readonly List<string> _names = new();

    /// <summary>The parameters to update.</summary>
    public IReadOnlyList<Parameter> Params => _params;

    /// <summary>Their gradients (never written to).</summary>
    public IReadOnlyList<Tensor> Grads => _grads;

    /// <summary>Their state.</summary>
    public IReadOnlyList<ParameterState> States => _states;

    /// <summary>Their names, for messages.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>How many parameters the batch holds.</summary>
    public int Count => _params.Count;

    internal void Add(Parameter parameter, Tensor grad, ParameterState state, string name)
    {
        _params.Add(parameter);
        _grads.Add(grad);
        _states.Add(state);
        _names.Add(name);
    }
}
