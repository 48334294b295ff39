using System.Collections.Generic;
using TorchSharp;
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

    /// <summary>The batch split by (device, dtype), order kept inside each part: what foreach and fused kernels take.</summary>
    public IReadOnlyList<StepBatch> ByDeviceAndDtype()
    {
        // Plain loops: this runs for every parameter on every step, and one bucket is by far the common case.
        var keys = new List<(DeviceType Type, int Index, ScalarType Dtype)>(1);
        var bucketOf = new int[Count];
        for (var i = 0; i < Count; i++)
        {
            var p = _params[i];
            var key = (p.device_type, p.device_index, p.dtype);
            var b = keys.IndexOf(key);
            if (b < 0)
            {
                keys.Add(key);
                b = keys.Count - 1;
            }
            bucketOf[i] = b;
        }
        if (keys.Count <= 1) return new[] { this };

        var buckets = new StepBatch[keys.Count];
        for (var b = 0; b < buckets.Length; b++) buckets[b] = new StepBatch();
        for (var i = 0; i < Count; i++) buckets[bucketOf[i]].Add(_params[i], _grads[i], _states[i], _names[i]);
        return buckets;
    }

    internal void Add(Parameter parameter, Tensor grad, ParameterState state, string name)
    {
        _params.Add(parameter);
        _grads.Add(grad);
        _states.Add(state);
        _names.Add(name);
    }
}
