using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim;

// Flat mode: each group's parameters of one device and dtype live in one buffer (FlatBuffer), so a step runs each of
// its path's kernels once per buffer instead of once per parameter.
public abstract partial class Optimizer<TOptions>
{
    // Per group (same index as _groups): its buffers, or null where the group is not flattened.
    private readonly List<List<FlatBuffer>?> _flatBuffers = new();

    /// <summary>
    /// Whether the optimizer keeps its parameters flat (the constructors' <c>flat</c> argument): each group's parameters
    /// of one device and dtype are views of one contiguous buffer, their gradients views of another and their state
    /// views of flat state tensors, so a step runs each kernel once per buffer (on the CPU, the for-loop's and foreach's
    /// ops run over a large buffer a cache-sized slice at a time, so that each op finds its operands in cache). The path
    /// (<see cref="Implementation"/>) still picks the kernels; the numbers are those of the same path without flat
    /// buffers. A group steps per
    /// parameter, as without the buffer, while a parameter has no gradient, and an algorithm whose update is not
    /// element-wise (<see cref="Adafactor"/>, <see cref="LBFGS"/>) always does.
    /// </summary>
    /// <remarks>
    /// In flat mode every gradient is a view of the buffer: <c>zero_grad</c> zeroes the buffer in one kernel whatever
    /// <c>set_to_none</c> says (PyTorch's <c>set_to_none=False</c>), so a parameter that gets no gradient from the
    /// next backward steps with a zero gradient; every gradient that is not the buffer's view (none, replaced) becomes one again. A gradient that is not the buffer's view when a step starts (after
    /// TorchSharp's <c>Module.zero_grad()</c>, or assigned) is checked, copied into the buffer and replaced by the view.
    /// Moving or converting the parameters after flattening (<c>module.to(...)</c>) makes the next step throw. State
    /// dicts and checkpoints are those of the same optimizer without flat buffers. Disposing the optimizer leaves
    /// the parameters and gradients valid.
    /// </remarks>
    public bool Flat { get; private set; }

    /// <summary>
    /// Whether the algorithm's update treats every element on its own, so that running it on the concatenation of
    /// parameters is running it on each (false where it reduces over a parameter: norms, factored moments).
    /// </summary>
    protected virtual bool UpdateIsElementWise => true;

    /// <summary>
    /// Switches flat mode on when <paramref name="flat"/> is true: flattens every group. An algorithm's constructors end
    /// with a <c>flat</c> argument and call this last, as the library's own do.
    /// </summary>
    /// <param name="flat">The constructor's <c>flat</c> argument.</param>
    /// <exception cref="ArgumentException">The algorithm takes sparse gradients, which cannot be views of a buffer.</exception>
    protected void UseFlatParameters(bool flat) => EnableFlat(flat);

    // For the catalog, which creates optimizers through their group constructors.
    internal void EnableFlat(bool flat)
    {
        if (!flat || Flat) return;
        if (RequiresSparseGradients)
            throw new ArgumentException($"{GetType().Name} has no flat mode: its gradients are sparse, and a sparse gradient cannot be a view of a flat buffer.", nameof(flat));
        Flat = true;
        for (var g = 0; g < _groups.Count; g++) FlattenGroup(g);
    }

    // Builds group g's buffers; groups added before flat mode was switched on have no entry yet.
    private void FlattenGroup(int g)
    {
        while (_flatBuffers.Count <= g) _flatBuffers.Add(null);
        var group = _groups[g];
        // An empty parameter has no memory to alias: such a group keeps its parameters as they are.
        if (group.Parameters.Any(p => p.numel() == 0)) return;
        var buffers = new List<FlatBuffer>();
        foreach (var sameKind in group.Parameters.Select((p, i) => (p, i)).GroupBy(e => (e.p.device_type, e.p.device_index, e.p.dtype)))
        {
            var members = sameKind.ToList();
            buffers.Add(new FlatBuffer(members.ConvertAll(e => e.p), members.ConvertAll(e => group.Names[e.i]),
                $"group {g}, {sameKind.Key.dtype} on {members[0].p.device}"));
        }
        _flatBuffers[g] = buffers;
    }

    /// <summary>How many group steps ran as flat steps (for tests: the flat path was taken, not the per-parameter one).</summary>
    internal int FlatStepCount { get; private set; }

    /// <summary>
    /// Elements per slice where a CPU buffer steps slice by slice on the for-loop and foreach paths (see
    /// <see cref="FlatSlices"/>); a buffer of at most this many elements steps whole. Tests set it small.
    /// </summary>
    internal long FlatSliceElements { get; set; } = FlatSlices.DefaultElements;

    /// <summary>How many slices the sliced flat steps ran over (for tests: slicing was exercised).</summary>
    internal int FlatSliceCount { get; private set; }

    /// <summary>Group <paramref name="g"/>'s flat buffers, or null (for tests).</summary>
    internal override IReadOnlyList<FlatBuffer>? FlatBuffersOf(int g) => g < _flatBuffers.Count ? _flatBuffers[g] : null;

    // Which groups take the flat step: every buffer's parameters in place, every gradient present (foreign ones are
    // adopted here), no master weights, and state that is flat or can be gathered. Checks everything a step checks
    // for these groups; changes no value.
    private bool[] PlanFlatSteps()
    {
        var flat = new bool[_groups.Count];
        if (!Flat) return flat;
        for (var g = 0; g < _groups.Count; g++)
        {
            var buffers = FlatBuffersOf(g);
            if (buffers is null || !UpdateIsElementWise) continue;
            var ready = true;
            foreach (var buffer in buffers)
            {
                ready &= buffer.CheckGradients(CheckGradient);
                ready &= !UsesMaster(buffer.Flat);
            }
            if (!ready) continue;
            foreach (var buffer in buffers)
            {
                if (buffer.StateIsAliased())
                {
                    // Per-parameter steps advanced the parameters' scalar views: take them back if they still agree.
                    if (buffer.ScalarsStale && !buffer.TakeBackScalars())
                    {
                        ready = false;
                        break;
                    }
                    continue;
                }
                if (buffer.GatherProblem(_state, StateSchema) is not null)
                {
                    ready = false;
                    break;
                }
                for (var i = 0; i < buffer.Parameters.Count; i++)
                {
                    var p = buffer.Parameters[i];
                    if (_state.TryGetValue(p, out var s) && s.IsInitialized && StateSchema.FindProblem(p, s, buffer.Names[i], null) is { } problem)
                        throw new InvalidOperationException(problem);
                }
            }
            if (ready && CheckFiniteGradients)
            {
                foreach (var buffer in buffers)
                {
                    if (!buffer.Grads.isfinite().all().item<bool>()) CheckFinite(g);
                }
            }
            flat[g] = ready;
        }
        return flat;
    }

    // Names the first parameter of group g whose gradient is not finite.
    private void CheckFinite(int g)
    {
        var group = _groups[g];
        for (var i = 0; i < group.Parameters.Count; i++)
        {
            using var grad = group.Parameters[i].grad;
            if (grad is not null && !grad.isfinite().all().item<bool>())
                throw new InvalidOperationException($"the gradient of parameter '{group.Names[i]}' contains NaN or infinity");
        }
    }

    // Group g's flat step: gathers (or creates) the flat state where the parameters' states changed, then runs the
    // group's path once per buffer.
    private void FlatStep(int g)
    {
        FlatStepCount++;
        var options = _groups[g].Options;
        foreach (var buffer in FlatBuffersOf(g)!)
        {
            if (!buffer.StateIsAliased())
            {
                // PlanFlatSteps found the states gatherable; only whether they are yet to be created matters here.
                buffer.AliasState(_state, StateSchema, buffer.HasNoState(_state) ? state => InitializeState(options, buffer.Flat, state) : null);
            }
            var path = FlatPath(options.Implementation, buffer.Flat);
            // On the CPU an op over a large buffer streams it through memory, and the next op streams it again: the
            // op-by-op paths step it a cache-sized slice at a time. ATen's fused kernels make one pass already.
            if (path != Implementation.Fused && buffer.Flat.device_type == DeviceType.CPU && buffer.Numel > FlatSliceElements)
            {
                StepInSlices(options, buffer.Slices(FlatSliceElements), path);
            }
            else
            {
                var batch = new StepBatch();
                batch.Add(buffer.Flat, buffer.Grads, buffer.FlatState, $"flat buffer ({buffer.Description})");
                switch (path)
                {
                    case Implementation.ForLoop:
                        SingleTensorStep(options, batch);
                        break;
                    case Implementation.Foreach:
                        MultiTensorStep(options, batch);
                        break;
                    default:
                        var device = buffer.Flat.device;
                        FusedStep(options, batch, AsKernelScalar(GradScale, device), AsKernelScalar(FoundInf, device));
                        break;
                }
            }
            buffer.SyncAfterStep();
        }
    }

    // The for-loop steps the slices as it steps parameters, one after the other; foreach runs once per slice (one
    // foreach call over every slice would run each op over all of them before the next op, as over the whole buffer).
    private void StepInSlices(TOptions options, FlatSlices slices, Implementation path)
    {
        slices.Begin();
        if (path == Implementation.ForLoop) SingleTensorStep(options, slices.Batch);
        else foreach (var one in slices.One) MultiTensorStep(options, one);
        slices.End();
        FlatSliceCount += slices.Batch.Count;
    }

    // The path over one buffer: what the group asks for; Auto is the for-loop on CPU (the same bits as foreach over
    // one tensor) and foreach elsewhere, as PyTorch's default picks.
    private Implementation FlatPath(Implementation requested, Tensor flat)
    {
        if (requested == Implementation.Fused) return Implementation.Fused;
        if (GradScale is not null || FoundInf is not null)
            throw new InvalidOperationException($"GradScale and FoundInf need the fused path; {GetType().Name}'s group uses {requested}.");
        if (requested != Implementation.Auto) return requested;
        return flat.device_type == DeviceType.CPU ? Implementation.ForLoop : Implementation.Foreach;
    }

    // A per-parameter step ran over a flattened group: its scalar state views moved on their own.
    private void MarkSteppedPerParameter(int g)
    {
        foreach (var buffer in FlatBuffersOf(g) ?? Enumerable.Empty<FlatBuffer>()) buffer.ScalarsStale = true;
    }

    // zero_grad of a flattened group: one kernel per buffer. False where the group is not flattened.
    private bool ZeroFlatGrads(int g)
    {
        var buffers = FlatBuffersOf(g);
        if (buffers is null) return false;
        foreach (var buffer in buffers) buffer.ZeroGrads();
        return true;
    }

    private void ReleaseFlatBuffers()
    {
        foreach (var buffers in _flatBuffers) buffers?.ForEach(b => b.Dispose());
        _flatBuffers.Clear();
    }
}
