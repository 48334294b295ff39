using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using Optim.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// The parameters of one group that share a device and dtype, laid end to end in one contiguous buffer: each parameter,
/// its gradient and its state tensors are views of a flat tensor, so a step runs each kernel once over the buffer.
/// </summary>
/// <remarks>
/// Nothing here can make a step use stale memory silently: before every flat step <see cref="CheckGradients"/> verifies
/// that each parameter still lies where the buffer put it (by address) and that each gradient is still the buffer's
/// view (by identity and address), and the state is re-gathered whenever a parameter's <see cref="ParameterState"/>
/// changed (a load, a per-parameter step, a user's <c>Set</c>).
/// </remarks>
internal sealed class FlatBuffer : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly string[] _names;
    private readonly long[] _offsets;
    private readonly long[] _numels;
    private readonly IntPtr[] _parameterData;

    // Per parameter, the view of Grads it was given as its gradient (null until it has one), held so that its identity
    // (TensorMemory.Identity) cannot be reused by another tensor, with that identity and its data pointer.
    private readonly Tensor?[] _gradViews;
    private readonly IntPtr[] _gradIdentities;
    private readonly IntPtr[] _gradData;

    // The per-parameter states last made views of FlatState, and the watch they were given then: it is set by any change
    // made to them since (a state object that leaves the optimizer is cleared first, which sets it too).
    private readonly ParameterState?[] _aliasedStates;
    private StateWatch _watch = new() { Changed = true };

    // Per scalar key (step counts, ASGD's eta and mu, NAdam's mu_product): one element per parameter, each parameter's
    // state a 0-dim view of its element, refreshed from FlatState's 0-dim tensor after each flat step.
    private readonly Dictionary<string, Tensor> _fans = new();

    // FlatState's tensors as they were when handed out to the parameters: a tensor an algorithm replaced is handed out again.
    private readonly Dictionary<string, Tensor> _distributed = new();

    // Whether the parameters' states were made views of FlatState (an algorithm without state has an empty FlatState).
    private bool _stateAliased;

    private bool _directGradientReads = TensorMemory.DirectGradientReads;

    // The dtype's size in bytes, for the direct address reads.
    private readonly int _elementSize;

    // The buffer cut into slices for the CPU's op-by-op paths, kept from step to step while FlatState's tensors stay.
    private FlatSlices? _slices;

    /// <summary>Flattens <paramref name="parameters"/> (one device and dtype, none empty) into a new buffer.</summary>
    public FlatBuffer(IReadOnlyList<Parameter> parameters, IReadOnlyList<string> names, string description)
    {
        Description = description;
        _parameters = parameters.ToArray();
        _names = names.ToArray();
        var count = _parameters.Length;
        _offsets = new long[count];
        _numels = new long[count];
        _parameterData = new IntPtr[count];
        _gradViews = new Tensor?[count];
        _gradIdentities = new IntPtr[count];
        _gradData = new IntPtr[count];
        _aliasedStates = new ParameterState?[count];
        long total = 0;
        for (var i = 0; i < count; i++)
        {
            _offsets[i] = total;
            _numels[i] = _parameters[i].numel();
            total += _numels[i];
        }
        Numel = total;

        using var _ = no_grad();
        var first = _parameters[0];
        // The buffers outlive any dispose scope the caller (or a step) has open.
        var buffer = empty(total, first.dtype, first.device).DetachFromDisposeScope();
        _elementSize = (int)buffer.ElementSize;
        Grads = zeros(total, first.dtype, first.device).DetachFromDisposeScope();
        for (var i = 0; i < count; i++)
        {
            var p = _parameters[i];
            using (var view = ViewOf(buffer, i))
            {
                view.copy_(p);
                p.set_(view);
            }
            _parameterData[i] = TensorMemory.DataPointer(p);
            // A gradient that fits is moved into the buffer; one that does not is left for the next step to refuse.
            // A parameter without one gets the buffer's (zero) view, as after zero_grad.
            using var grad = p.grad;
            if (grad is null || Fits(grad, p))
            {
                if (grad is not null)
                {
                    using var region = ViewOf(Grads, i);
                    region.copy_(grad);
                }
                AliasGrad(i);
            }
        }
        Flat = new Parameter(buffer, requires_grad: false);
    }

    /// <summary>
    /// Whether gradients are recognised through <see cref="TensorMemory.GradIdentity"/> and addresses read in place
    /// (<see cref="TensorMemory.DirectDataPointer(Tensor, int)"/>), the default where their self-test passed, rather than through
    /// libtorch's accessors and a new handle per gradient; can only be switched off (tests and benchmarks compare the two).
    /// </summary>
    internal bool DirectGradientReads
    {
        get => _directGradientReads;
        set => _directGradientReads = value && TensorMemory.DirectGradientReads;
    }

    /// <summary>For messages: which group, device and dtype.</summary>
    public string Description { get; }

    /// <summary>The parameters' memory, end to end (a <see cref="Parameter"/>: what a <see cref="StepBatch"/> holds).</summary>
    public Parameter Flat { get; }

    /// <summary>The gradients' memory, end to end.</summary>
    public Tensor Grads { get; }

    /// <summary>The state of <see cref="Flat"/>: flat tensors for state like the parameter, 0-dim ones for scalars.</summary>
    public ParameterState FlatState { get; } = new();

    /// <summary>The number of elements.</summary>
    public long Numel { get; }

    /// <summary>The parameters, in the group's order.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>The parameters' names (for messages), in the order of <see cref="Parameters"/>.</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>Whether no parameter of the buffer has state yet (the first step creates it, flat).</summary>
    public bool HasNoState(IReadOnlyDictionary<Parameter, ParameterState> states) =>
        _parameters.All(p => !states.TryGetValue(p, out var s) || !s.IsInitialized);

    /// <summary>Set when a per-parameter step advanced the parameters' own scalar state views.</summary>
    public bool ScalarsStale { get; set; }

    /// <summary>
    /// Checks that every parameter still lies in the buffer and that every gradient is its view of <see cref="Grads"/>; a
    /// gradient that is not (autograd made a new one, the user assigned one) is checked by <paramref name="checkGradient"/>,
    /// copied into the buffer and replaced by the view. Returns false when a parameter has no gradient: the group then
    /// steps per parameter, skipping it, as without the buffer.
    /// </summary>
    /// <exception cref="InvalidOperationException">A parameter was disposed, moved or converted after flattening.</exception>
    public bool CheckGradients(Action<Parameter, Tensor, string> checkGradient)
    {
        if (AllInPlace()) return true;
        var complete = true;
        for (var i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (p.IsInvalid)
                throw new InvalidOperationException(
                    $"parameter '{_names[i]}' has been disposed. TorchSharp's Module.to(dtype) replaces a module's parameters; create the optimizer after converting the module.");
            if (DataPointer(p) != _parameterData[i])
                throw new InvalidOperationException(
                    $"parameter '{_names[i]}' no longer lies in the optimizer's flat buffer ({Description}): it was moved, converted or re-set (module.to(...), set_) after the optimizer flattened it. Move or convert the module before creating the optimizer.");
            if (GradIsView(i))
            {
                // The view, but moved in place since it was made (set_, resize_): perhaps before the last zero_grad,
                // which then zeroed the buffer, not it. Its values cannot be trusted, and the step has not begun.
                if (_directGradientReads && DataPointer(_gradViews[i]!) != _gradData[i])
                    throw new InvalidOperationException(
                        $"the gradient of parameter '{_names[i]}' was moved in place (set_ or resize_ on the view of the optimizer's flat buffer ({Description}) that flat mode made its gradient). Assign a new tensor to the parameter's grad instead.");
                continue;
            }
            // Not the view (rare: the gradient was replaced, released or moved): a handle is worth creating now.
            using var grad = p.grad;
            if (grad is null)
            {
                complete = false;
                continue;
            }
            checkGradient(p, grad, _names[i]);
            using (var region = ViewOf(Grads, i)) region.copy_(grad);
            AliasGrad(i);
        }
        return complete;
    }

    /// <summary>
    /// Zeroes every gradient: the buffer in one kernel, and every parameter whose gradient is not its view (none,
    /// another tensor, one that did not fit) gets the view back, zeroed. Each gradient is checked here, not trusted
    /// from the last step's check: one assigned since then would otherwise keep its values into the next step. (A view
    /// moved in place is left for the next step to refuse; where gradients are read through handles, it shows as
    /// another tensor and is replaced.)
    /// </summary>
    public void ZeroGrads()
    {
        Grads.zero_();
        if (AllInPlace()) return;
        for (var i = 0; i < _parameters.Length; i++)
        {
            if (!_parameters[i].IsInvalid && !GradIsView(i)) AliasGrad(i);
        }
    }

    /// <summary>Whether the parameters' states are still the views this buffer handed out (nothing replaced or reloaded).</summary>
    public bool StateIsAliased() => _stateAliased && !_watch.Changed;

    /// <summary>
    /// Why the parameters' current states cannot be gathered into flat tensors (different keys, a key that is not like
    /// the parameter or a scalar, scalars that differ between parameters), or null when they can. A parameter without
    /// state counts as a difference unless none has any (<see cref="HasNoState"/>).
    /// </summary>
    public string? GatherProblem(IReadOnlyDictionary<Parameter, ParameterState> states, StateSchema schema)
    {
        if (HasNoState(states)) return null;
        var first = StateOf(states, 0);
        if (first is null) return "a parameter has no state";
        var keys = first.Keys.ToList();
        for (var i = 0; i < _parameters.Length; i++)
        {
            var s = StateOf(states, i);
            if (s is null || s.Count != keys.Count) return "the parameters' states hold different keys";
            foreach (var key in keys)
            {
                if (!s.TryGetValue(key, out var t)) return "the parameters' states hold different keys";
                var kind = schema.Find(key)?.Kind;
                var p = _parameters[i];
                switch (kind)
                {
                    case StateKind.LikeParameter:
                        if (t.dtype != p.dtype || !Devices.Same(t, p) || t.numel() != _numels[i] || t.is_sparse) return $"state '{key}' is not like its parameter";
                        break;
                    case StateKind.Step or StateKind.Scalar:
                        var f = first[key];
                        if (t.ndim != 0 || t.dtype != f.dtype || !Devices.Same(t, f) || StateTensors.Value(t) != StateTensors.Value(f)) return $"state '{key}' differs between parameters";
                        break;
                    default:
                        return $"state '{key}' is not element-wise";
                }
            }
        }
        return null;
    }

    /// <summary>
    /// Makes the parameters' states views of <see cref="FlatState"/>: gathered from their current states (copied), or,
    /// when <paramref name="initialize"/> is given (no parameter has state), created by it on <see cref="Flat"/> as the
    /// algorithm creates a parameter's state. Call only after <see cref="GatherProblem"/> returned null.
    /// </summary>
    public void AliasState(Dictionary<Parameter, ParameterState> states, StateSchema schema, Action<ParameterState>? initialize)
    {
        FlatState.Clear();
        _distributed.Clear();
        foreach (var fan in _fans.Values) fan.Dispose();
        _fans.Clear();
        if (initialize is not null)
        {
            initialize(FlatState);
        }
        else
        {
            var first = states[_parameters[0]];
            foreach (var (key, tensor) in first)
            {
                if (schema.Find(key)?.Kind is StateKind.Step or StateKind.Scalar)
                {
                    FlatState.Set(key, tensor.clone());
                    continue;
                }
                var flat = empty(Numel, tensor.dtype, tensor.device);
                for (var i = 0; i < _parameters.Length; i++)
                {
                    using var region = ViewOf(flat, i);
                    region.copy_(states[_parameters[i]][key]);
                }
                FlatState.Set(key, flat);
            }
        }
        for (var i = 0; i < _parameters.Length; i++)
        {
            if (!states.TryGetValue(_parameters[i], out var s)) states[_parameters[i]] = s = new ParameterState();
            _aliasedStates[i] = s;
        }
        Distribute();
        _slices?.CutState();
        ScalarsStale = false;
        _stateAliased = true;
    }

    /// <summary>
    /// After a flat step: hands out what the algorithm created or replaced in <see cref="FlatState"/>, and copies each
    /// scalar into every parameter's view of it (one kernel per scalar key).
    /// </summary>
    public void SyncAfterStep()
    {
        var changed = false;
        foreach (var (key, tensor) in FlatState)
        {
            if (!_distributed.TryGetValue(key, out var handedOut) || !ReferenceEquals(handedOut, tensor))
            {
                changed = true;
                continue;
            }
            if (_fans.TryGetValue(key, out var fan)) fan.copy_(tensor);
        }
        if (changed) Distribute();
        // Slices whose state the step replaced hold the step's own tensors: they view the new state from now on.
        if (_slices is not null && !_slices.IsCurrent()) _slices.CutState();
    }

    /// <summary>
    /// Before a flat step after per-parameter steps: takes the scalars back from the parameters' views, or returns
    /// false when they now differ (a parameter was skipped), and the buffer can no longer step as one.
    /// </summary>
    public bool TakeBackScalars()
    {
        foreach (var (key, fan) in _fans)
        {
            using var scope = NewDisposeScope();
            if (!fan.eq(fan[0]).all().item<bool>()) return false;
            FlatState[key].copy_(fan[0]);
        }
        ScalarsStale = false;
        return true;
    }

    /// <summary>
    /// The buffer cut into slices of <paramref name="sliceElements"/> (see <see cref="FlatSlices"/>), cut again when
    /// <see cref="FlatState"/>'s tensors or the size changed.
    /// </summary>
    public FlatSlices Slices(long sliceElements)
    {
        if (_slices is null || _slices.SliceElements != sliceElements)
        {
            DropSlices();
            _slices = new FlatSlices(Flat, Grads, FlatState, sliceElements, $"flat buffer ({Description})");
        }
        else if (!_slices.IsCurrent())
        {
            _slices.CutState();
        }
        return _slices;
    }

    /// <summary>Frees the buffer's own tensors; the parameters, gradients and states keep the memory they view.</summary>
    public void Dispose()
    {
        DropSlices();
        // Forgotten as well as freed: a check after this must not read the views' freed TensorImpls.
        for (var i = 0; i < _gradViews.Length; i++)
        {
            _gradViews[i]?.Dispose();
            _gradViews[i] = null;
            _gradIdentities[i] = IntPtr.Zero;
        }
        FlatState.Clear();
        foreach (var fan in _fans.Values) fan.Dispose();
        _fans.Clear();
        _distributed.Clear();
        Grads.Dispose();
        Flat.Dispose();
    }

    // Hands every FlatState tensor out as views: like-parameter tensors by region, scalars through a fan.
    private void Distribute()
    {
        foreach (var (key, tensor) in FlatState)
        {
            if (_distributed.TryGetValue(key, out var handedOut) && ReferenceEquals(handedOut, tensor)) continue;
            _distributed[key] = tensor;
            if (tensor.ndim == 0)
            {
                if (_fans.Remove(key, out var old)) old.Dispose();
                var fan = tensor.expand(_parameters.Length).clone().DetachFromDisposeScope();
                _fans[key] = fan;
                for (var i = 0; i < _parameters.Length; i++) _aliasedStates[i]!.Set(key, fan.select(0, i));
            }
            else
            {
                for (var i = 0; i < _parameters.Length; i++) _aliasedStates[i]!.Set(key, ViewOf(tensor, i));
            }
        }
        // A new watch each time: the changes made just above, and any made to states no longer aliased, are not this one's.
        _watch = new StateWatch();
        for (var i = 0; i < _parameters.Length; i++)
        {
            _aliasedStates[i]!.IsInitialized = true;
            _aliasedStates[i]!.Watch = _watch;
        }
    }

    private void DropSlices()
    {
        _slices?.Dispose();
        _slices = null;
    }

    private static bool Fits(Tensor grad, Tensor p) => !grad.is_sparse && grad.dtype == p.dtype && Devices.Same(grad, p) && grad.shape.SequenceEqual(p.shape);

    private ParameterState? StateOf(IReadOnlyDictionary<Parameter, ParameterState> states, int i) =>
        states.TryGetValue(_parameters[i], out var s) && s.IsInitialized ? s : null;

    // The region of parameter i in a flat tensor, shaped as the parameter.
    private Tensor ViewOf(Tensor flat, int i)
    {
        // The narrow is only a step to the view: its wrapper is freed here, not left to the finalizer.
        using var region = flat.narrow(0, _offsets[i], _numels[i]);
        return region.view(_parameters[i].shape);
    }

    // What CheckGradients checks, read only, where the direct reads hold: true when every parameter lies where the buffer
    // put it and every gradient is still its view, unmoved (the usual case, and then there is nothing to do); false sends
    // CheckGradients through its per-parameter loop, which finds what changed. The reads are a chain of dependent cache
    // misses per parameter (handle, TensorImpl, autograd metadata), so each link is prefetched a few parameters ahead.
    // Compiled fully optimized at once: the first steps of a run would otherwise take it unoptimized, at twice the cost.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal bool AllInPlace()
    {
        if (!_directGradientReads) return false;
        const int Ahead = 8;
        var count = _parameters.Length;
        // Each parameter's handle, read once (TorchSharp's getter is a call): a ring of the handles in flight.
        Span<IntPtr> handles = stackalloc IntPtr[4 * Ahead];
        const int Mask = 4 * Ahead - 1;
        for (var i = -2 * Ahead; i < count; i++)
        {
            var far = i + 2 * Ahead;
            if (far < count)
            {
                // The views are held, so their identities stay theirs: their fields are read without their handles.
                var p = _parameters[far];
                if (p.IsInvalid || _gradViews[far] is null) return false;
                handles[far & Mask] = p.Handle;
                TensorMemory.PrefetchHandle(handles[far & Mask]);
                TensorMemory.PrefetchImpl(_gradIdentities[far]);
            }
            var near = i + Ahead;
            if (near >= 0 && near < count) TensorMemory.PrefetchImpl(TensorMemory.IdentityOf(handles[near & Mask]));
            var nearer = i + Ahead / 2;
            if (nearer >= 0 && nearer < count) TensorMemory.PrefetchAutogradMeta(TensorMemory.IdentityOf(handles[nearer & Mask]));
            if (i < 0) continue;
            var impl = TensorMemory.IdentityOf(handles[i & Mask]);
            if (TensorMemory.DirectDataPointer(impl, _elementSize) != _parameterData[i]
                || TensorMemory.DirectGradIdentity(impl) != _gradIdentities[i]
                || TensorMemory.DirectDataPointer(_gradIdentities[i], _elementSize) != _gradData[i])
                return false;
        }
        return true;
    }

    // A tensor's address (TensorMemory.DataPointer), read in place where the direct reads hold.
    private IntPtr DataPointer(Tensor t) => _directGradientReads ? TensorMemory.DirectDataPointer(t, _elementSize) : TensorMemory.DataPointer(t);

    // Whether parameter i's gradient is the view of Grads it was given: read directly, the same tensor (not one that
    // replaced it; set_ and resize_ move a tensor without changing its identity, which CheckGradients looks for);
    // through a handle, a tensor whose first element lies where the view's did.
    private bool GradIsView(int i)
    {
        if (_gradViews[i] is null) return false;
        return _directGradientReads
            ? TensorMemory.GradIdentity(_parameters[i]) == _gradIdentities[i]
            : TensorMemory.GradDataPointer(_parameters[i]) == _gradData[i];
    }

    private void AliasGrad(int i)
    {
        // Held past any dispose scope the caller (or a step) has open, until replaced or the buffer is disposed.
        var view = ViewOf(Grads, i).DetachFromDisposeScope();
        _parameters[i].grad = view;
        _gradViews[i]?.Dispose();
        _gradViews[i] = view;
        _gradIdentities[i] = TensorMemory.Identity(view);
        _gradData[i] = TensorMemory.DataPointer(view);
    }
}
