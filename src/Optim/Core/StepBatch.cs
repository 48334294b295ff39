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
        var buckets = new List<(DeviceType Type, int Index, ScalarType Dtype, StepBatch Batch)>();
        for (var i = 0; i < Count; i++)
        {
            var p = _params[i];
            var bucket = buckets.Find(b => b.Type == p.device_type && b.Index == p.device_index && b.Dtype == p.dtype).Batch;
            if (bucket is null)
            {
                bucket = new StepBatch();
                buckets.Add((p.device_type, p.device_index, p.dtype, bucket));
            }
            bucket.Add(p, _grads[i], _states[i], _names[i]);
        }
        return buckets.Count == 1 ? new[] { this } : buckets.ConvertAll(b => b.Batch);
    }

    internal void Add(Parameter parameter, Tensor grad, ParameterState state, string name)
    {
        _params.Add(parameter);
        _grads.Add(grad);
        _states.Add(state);
        _names.Add(name);
    }
}
