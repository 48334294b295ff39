using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim;

/// <summary>What a per-parameter state tensor must look like.</summary>
public enum StateKind
{
    /// <summary>A step counter: a 0-dim float32 or float64 tensor, on the CPU or the parameter's device (PyTorch's <c>step</c>).</summary>
    Step,

    /// <summary>
    /// A 0-dim float32 or float64 value on the parameter's device or the CPU (ASGD's <c>eta</c> and <c>mu</c>, NAdam's
    /// <c>mu_product</c>). A load keeps its dtype and device, as for step counts; PyTorch casts it to the parameter's
    /// dtype, which rounds it for float16/bfloat16 parameters and changes a resumed float64 NAdam run.
    /// </summary>
    Scalar,

    /// <summary>A tensor like the parameter: same shape, dtype and device, dense, laid out as the parameter or contiguous.</summary>
    LikeParameter,

    /// <summary>
    /// A tensor like the parameter but for some dimensions reduced to 1 (Adafactor's <c>row_var</c> and <c>col_var</c>):
    /// same dtype, device and number of dimensions, each dimension the parameter's or 1, dense and contiguous.
    /// </summary>
    Reduced,
}

/// <summary>One key of an algorithm's per-parameter state.</summary>
/// <param name="Name">PyTorch's key.</param>
/// <param name="Kind">What the tensor must look like.</param>
/// <param name="Required">Whether every initialized state holds it (false for buffers created on demand).</param>
public sealed record StateKey(string Name, StateKind Kind, bool Required);

/// <summary>
/// The per-parameter state an algorithm keeps, declared once next to it. The optimizer enforces it before every step
/// (so no kernel ever gets a state tensor that does not fit its parameter, whatever was put in through the public API or
/// done to the parameter) and on every load, which normalizes what it accepts and rejects the rest.
/// </summary>
public sealed class StateSchema
{
    private readonly List<StateKey> _keys = new();
    private readonly Dictionary<string, Func<Tensor, bool>> _requiredWhen = new();

    /// <summary>The declared keys, in PyTorch's order.</summary>
    public IReadOnlyList<StateKey> Keys => _keys;

    /// <summary>Declares a step counter.</summary>
    /// <param name="name">The key.</param>
    /// <param name="required">Whether every initialized state holds it.</param>
    public StateSchema Step(string name, bool required = true) => Add(new StateKey(name, StateKind.Step, required));

    /// <summary>Declares a 0-dim value (see <see cref="StateKind.Scalar"/>).</summary>
    /// <param name="name">The key.</param>
    /// <param name="required">Whether every initialized state holds it.</param>
    public StateSchema Scalar(string name, bool required = true) => Add(new StateKey(name, StateKind.Scalar, required));

    /// <summary>Declares a tensor like the parameter.</summary>
    /// <param name="name">The key.</param>
    /// <param name="required">Whether every initialized state holds it.</param>
    public StateSchema LikeParameter(string name, bool required = true) => Add(new StateKey(name, StateKind.LikeParameter, required));

    /// <summary>Declares a tensor like the parameter with some dimensions reduced to 1 (see <see cref="StateKind.Reduced"/>).</summary>
    /// <param name="name">The key.</param>
    /// <param name="required">Whether every initialized state holds it.</param>
    public StateSchema Reduced(string name, bool required = true) => Add(new StateKey(name, StateKind.Reduced, required));

    // Makes a declared optional key required for the parameters that satisfy the predicate (Adafactor: row_var and
    // col_var for two or more dimensions, variance otherwise).
    internal StateSchema RequiredWhen(string name, Func<Tensor, bool> predicate)
    {
        if (Find(name) is null) throw new InvalidOperationException($"state key '{name}' is not declared.");
        _requiredWhen[name] = predicate;
        return this;
    }

    /// <summary>The declaration of <paramref name="name"/>, or null.</summary>
    /// <param name="name">The key.</param>
    public StateKey? Find(string name) => _keys.Find(k => k.Name == name);

    private StateSchema Add(StateKey key)
    {
        if (Find(key.Name) is not null) throw new InvalidOperationException($"state key '{key.Name}' is declared twice.");
        _keys.Add(key);
        return this;
    }

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the parameter and key unless <paramref name="state"/> fits
    /// <paramref name="parameter"/>: every required key present, every tensor alive and of its declared kind.
    /// </summary>
    /// <param name="parameter">The parameter.</param>
    /// <param name="state">Its state.</param>
    /// <param name="name">The parameter's name, for the message.</param>
    /// <param name="argument">The argument to name in the exception.</param>
    public void Validate(Tensor parameter, IReadOnlyDictionary<string, Tensor> state, string name, string argument)
    {
        var problem = FindProblem(parameter, state, name);
        if (problem is not null) throw new ArgumentException(problem, argument);
    }

    /// <summary>What is wrong with <paramref name="state"/> for <paramref name="parameter"/> (see <see cref="Validate"/>), or null.</summary>
    /// <param name="parameter">The parameter.</param>
    /// <param name="state">Its state.</param>
    /// <param name="name">The parameter's name, for the message.</param>
    public string? FindProblem(Tensor parameter, IReadOnlyDictionary<string, Tensor> state, string name) =>
        FindProblem(parameter, state, name, masterKey: null);

    // With masterKey (master weights of a float16/bfloat16 parameter), the state must hold a float32 copy of the
    // parameter under that key, and the algorithm's tensors are checked against the copy rather than the parameter.
    internal string? FindProblem(Tensor parameter, IReadOnlyDictionary<string, Tensor> state, string name, string? masterKey)
    {
        var like = parameter;
        if (masterKey is not null)
        {
            if (!state.TryGetValue(masterKey, out var master)) return $"the state of parameter '{name}' has no '{masterKey}' (its float32 master weights)";
            if (Problem(StateKind.LikeParameter, master, parameter, ScalarType.Float32) is { } masterProblem)
                return $"state '{masterKey}' of parameter '{name}' {masterProblem}";
            like = master;
        }
        foreach (var key in _keys)
        {
            var required = key.Required || (_requiredWhen.TryGetValue(key.Name, out var when) && when(parameter));
            if (required && !state.ContainsKey(key.Name)) return $"the state of parameter '{name}' has no '{key.Name}'";
        }
        foreach (var (keyName, tensor) in state)
        {
            if (keyName == masterKey) continue;
            var key = Find(keyName);
            if (key is null && keyName == Optimizer.MasterWeightsKey)
                return $"the state of parameter '{name}' has '{keyName}', which is kept only for float16 and bfloat16 parameters with MasterWeights on";
            if (key is null) return $"the state of parameter '{name}' has '{keyName}', which this algorithm does not keep";
            var problem = Problem(key.Kind, tensor, like);
            if (problem is not null) return $"state '{keyName}' of parameter '{name}' {problem}";
        }
        return null;
    }

    // Null when the tensor fits; otherwise what is wrong, for the message. Cheap: a few property reads per tensor.
    internal static string? Problem(StateKind kind, Tensor t, Tensor parameter, ScalarType? dtype = null)
    {
        if (t is null || t.IsInvalid) return "has been disposed";
        if (t.is_sparse) return "is sparse, not a dense tensor";
        if (t.device_type == DeviceType.META) return "is on the meta device (it holds no values)";
        if (kind is StateKind.Step or StateKind.Scalar)
        {
            if (t.ndim != 0) return $"must be a 0-dim value, not of shape [{string.Join(", ", t.shape)}]";
            if (t.dtype is not (ScalarType.Float32 or ScalarType.Float64)) return $"must be a float32 or float64 value, not {t.dtype}";
            if (t.device_type != DeviceType.CPU && !Devices.Same(t, parameter)) return $"is on {t.device}, not on the CPU or the parameter's device";
            return null;
        }
        if (dtype is { } expected)
        {
            if (t.dtype != expected) return $"is {t.dtype}, not {expected}";
        }
        else if (t.dtype != parameter.dtype) return $"is {t.dtype}, but the parameter is {parameter.dtype}";
        if (!Devices.Same(t, parameter)) return $"is on {t.device}, but the parameter is on {parameter.device}";
        var ndim = t.ndim;
        var sameShape = ndim == parameter.ndim;
        for (var d = 0; sameShape && d < ndim; d++) sameShape = t.size(d) == parameter.size(d) || (kind == StateKind.Reduced && t.size(d) == 1);
        if (!sameShape) return $"has shape [{string.Join(", ", t.shape)}], but the parameter has shape [{string.Join(", ", parameter.shape)}]";
        if (!t.is_contiguous() && !(parameter.is_contiguous() == false && t.stride().SequenceEqual(parameter.stride())))
            return "is not contiguous (and not laid out as its parameter)";
        return null;
    }

    /// <summary>
    /// A copy of <paramref name="tensor"/> as the optimizer keeps it for <paramref name="parameter"/> (PyTorch's load
    /// rule: state follows the parameter's device and floating dtype, except step counts, which stay float on the CPU or
    /// the parameter's device), contiguous; an <see cref="ArgumentException"/> for what cannot be made to fit.
    /// </summary>
    /// <remarks>
    /// A <paramref name="staged"/> tensor (new, owned by a checkpoint reader) that already fits is taken over rather than
    /// copied, so a load needs the new state's memory once, not twice. With <paramref name="likeDtype"/> (master weights),
    /// tensors like the parameter take that dtype instead of the parameter's.
    /// </remarks>
    internal static Tensor Normalize(StateKind kind, Tensor tensor, Tensor parameter, string describe, string argument, bool staged = false,
        ScalarType? likeDtype = null)
    {
        if (tensor is null || tensor.IsInvalid) throw new ArgumentException($"{describe} has been disposed", argument);
        if (tensor.is_sparse) throw new ArgumentException($"{describe} is sparse, not a dense tensor", argument);
        if (tensor.device_type == DeviceType.META) throw new ArgumentException($"{describe} is on the meta device (it holds no values)", argument);
        using var scope = NewDisposeScope();
        Tensor copy;
        if (kind is StateKind.Step or StateKind.Scalar)
        {
            if (tensor.numel() != 1)
                throw new ArgumentException($"{describe} must be a single value, not of shape [{string.Join(", ", tensor.shape)}]", argument);
            if (tensor.dtype == ScalarType.Bool || tensor.is_complex())
                throw new ArgumentException($"{describe} must be a number, not {tensor.dtype}", argument);
            var dtype = tensor.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            var device = tensor.device_type == DeviceType.CPU || Devices.Same(tensor, parameter) ? tensor.device : torch.CPU;
            copy = tensor.detach().reshape(Array.Empty<long>()).to(dtype, device).clone();
            var value = copy.to(ScalarType.Float64).item<double>();
            if (!double.IsFinite(value) || (kind == StateKind.Step && value < 0))
                throw new ArgumentException($"{describe} is {value}, not a {(kind == StateKind.Step ? "step count" : "finite value")}", argument);
        }
        else
        {
            if (kind == StateKind.Reduced
                    ? tensor.ndim != parameter.ndim || tensor.shape.Where((n, d) => n != 1 && n != parameter.shape[d]).Any()
                    : !tensor.shape.SequenceEqual(parameter.shape))
                throw new ArgumentException(
                    $"{describe} has shape [{string.Join(", ", tensor.shape)}], but the parameter has shape [{string.Join(", ", parameter.shape)}]", argument);
            if (tensor.is_complex() != parameter.is_complex() || tensor.dtype == ScalarType.Bool)
                throw new ArgumentException($"{describe} is {tensor.dtype}, which cannot hold state of a {parameter.dtype} parameter", argument);
            var moved = tensor.detach().to(likeDtype ?? parameter.dtype, parameter.device);
            copy = staged && moved.is_contiguous() ? moved : moved.contiguous().clone();
        }
        return copy.DetachFromDisposeScope();
    }

}
