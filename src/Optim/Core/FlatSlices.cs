using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// A CPU flat buffer cut into slices, so that the for-loop's ops (and foreach's, one call per slice) run over one
/// cache-sized slice at a time: an op over the whole buffer streams it through memory, and the next op streams it again,
/// where a slice stays in cache from one op to the next. The update is element-wise, so the bits are those of one pass
/// over the whole buffer.
/// </summary>
/// <remarks>
/// Each slice is a <see cref="StepBatch"/> entry: a view of <see cref="FlatBuffer.Flat"/>, of <see cref="FlatBuffer.Grads"/>
/// and of every like-parameter tensor of <see cref="FlatBuffer.FlatState"/>. Scalar state (step counts, ASGD's
/// <c>eta</c> and <c>mu</c>, NAdam's <c>mu_product</c>) advances once per slice, so each slice steps its own copy: one
/// element of a per-key fan, filled from the flat scalar before the step and read back from after it, where every
/// slice must have come to the same value. State the algorithm creates or replaces during the step (a momentum buffer
/// made on the first step) is gathered back into <see cref="FlatBuffer.FlatState"/>, whose tensors stay the truth.
/// </remarks>
internal sealed class FlatSlices : IDisposable
{
    /// <summary>
    /// Elements per slice unless a test asks for others, chosen by measurement (docs/benchmarks.md): 1 MiB of fp32 per
    /// tensor, so that an op's operands and result stay in cache for the next op.
    /// </summary>
    public const long DefaultElements = 1 << 18;

    private readonly ParameterState _flatState;
    private readonly long[] _starts;
    private readonly long[] _lengths;

    // FlatState's entries when the state was last cut: the slices' states view these tensors.
    private KeyValuePair<string, Tensor>[] _cutFrom = Array.Empty<KeyValuePair<string, Tensor>>();

    // Per scalar key of FlatState: one element per slice, each slice's state a 0-dim view of its element.
    private readonly Dictionary<string, Tensor> _fans = new();

    // Each slice state's version after cutting (a slice whose version moved had state created or replaced by the step)
    // and the views it was given, in the order of _cutFrom.
    private readonly int[] _versions;
    private readonly Tensor[][] _views;

    private StepBatch[]? _one;

    /// <summary>
    /// Cuts <paramref name="flat"/> and <paramref name="grads"/> into slices of <paramref name="sliceElements"/> (the
    /// last one shorter), and <paramref name="flatState"/> as it is now (see <see cref="CutState"/>).
    /// </summary>
    public FlatSlices(Parameter flat, Tensor grads, ParameterState flatState, long sliceElements, string description)
    {
        _flatState = flatState;
        SliceElements = sliceElements;
        var numel = flat.numel();
        var count = (int)((numel + sliceElements - 1) / sliceElements);
        _starts = new long[count];
        _lengths = new long[count];
        _versions = new int[count];
        _views = new Tensor[count][];
        for (var s = 0; s < count; s++)
        {
            _starts[s] = s * sliceElements;
            _lengths[s] = Math.Min(sliceElements, numel - _starts[s]);
            // The views outlive any dispose scope the caller has open, as the buffer does. The slices of the
            // parameters and gradients are cut once: the buffer's memory never moves.
            var parameter = new Parameter(flat.narrow(0, _starts[s], _lengths[s]), requires_grad: false);
            parameter.DetachFromDisposeScope();
            Batch.Add(parameter, grads.narrow(0, _starts[s], _lengths[s]).DetachFromDisposeScope(), new ParameterState(), $"{description}, slice {s}");
        }
        CutState();
    }

    /// <summary>The elements of every slice but the last.</summary>
    public long SliceElements { get; }

    /// <summary>One entry per slice, in order: what the for-loop steps.</summary>
    public StepBatch Batch { get; } = new();

    /// <summary>The same slices, one batch each: what foreach steps, one call per slice.</summary>
    public IReadOnlyList<StepBatch> One => _one ??= Enumerable.Range(0, Batch.Count).Select(s =>
    {
        var one = new StepBatch();
        one.Add(Batch.Params[s], Batch.Grads[s], Batch.States[s], Batch.Names[s]);
        return one;
    }).ToArray();

    /// <summary>Whether the slices' states still view the buffer's state as it is now.</summary>
    public bool IsCurrent()
    {
        if (_flatState.Count != _cutFrom.Length) return false;
        var i = 0;
        foreach (var (key, tensor) in _flatState)
        {
            if (_cutFrom[i].Key != key || !ReferenceEquals(_cutFrom[i].Value, tensor)) return false;
            i++;
        }
        return true;
    }

    /// <summary>
    /// Makes every slice's state views of the buffer's state as it is now: like-parameter tensors by slice, scalars
    /// through a fan (what the slices held before is freed).
    /// </summary>
    public void CutState()
    {
        _cutFrom = _flatState.ToArray();
        DisposeFans();
        foreach (var (key, tensor) in _cutFrom)
        {
            if (tensor.ndim == 0) _fans[key] = empty(Batch.Count, tensor.dtype, tensor.device).DetachFromDisposeScope();
        }
        for (var s = 0; s < Batch.Count; s++)
        {
            var state = Batch.States[s];
            state.Clear();
            _views[s] = Array.ConvertAll(_cutFrom, e => e.Value.ndim == 0 ? _fans[e.Key].select(0, s) : e.Value.narrow(0, _starts[s], _lengths[s]));
            for (var k = 0; k < _cutFrom.Length; k++) state.Set(_cutFrom[k].Key, _views[s][k]);
            state.IsInitialized = true;
            _versions[s] = state.Version;
        }
    }

    /// <summary>Before a step: every slice's scalars take the buffer's values.</summary>
    public void Begin()
    {
        foreach (var (key, fan) in _fans) fan.copy_(_flatState[key]);
    }

    /// <summary>
    /// After a step: the buffer's scalars take the slices' (which must agree), and state the step created or replaced
    /// in the slices is gathered into the buffer's (then the slices are no longer <see cref="IsCurrent"/> until
    /// <see cref="CutState"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The slices' state came apart: the update was not element-wise.</exception>
    public void End()
    {
        var changed = false;
        for (var s = 0; s < _versions.Length; s++) changed |= Batch.States[s].Version != _versions[s];
        if (changed) GatherChanged();
        foreach (var (key, fan) in _fans)
        {
            // A scalar the step replaced was gathered above.
            if (!_flatState.TryGetValue(key, out var scalar) || !ReferenceEquals(scalar, CutTensor(key))) continue;
            using var scope = NewDisposeScope();
            var first = fan[0];
            if (!fan.isclose(first, rtol: 0, atol: 0, nanEqual: true).all().item<bool>()) throw Apart(key);
            scalar.copy_(first);
        }
    }

    /// <summary>Frees the views (the buffer's memory stays).</summary>
    public void Dispose()
    {
        for (var s = 0; s < Batch.Count; s++)
        {
            Batch.States[s].Clear();
            Batch.Params[s].Dispose();
            Batch.Grads[s].Dispose();
        }
        DisposeFans();
    }

    private void DisposeFans()
    {
        foreach (var fan in _fans.Values) fan.Dispose();
        _fans.Clear();
    }

    // The step created, replaced or removed state in the slices (their keys and order agree, the update being the
    // same for every slice): the buffer's state takes it, like-parameter tensors laid end to end, scalars from slice 0.
    private void GatherChanged()
    {
        var first = Batch.States[0];
        if (Batch.States.Any(s => s.Count != first.Count)) throw Apart(first.Keys.FirstOrDefault() ?? "");
        foreach (var (key, tensor) in first)
        {
            var slices = Batch.States.Select(s => s.Get(key) ?? throw Apart(key)).ToArray();
            var k = Array.FindIndex(_cutFrom, e => e.Key == key);
            if (k >= 0 && slices.Select((t, s) => ReferenceEquals(t, _views[s][k])).All(same => same)) continue;
            if (tensor.ndim == 0)
            {
                if (slices.Any(t => t.ndim != 0 || !StateTensors.Value(t).Equals(StateTensors.Value(tensor)))) throw Apart(key);
                _flatState.Set(key, tensor.clone());
            }
            else
            {
                using var scope = NewDisposeScope();
                _flatState.Set(key, cat(slices.Select(t => t.reshape(-1)).ToArray()).MoveToOuterDisposeScope());
            }
        }
        foreach (var key in _flatState.Keys.Where(k => !first.ContainsKey(k)).ToList()) _flatState.Remove(key);
    }

    private Tensor? CutTensor(string key) => Array.Find(_cutFrom, e => e.Key == key).Value;

    private static InvalidOperationException Apart(string key) =>
        new($"the slices of a flat buffer disagree on state '{key}' after a step: the algorithm's update is not element-wise; create the optimizer without flat: true");
}
