using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using Optim.Validation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>
/// The bookkeeping every algorithm shares, as in PyTorch's <c>torch.optim.Optimizer</c>: parameter groups, per-parameter
/// state, <c>step</c>, <c>zero_grad</c> and state dicts. An algorithm supplies its options type, how to initialize a
/// parameter's state and its update over plain lists.
/// </summary>
/// <typeparam name="TOptions">The algorithm's hyperparameters.</typeparam>
public abstract partial class Optimizer<TOptions> : Optimizer where TOptions : OptimizerOptions
{
    private readonly List<ParamGroup<TOptions>> _groups = new();

    // Keyed by the Parameter object, not its native handle: TorchSharp reuses the handles of freed tensors, which is
    // how its own optimizers lose or mix up state.
    private readonly Dictionary<Parameter, ParameterState> _state = new(ReferenceEqualityComparer.Instance);

    // Whether a step ran or a state dict was loaded: MasterWeights can no longer change.
    private bool _stepped;

    /// <summary>Creates the optimizer over <paramref name="groups"/>, each deriving its options from <paramref name="defaults"/>.</summary>
    /// <param name="groups">The parameter groups; at least one parameter in all.</param>
    /// <param name="defaults">The options of groups that override nothing.</param>
    /// <exception cref="ArgumentException">No parameters, or an invalid group.</exception>
    protected Optimizer(IEnumerable<ParamGroupSpec<TOptions>> groups, TOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(defaults);
        defaults.Validate();
        Defaults = defaults;
        var specs = groups.ToList();
        if (specs.Sum(g => g.Parameters.Count()) == 0)
            throw new ArgumentException("optimizer got an empty parameter list", nameof(groups));
        foreach (var spec in specs) AddParamGroup(spec);
    }

    /// <summary>The options a group gets for whatever it does not override.</summary>
    public TOptions Defaults { get; }

    internal override OptionSchema OptionSchema => Defaults.GetSchema();

    /// <summary>The parameter groups, in order.</summary>
    public new IReadOnlyList<ParamGroup<TOptions>> ParamGroups => _groups;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<Parameter, ParameterState> State => _state;

    /// <summary>State that belongs to the optimizer as a whole (empty unless the algorithm keeps some, as LBFGS does).</summary>
    public OptimizerGlobalState GlobalState { get; } = new();

    private protected override IEnumerable<ILearningRateController> GroupControllers => _groups;

    /// <inheritdoc/>
    public override bool StepSupportsAmpScaling =>
        HasFusedKernel && _groups.TrueForAll(g => g.Options.Implementation == Implementation.Fused);

    /// <summary>Whether state is created for every parameter when its group is added (Adagrad) rather than on its first step.</summary>
    protected virtual bool InitializesStateEagerly => false;

    /// <summary>
    /// The per-parameter state the algorithm keeps: its keys and what each tensor must look like. Checked before every
    /// step and on every load.
    /// </summary>
    protected abstract StateSchema StateSchema { get; }

    /// <summary>Creates a parameter's state (PyTorch's <c>_init_group</c>). Called once, before its first update.</summary>
    /// <param name="options">The options of the parameter's group.</param>
    /// <param name="parameter">The parameter.</param>
    /// <param name="state">Its empty state, to fill with <see cref="ParameterState.Set"/>.</param>
    protected abstract void InitializeState(TOptions options, Parameter parameter, ParameterState state);

    /// <summary>
    /// PyTorch's <c>_single_tensor_*</c> update over one group's parameters that have gradients. Runs under
    /// <c>no_grad</c> inside the step's dispose scope.
    /// </summary>
    /// <param name="options">The group's options.</param>
    /// <param name="batch">The parameters with gradients, their gradients and their state, as parallel lists.</param>
    protected abstract void SingleTensorStep(TOptions options, StepBatch batch);

    /// <summary>PyTorch's <c>_multi_tensor_*</c> update, called once per (device, dtype) part of a group.</summary>
    /// <param name="options">The group's options.</param>
    /// <param name="bucket">Parameters of one device and dtype.</param>
    protected abstract void MultiTensorStep(TOptions options, StepBatch bucket);

    /// <summary>PyTorch's <c>_fused_*</c> update, once per (device, dtype) part; only called when <see cref="HasFusedKernel"/>.</summary>
    /// <param name="options">The group's options.</param>
    /// <param name="bucket">Parameters of one device and dtype.</param>
    /// <param name="gradScale"><see cref="Optimizer.GradScale"/> on the bucket's device, or null.</param>
    /// <param name="foundInf"><see cref="Optimizer.FoundInf"/> on the bucket's device, or null.</param>
    protected virtual void FusedStep(TOptions options, StepBatch bucket, Tensor? gradScale, Tensor? foundInf) =>
        throw new NotSupportedException($"{GetType().Name} has no fused kernel.");

    /// <summary>Whether the algorithm has a fused kernel: ATen's, or this library's C# CPU kernel (see <see cref="AlgorithmInfo.FusedKernelIsCSharp"/>).</summary>
    protected virtual bool HasFusedKernel => false;

    /// <summary>
    /// Whether the fused path is this library's C# CPU kernel (Kernels/CpuFused) rather than ATen's: it then serves
    /// contiguous float32 and float64 CPU tensors only.
    /// </summary>
    private protected virtual bool FusedByThisLibrary => false;

    internal bool FusedKernelIsCSharp => FusedByThisLibrary;

    /// <summary>
    /// Whether the foreach path gives the for-loop's bits on CPU (true unless PyTorch's own foreach orders the ops
    /// differently). <see cref="Implementation.Auto"/> only picks foreach on CPU when it does.
    /// </summary>
    protected virtual bool ForeachMatchesForLoop => true;

    /// <summary>
    /// Whether the algorithm's step re-evaluates the model (LBFGS): <c>step</c> then requires a closure and runs
    /// <see cref="ClosureStep"/> instead of the per-group paths.
    /// </summary>
    protected virtual bool RequiresClosure => false;

    /// <summary>
    /// The update of a closure-driven algorithm. <paramref name="evaluate"/> runs the closure with gradients enabled,
    /// checks every gradient as <c>step</c> does, and returns the loss; call it as often as the algorithm needs. The
    /// optimizer keeps copies of the parameters and of all state while it runs: if anything throws, the parameters and
    /// the state are restored before the exception leaves <c>step</c>. Runs under <c>no_grad</c> inside a dispose scope;
    /// the returned tensor is moved out of it.
    /// </summary>
    /// <param name="evaluate">Re-evaluates the model and returns the loss.</param>
    /// <returns>The loss <c>step</c> returns (PyTorch's LBFGS returns the first evaluation's).</returns>
    protected virtual Tensor ClosureStep(Func<Tensor> evaluate) =>
        throw new NotSupportedException($"{GetType().Name} has no closure-driven step.");

    /// <summary>
    /// Checks optimizer-wide state before a load commits it (see <see cref="OptimizerGlobalState"/>). The default accepts
    /// only none: an algorithm that keeps such state overrides this.
    /// </summary>
    /// <param name="global">The loaded values by name.</param>
    /// <exception cref="ArgumentException">A value does not fit this optimizer.</exception>
    protected virtual void ValidateGlobalState(IReadOnlyDictionary<string, object> global)
    {
        foreach (var key in global.Keys)
            throw new ArgumentException($"the state dict has optimizer-wide state '{key}', which {GetType().Name} does not keep", nameof(global));
    }

    /// <summary>
    /// Why a group cannot be added to an optimizer that has <paramref name="existingGroups"/> groups, or null when it can.
    /// The default accepts any number; LBFGS accepts one.
    /// </summary>
    /// <param name="existingGroups">How many groups the optimizer has.</param>
    protected virtual string? RejectParamGroup(int existingGroups) => null;

    /// <summary>The message for a sparse gradient (PyTorch's text where it has one).</summary>
    protected virtual string SparseGradientMessage => $"{GetType().Name} does not support sparse gradients";

    /// <summary>
    /// Whether the algorithm takes sparse gradients only (SparseAdam): a dense gradient is then refused with
    /// <see cref="DenseGradientMessage"/>, where every other algorithm refuses sparse ones.
    /// </summary>
    protected virtual bool RequiresSparseGradients => false;

    /// <summary>The message for a dense gradient given to an algorithm that <see cref="RequiresSparseGradients"/>.</summary>
    protected virtual string DenseGradientMessage => $"{GetType().Name} does not support dense gradients";

    /// <summary>
    /// Why the algorithm cannot update <paramref name="parameter"/> (a shape or dtype it does not support), or null when
    /// it can. Checked when the parameter joins a group (an <see cref="ArgumentException"/>) and before every step that
    /// gives it a gradient (an <see cref="InvalidOperationException"/>, before anything changes), since <c>set_</c> can
    /// reshape a parameter afterwards. The default accepts every parameter.
    /// </summary>
    /// <param name="parameter">The parameter.</param>
    protected virtual string? RejectParameter(Tensor parameter) => null;

    /// <inheritdoc/>
    public override IEnumerable<Parameter> parameters()
    {
        ThrowIfDisposed();
        return _groups.SelectMany(g => g.Parameters);
    }

    /// <summary>Adds a group; its options are the defaults as <see cref="ParamGroupSpec{TOptions}.Configure"/> changes them.</summary>
    /// <param name="spec">The group's parameters and option overrides.</param>
    /// <exception cref="ArgumentException">An invalid parameter or option; the optimizer is unchanged.</exception>
    public void AddParamGroup(ParamGroupSpec<TOptions> spec)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(spec);
        if (RejectParamGroup(_groups.Count) is { } rejected) throw new ArgumentException(rejected, nameof(spec));
        var parameters = spec.Parameters.ToList();
        var names = spec.Names ?? ParamGroupFactory.DefaultNames(_groups.Count, parameters.Count);
        if (names.Count != parameters.Count)
            throw new ArgumentException($"{names.Count} names were given for {parameters.Count} parameters.", nameof(spec));
        if (spec.Names is not null && names.Any(n => n is null))
            throw new ArgumentException("a parameter name is null.", nameof(spec));
        if (_groups.Count > 0 && (spec.Names is null) != (_groups[0].ParamNames is null))
            throw new ArgumentException(
                $"all optimizer param groups should be with/without names. cannot add param group {(spec.Names is null ? "without" : "with")} names to the optimizer",
                nameof(spec));

        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i] ?? throw new ArgumentException($"parameter '{names[i]}' is null.", nameof(spec));
            if (p.IsInvalid) throw new ArgumentException($"parameter '{names[i]}' has been disposed.", nameof(spec));
            if (!p.is_leaf) throw new ArgumentException("can't optimize a non-leaf Tensor", nameof(spec));
            // PyTorch only warns here, then updates the parameter twice per step; we refuse.
            if (!seen.Add(p))
                throw new ArgumentException($"optimizer contains a parameter group with duplicate parameters (parameter '{names[i]}')", nameof(spec));
            if (_groups.Any(g => g.Parameters.Contains(p, ReferenceEqualityComparer.Instance)))
                throw new ArgumentException("some parameters appear in more than one parameter group", nameof(spec));
            if (RejectParameter(p) is { } unsupported) throw new ArgumentException($"{unsupported} (parameter '{names[i]}')", nameof(spec));
        }

        // A parameter that shares memory with another (a view of it) would be updated twice per step.
        var all = _groups.SelectMany(g => g.Parameters.Select((p, i) => (Tensor: (Tensor)p, Name: g.Names[i])))
            .Concat(parameters.Select((p, i) => (Tensor: (Tensor)p, Name: names[i]))).ToList();
        if (TensorMemory.FirstOverlap(all.ConvertAll(e => e.Tensor)) is var (first, second))
            throw new ArgumentException(
                $"parameters '{all[first].Name}' and '{all[second].Name}' share memory (one is a view of the other), so a step would update it twice",
                nameof(spec));

        var options = (spec.Configure is null ? Defaults : spec.Configure(Defaults))
            ?? throw new ArgumentException("Configure returned null.", nameof(spec));
        if (options.Implementation == Implementation.Fused)
        {
            if (!HasFusedKernel)
                throw new NotSupportedException($"ATen has no fused {GetType().Name} kernel; use Implementation.Foreach (or Auto, which picks it).");
            var unfusable = parameters.FindIndex(p => !IsFusable(p));
            if (unfusable >= 0) throw NotFusable(names[unfusable], parameters[unfusable]);
        }
        var group = ParamGroupFactory.Create(parameters, names, spec.Names is not null, options);
        if (InitializesStateEagerly)
        {
            // Create the state before the group joins, and undo it if any parameter's fails: a failed add changes nothing.
            try
            {
                foreach (var p in parameters) EnsureState(group.Options, p);
            }
            catch
            {
                foreach (var p in parameters)
                {
                    if (_state.Remove(p, out var partial)) partial.Clear();
                }
                throw;
            }
        }
        _groups.Add(group);
        if (Flat) FlattenGroup(_groups.Count - 1);
    }

    /// <summary>
    /// Adds a TorchSharp parameter group (drop-in compatibility): its parameters and every option it sets. TorchSharp's
    /// option objects (<c>Adam.Options</c>, ...) name their fields as PyTorch does (<c>beta1</c>, <c>weight_decay</c>),
    /// so each set field is matched by name against this algorithm's schema; a set option that this algorithm does not
    /// have is an error rather than silently dropped.
    /// </summary>
    /// <param name="param_group">A TorchSharp parameter group.</param>
    /// <exception cref="ArgumentException">An option this algorithm does not have, or an invalid value.</exception>
    public override void add_param_group(TorchSharp.Modules.ParamGroup param_group)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(param_group);
        var overrides = TorchSharpOptions(param_group.Options, Defaults.GetSchema());
        AddParamGroup(new ParamGroupSpec<TOptions>(param_group.Parameters,
            overrides.Count == 0 ? null : o => (TOptions)o.WithHyperparameters(overrides)));
    }

    private static List<KeyValuePair<string, object?>> TorchSharpOptions(TorchSharp.Modules.OptimizerOptions? options, OptionSchema schema)
    {
        var overrides = new List<KeyValuePair<string, object?>>();
        if (options is null) return overrides;
        if (options.LearningRate is double lr) overrides.Add(new("lr", lr));
        foreach (var field in options.GetType().GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            var value = field.GetValue(options);
            if (value is null) continue; // TorchSharp's "not set": the optimizer's default applies
            var declared = schema.Find(field.Name)
                ?? throw new ArgumentException(
                    $"the TorchSharp parameter group sets '{field.Name}', which {typeof(TOptions).Name} does not have", nameof(options));
            overrides.Add(new(declared.Name, value));
        }
        return overrides;
    }

    private protected override Tensor? StepCore(Func<Tensor>? closure)
    {
        ThrowIfDisposed();
        if (RequiresClosure)
        {
            if (closure is null)
                throw new ArgumentNullException(nameof(closure), $"{GetType().Name} requires a closure that reevaluates the model and returns the loss");
            return StepWithClosure(closure);
        }
        Tensor? loss = null;
        if (closure != null)
        {
            using (enable_grad()) loss = closure();
        }

        using (no_grad())
        using (NewDisposeScope())
        {
            var flat = PlanFlatSteps();
            var withGradients = _groups.Select((g, i) => flat[i] ? new List<(Parameter, Tensor, string)>() : CollectGradients(g)).ToList();
            var paths = _groups.Select((g, i) => ResolvePath(g, withGradients[i])).ToList();
            CheckKernelScalar(GradScale, nameof(GradScale));
            CheckKernelScalar(FoundInf, nameof(FoundInf));
            var batches = PrepareBatches(withGradients, out var masters);
            _stepped = true;
            for (var g = 0; g < _groups.Count; g++)
            {
                if (flat[g])
                {
                    FlatStep(g);
                    continue;
                }
                var options = _groups[g].Options;
                var batch = batches[g];
                if (batch.Count == 0) continue;
                MarkSteppedPerParameter(g);
                switch (paths[g])
                {
                    case Implementation.ForLoop:
                        SingleTensorStep(options, batch);
                        break;
                    case Implementation.Foreach:
                        foreach (var bucket in batch.ByDeviceAndDtype()) MultiTensorStep(options, bucket);
                        break;
                    default:
                        foreach (var bucket in batch.ByDeviceAndDtype())
                        {
                            var device = bucket.Params[0].device;
                            FusedStep(options, bucket, AsKernelScalar(GradScale, device), AsKernelScalar(FoundInf, device));
                        }
                        break;
                }
                WriteBackMasters(masters[g], paths[g] == Implementation.Fused ? FoundInf : null);
            }
        }
        return loss;
    }

    // A closure-driven step, all or nothing: parameters and state are copied first and restored if anything throws.
    private Tensor StepWithClosure(Func<Tensor> closure)
    {
        CheckKernelScalar(GradScale, nameof(GradScale));
        if (GradScale is not null || FoundInf is not null)
            throw new InvalidOperationException($"{GetType().Name}'s closure-driven step cannot take GradScale or FoundInf.");
        var parameters = _groups.SelectMany(g => g.Parameters).ToList();
        List<Tensor> savedParams;
        Dictionary<Parameter, List<KeyValuePair<string, Tensor>>> savedState;
        OptimizerGlobalState savedGlobal;
        using (no_grad())
        {
            savedParams = parameters.Select(p => OptimizerGlobalState.DetachedClone(p)).ToList();
            savedState = _state.ToDictionary(e => e.Key, e => e.Value.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, OptimizerGlobalState.DetachedClone(kv.Value))).ToList(),
                ReferenceEqualityComparer.Instance as IEqualityComparer<Parameter>);
            savedGlobal = GlobalState.Clone();
        }
        var keptStateKeys = _state.Keys.ToList();
        try
        {
            using (no_grad())
            using (var scope = NewDisposeScope())
            {
                var loss = ClosureStep(Evaluate);
                return loss.MoveToOuterDisposeScope();
            }
        }
        catch
        {
            using (no_grad())
            {
                for (var i = 0; i < parameters.Count; i++) parameters[i].copy_(savedParams[i]);
                foreach (var p in _state.Keys.Except(keptStateKeys, ReferenceEqualityComparer.Instance).Cast<Parameter>().ToList())
                {
                    _state[p].Clear();
                    _state.Remove(p);
                }
                foreach (var (p, entries) in savedState)
                {
                    var restored = new ParameterState();
                    foreach (var (key, tensor) in entries) restored.Set(key, tensor);
                    _state[p].ReplaceWith(restored);
                }
                savedState.Clear();
                GlobalState.ReplaceWith(savedGlobal);
            }
            throw;
        }
        finally
        {
            foreach (var t in savedParams) t.Dispose();
            foreach (var entries in savedState.Values) entries.ForEach(e => e.Value.Dispose());
            savedGlobal.Clear();
        }

        Tensor Evaluate()
        {
            Tensor loss;
            using (enable_grad()) loss = closure();
            if (loss is null) throw new InvalidOperationException("the closure returned null; it must return the loss");
            foreach (var group in _groups) CollectGradients(group);
            return loss;
        }
    }

    /// <summary>The parameter's state, created (as on its first step) when it has none yet.</summary>
    /// <param name="group">The index of the parameter's group.</param>
    /// <param name="parameter">A parameter of that group.</param>
    protected ParameterState StateOf(int group, Parameter parameter) => EnsureState(_groups[group].Options, parameter);

    // Every group's batch, with the state of parameters on their first step created: for all groups or, if creating
    // one fails, for none, so that a failing step leaves the state as it was.
    // With master weights, a float16/bfloat16 parameter enters its batch as its float32 copy with a float32 copy of its
    // gradient; masters lists, per group, the parameters to write back after the update.
    private List<StepBatch> PrepareBatches(List<List<(Parameter, Tensor, string)>> withGradients, out List<List<(Parameter, Parameter)>> masters)
    {
        var fresh = new List<(Parameter Parameter, bool HadEntry)>();
        masters = new List<List<(Parameter, Parameter)>>(_groups.Count);
        try
        {
            var batches = new List<StepBatch>(_groups.Count);
            for (var g = 0; g < _groups.Count; g++)
            {
                var batch = new StepBatch();
                var groupMasters = new List<(Parameter, Parameter)>();
                masters.Add(groupMasters);
                foreach (var (p, grad, name) in withGradients[g])
                {
                    var hadEntry = _state.TryGetValue(p, out var existing);
                    if (!hadEntry || !existing!.IsInitialized) fresh.Add((p, hadEntry));
                    else if (!existing.UnchangedSinceCheck(p))
                    {
                        if (StateSchema.FindProblem(p, existing, name, MasterKeyOf(p)) is { } problem) throw new InvalidOperationException(problem);
                        existing.MarkChecked(p);
                    }
                    var state = EnsureState(_groups[g].Options, p);
                    if (UsesMaster(p))
                    {
                        var master = MasterOf(state);
                        batch.Add(master, grad.to(ScalarType.Float32), state, name);
                        groupMasters.Add((p, master));
                    }
                    else
                    {
                        batch.Add(p, grad, state, name);
                    }
                }
                batches.Add(batch);
            }
            return batches;
        }
        catch
        {
            foreach (var (p, hadEntry) in fresh)
            {
                if (!_state.TryGetValue(p, out var state)) continue;
                state.Clear();
                if (!hadEntry) _state.Remove(p);
            }
            throw;
        }
    }

    // Auto gives PyTorch's default numbers: never the fused kernels (a few ulp off the for-loop); on CPU the for-loop or
    // foreach, which give the same bits, chosen by tensor size (AutoWithoutFusion); elsewhere foreach. An algorithm whose
    // foreach differs from its for-loop in PyTorch itself (Adagrad) runs the for-loop on CPU. An explicit Fused that
    // cannot be served is an error.
    private Implementation ResolvePath(ParamGroup<TOptions> group, List<(Parameter, Tensor, string)> withGradients)
    {
        var requested = group.Options.Implementation;
        if (requested == Implementation.Fused)
        {
            var unfusable = withGradients.FindIndex(e => !IsFusable(e.Item1) || !e.Item2.is_contiguous());
            if (unfusable >= 0) throw NotFusable(withGradients[unfusable].Item3, withGradients[unfusable].Item1);
            return Implementation.Fused;
        }
        if (GradScale is not null || FoundInf is not null)
            throw new InvalidOperationException($"GradScale and FoundInf need the fused path; {GetType().Name}'s group uses {requested}.");
        return requested switch
        {
            Implementation.ForLoop => Implementation.ForLoop,
            Implementation.Foreach => Implementation.Foreach,
            _ => ForeachMatchesForLoop ? AutoWithoutFusion(withGradients.ConvertAll(e => (Tensor)e.Item1)) : AutoForLoopOnCpu(withGradients),
        };
    }

    private static Implementation AutoForLoopOnCpu(List<(Parameter, Tensor, string)> withGradients) =>
        withGradients.TrueForAll(e => e.Item1.device_type == DeviceType.CPU) ? Implementation.ForLoop : Implementation.Foreach;

    /// <summary>Parameters of at least this many elements on average make the CPU for-loop faster than foreach.</summary>
    internal const long ForLoopMinimumMeanElements = 16_384;

    // On CPU foreach wins while the cost is per tensor, the for-loop once tensors are large, because it frees each
    // temporary before the next parameter where foreach holds model-sized temporaries (docs/benchmarks.md, RMSprop). Both give the same bits (but
    // Adagrad's, which PyTorch orders differently). Anything off the CPU takes foreach, as PyTorch does.
    internal static Implementation AutoWithoutFusion(IReadOnlyList<Tensor> parameters)
    {
        if (parameters.Count == 0) return Implementation.Foreach;
        long elements = 0;
        foreach (var p in parameters)
        {
            if (p.device_type != DeviceType.CPU) return Implementation.Foreach;
            elements += p.numel();
        }
        return elements / parameters.Count >= ForLoopMinimumMeanElements ? Implementation.ForLoop : Implementation.Foreach;
    }

    // ATen's fused CPU kernels index raw memory: they silently miscompute non-contiguous tensors.
    private bool IsFusable(Tensor p) => FusedByThisLibrary
        ? CpuFused.Serves(p)
        : p.dtype is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16
            && p.device_type is DeviceType.CPU or DeviceType.CUDA
            && p.is_contiguous();

    private ArgumentException NotFusable(string name, Tensor p, string argument = nameof(Implementation)) => new(
        $"{GetType().Name}'s fused kernel cannot serve parameter '{name}' ({p.dtype} on {p.device}{(p.is_contiguous() ? "" : ", not contiguous")}): it takes "
        + (FusedByThisLibrary ? CpuFused.Takes : "contiguous float32, float64, float16 or bfloat16 tensors (and gradients) on CPU or CUDA") + ".",
        argument);

    /// <inheritdoc/>
    public override void zero_grad(bool set_to_none)
    {
        ThrowIfDisposed();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var toZero = new List<Tensor>();
        for (var g = 0; g < _groups.Count; g++)
        {
            if (ZeroFlatGrads(g)) continue;
            var group = _groups[g];
            var zeroInPlace = new List<Tensor>();
            foreach (var p in group.Parameters)
            {
                var grad = p.grad;
                if (grad is null) continue;
                if (set_to_none) p.grad = null;
                else zeroInPlace.Add(grad);
            }
            if (group.Options.Implementation == Implementation.ForLoop) zeroInPlace.ForEach(g => g.zero_());
            else toZero.AddRange(zeroInPlace);
        }
        // PyTorch's foreach zero_grad: one _foreach_zero_ per (device, dtype).
        foreach (var sameKind in toZero.GroupBy(g => (g.device_type, g.device_index, g.dtype))) Aten.ForeachZero_(sameKind.ToList());
    }

    internal override OptimizerStateDict StateDictCore()
    {
        ThrowIfDisposed();
        var ids = ParameterIds();
        var state = new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>();
        foreach (var p in parameters())
        {
            if (_state.TryGetValue(p, out var s) && s.Count > 0) state[ids[p]] = s.ToDictionary(e => e.Key, e => e.Value); // the tensors are live, the map is not
        }
        var groups = _groups
            .Select(g => new ParamGroupState(g.Options.ToHyperparameters(), g.InitialLearningRate, g.Parameters.Select(p => ids[p]).ToList())
            {
                ParamNames = g.ParamNames,
            })
            .ToList();
        return new OptimizerStateDict(GetType().Name, state, groups)
        {
            Global = GlobalState.ToDictionary(e => e.Key, e => e.Value),
        };
    }

    private protected override StagedLoad PrepareLoadCore(OptimizerStateDict stateDict)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(stateDict);
        if (stateDict.OptimizerType != GetType().Name)
            throw new ArgumentException($"the state dict is of a '{stateDict.OptimizerType}' optimizer, not '{GetType().Name}'", nameof(stateDict));
        if (stateDict.ParamGroups.Count != _groups.Count)
            throw new ArgumentException("loaded state dict has a different number of parameter groups", nameof(stateDict));

        // 1. Validate and stage everything: options, the id mapping, and copies of the state tensors.
        var options = new List<TOptions>(_groups.Count);
        var byId = new Dictionary<int, Parameter>();
        for (var g = 0; g < _groups.Count; g++)
        {
            var saved = stateDict.ParamGroups[g];
            if (saved.Params.Count != _groups[g].Parameters.Count)
                throw new ArgumentException("loaded state dict contains a parameter group that doesn't match the size of optimizer's group", nameof(stateDict));
            var loadedOptions = _groups[g].Options.WithHyperparameters(saved.Hyperparameters) as TOptions
                ?? throw new ArgumentException($"the state dict's group {g} does not hold {typeof(TOptions).Name}", nameof(stateDict));
            options.Add(loadedOptions);
            Check.NonNegative(saved.InitialLr, "initial_lr", "Invalid initial learning rate");
            if (saved.ParamNames is { } savedNames && (savedNames.Count != saved.Params.Count || savedNames.Any(n => n is null)))
                throw new ArgumentException(
                    $"the state dict's group {g} has {savedNames.Count} param_names for {saved.Params.Count} params{(savedNames.Any(n => n is null) ? ", some of them null" : "")}",
                    nameof(stateDict));
            for (var i = 0; i < saved.Params.Count; i++)
            {
                if (!byId.TryAdd(saved.Params[i], _groups[g].Parameters[i]))
                    throw new ArgumentException($"parameter id {saved.Params[i]} appears more than once in the state dict's groups", nameof(stateDict));
            }
        }

        stateDict.ThrowIfDisposed();
        ValidateGlobalState(stateDict.Global);
        var staged = new Dictionary<Parameter, ParameterState>(ReferenceEqualityComparer.Instance);
        var stagedGlobal = new OptimizerGlobalState();
        try
        {
            foreach (var (key, value) in stateDict.Global) stagedGlobal.Set(key, OptimizerGlobalState.CloneValue(OptimizerGlobalState.Normalize(value, key)));
            foreach (var (id, savedState) in stateDict.State)
            {
                if (!byId.TryGetValue(id, out var p))
                    throw new ArgumentException($"the state dict has state for parameter id {id}, which none of its groups lists", nameof(stateDict));
                var copy = new ParameterState();
                staged[p] = copy;
                var master = UsesMaster(p);
                if (master)
                {
                    // A state saved without master weights gets its copy from the parameter, as a first step would.
                    copy.Set(MasterWeightsKey, savedState.TryGetValue(MasterWeightsKey, out var savedMaster)
                        ? AsMasterParameter(StateSchema.Normalize(StateKind.LikeParameter, savedMaster, p, $"state '{MasterWeightsKey}' of parameter id {id}",
                            nameof(stateDict), stateDict.TensorsAreStaged, ScalarType.Float32))
                        : NewMaster(p));
                }
                foreach (var (key, tensor) in savedState)
                {
                    if (master && key == MasterWeightsKey) continue;
                    if (key == MasterWeightsKey)
                        throw new ArgumentException(
                            $"the state of parameter id {id} has '{key}' (float32 master weights), which this optimizer keeps only for float16 and bfloat16 parameters with MasterWeights on",
                            nameof(stateDict));
                    var declared = StateSchema.Find(key)
                        ?? throw new ArgumentException($"the state of parameter id {id} has '{key}', which {GetType().Name} does not keep", nameof(stateDict));
                    copy.Set(key, StateSchema.Normalize(declared.Kind, tensor, p, $"state '{key}' of parameter id {id}", nameof(stateDict), stateDict.TensorsAreStaged,
                        master ? ScalarType.Float32 : null));
                }
                copy.IsInitialized = true;
                if (StateSchema.FindProblem(p, copy, $"id {id}", MasterKeyOf(p)) is { } problem) throw new ArgumentException(problem, nameof(stateDict));
            }
        }
        catch
        {
            foreach (var s in staged.Values) s.Clear();
            stagedGlobal.Clear();
            throw;
        }

        // 2. Commit: nothing below can fail.
        return new StagedLoad(() => Commit(stateDict, options, stagedGlobal, staged), () =>
        {
            foreach (var s in staged.Values) s.Clear();
            stagedGlobal.Clear();
        });
    }

    private void Commit(OptimizerStateDict stateDict, List<TOptions> options, OptimizerGlobalState stagedGlobal, Dictionary<Parameter, ParameterState> staged)
    {
        _stepped = true;
        for (var g = 0; g < _groups.Count; g++)
        {
            _groups[g].Options = options[g];
            _groups[g].InitialLearningRate = stateDict.ParamGroups[g].InitialLr;
            if (stateDict.ParamGroups[g].ParamNames is { } names) _groups[g].ReplaceParamNames(names.ToList());
        }
        GlobalState.ReplaceWith(stagedGlobal);
        foreach (var p in parameters())
        {
            if (_state.TryGetValue(p, out var current)) current.Clear();
            if (staged.TryGetValue(p, out var loaded))
            {
                if (current is null) _state[p] = current = new ParameterState();
                current.ReplaceWith(loaded);
            }
            else if (current is not null)
            {
                _state.Remove(p); // no state in the dict: none here either (State lists parameters that have state)
            }
        }
    }

    private Dictionary<Parameter, int> ParameterIds()
    {
        var ids = new Dictionary<Parameter, int>(ReferenceEqualityComparer.Instance);
        foreach (var p in parameters()) ids.TryAdd(p, ids.Count);
        return ids;
    }

    private ParameterState EnsureState(TOptions options, Parameter p)
    {
        if (!_state.TryGetValue(p, out var state)) _state[p] = state = new ParameterState();
        if (!state.IsInitialized)
        {
            var target = p;
            if (UsesMaster(p))
            {
                target = NewMaster(p);
                state.Set(MasterWeightsKey, target);
            }
            InitializeState(options, target, state);
            state.IsInitialized = true;
        }
        return state;
    }

    // Master weights apply to float16 and bfloat16 parameters only.
    private bool UsesMaster(Tensor p) => _masterWeights && p.dtype is ScalarType.Float16 or ScalarType.BFloat16;

    private string? MasterKeyOf(Tensor p) => UsesMaster(p) ? MasterWeightsKey : null;

    // A float32 copy of the parameter, contiguous, as a Parameter (what a StepBatch holds) that needs no gradient.
    private static Parameter NewMaster(Tensor p)
    {
        using var _ = no_grad();
        // Each intermediate held until the next op has read it: this also runs outside a step's dispose scope (eager
        // state, loads), where an unreferenced wrapper could be finalized during the native call that reads it.
        using var detached = p.detach();
        using var wide = detached.to(ScalarType.Float32);
        using var contiguous = wide.contiguous();
        return AsMasterParameter(contiguous.clone());
    }

    // Takes over the handle of t (which must be new and owned by the caller).
    private static Parameter AsMasterParameter(Tensor t) => new(t, requires_grad: false);

    // The parameter's float32 copy; one put into the state as a plain tensor (through ParameterState.Set) is wrapped once,
    // sharing its memory.
    private static Parameter MasterOf(ParameterState state)
    {
        var master = state[MasterWeightsKey];
        if (master is Parameter parameter) return parameter;
        var wrapped = AsMasterParameter(master.detach());
        state.Set(MasterWeightsKey, wrapped);
        return wrapped;
    }

    // Rounds each updated copy into its parameter. A fused step under a scaler that found an overflow changed no copy;
    // the parameter is then kept as it is (without reading the flag back to the host).
    private static void WriteBackMasters(List<(Parameter Parameter, Parameter Master)> masters, Tensor? foundInf)
    {
        if (masters.Count == 0) return;
        if (foundInf is null)
        {
            foreach (var (p, master) in masters) p.copy_(master);
            return;
        }
        // The flag once per device, not once per parameter.
        var skippedOn = new Dictionary<(DeviceType, int), Tensor>();
        try
        {
            foreach (var (p, master) in masters)
            {
                var device = (p.device_type, p.device_index);
                if (!skippedOn.TryGetValue(device, out var skipped))
                    skippedOn[device] = skipped = foundInf.to(p.device).reshape(Array.Empty<long>()).ne(S(0));
                using var kept = where(skipped, p, master);
                p.copy_(kept);
            }
        }
        finally
        {
            foreach (var skipped in skippedOn.Values) skipped.Dispose();
        }
    }

    private protected override void ChangeMasterWeights(bool value)
    {
        if (RequiresClosure) throw new NotSupportedException($"{GetType().Name} has no master-weight mode (its closure-driven step updates the parameters in place).");
        if (_stepped)
            throw new InvalidOperationException("MasterWeights can only change before the first step and before a state dict is loaded.");
        _masterWeights = value;
        // State created eagerly (Adagrad) was made like the parameters: make it again, like the copies (or the parameters).
        foreach (var group in _groups)
        {
            foreach (var p in group.Parameters)
            {
                if (p.dtype is not (ScalarType.Float16 or ScalarType.BFloat16) || !_state.Remove(p, out var state)) continue;
                state.Clear();
                if (InitializesStateEagerly) EnsureState(group.Options, p);
            }
        }
    }

    // Gathers the parameters that have gradients and checks each gradient; changes nothing.
    private List<(Parameter, Tensor, string)> CollectGradients(ParamGroup<TOptions> group)
    {
        var collected = new List<(Parameter, Tensor, string)>(group.Parameters.Count);
        for (var i = 0; i < group.Parameters.Count; i++)
        {
            var p = group.Parameters[i];
            var name = group.Names[i];
            if (p.IsInvalid)
                throw new InvalidOperationException(
                    $"parameter '{name}' has been disposed. TorchSharp's Module.to(dtype) replaces a module's parameters; create the optimizer after converting the module.");
            var grad = p.grad;
            if (grad is null) continue;
            CheckGradient(p, grad, name);
            // A sparse gradient's elements are its values (uncoalesced: repeated indices are checked one by one).
            if (CheckFiniteGradients && !(grad.is_sparse ? Aten.SparseValues(grad) : grad).isfinite().all().item<bool>())
                throw new InvalidOperationException($"the gradient of parameter '{name}' contains NaN or infinity");
            collected.Add((p, grad, name));
        }
        return collected;
    }

    // A gradient the update can take: sparse exactly when the algorithm needs sparse gradients, of the parameter's dtype,
    // device and shape, for a parameter the algorithm supports.
    private void CheckGradient(Parameter p, Tensor grad, string name)
    {
        var sparse = grad.is_sparse;
        if (sparse != RequiresSparseGradients) throw new NotSupportedException(sparse ? SparseGradientMessage : DenseGradientMessage);
        if (grad.dtype != p.dtype || !Devices.Same(grad, p) || !SameShape(grad, p))
            throw new InvalidOperationException(
                $"the gradient of parameter '{name}' is {Describe(grad)}, but the parameter is {Describe(p)}");
        if (RejectParameter(p) is { } unsupported) throw new InvalidOperationException($"{unsupported} (parameter '{name}')");
    }

    // The fused kernels take grad_scale and found_inf as float32 scalars on the parameters' device (PyTorch's
    // GradScaler keeps them 0-dim); any one-element tensor is accepted.
    private static void CheckKernelScalar(Tensor? t, string name)
    {
        if (t is not null && t.numel() != 1) throw new InvalidOperationException($"{name} must hold one element, not {t.numel()}.");
    }

    // step checked the element count before anything changed (CheckKernelScalar).
    private static Tensor? AsKernelScalar(Tensor? t, Device device) =>
        t?.to(ScalarType.Float32, device).reshape(Array.Empty<long>());

    // Tensor.shape allocates an array through a native call; ndim and size(d) do not, which matters when a step checks
    // thousands of gradients.
    private static bool SameShape(Tensor a, Tensor b)
    {
        var ndim = a.ndim;
        if (ndim != b.ndim) return false;
        for (var d = 0; d < ndim; d++)
        {
            if (a.size(d) != b.size(d)) return false;
        }
        return true;
    }

    private static string Describe(Tensor t) => $"{t.dtype} [{string.Join(", ", t.shape)}] on {t.device}";

    private protected override void ReleaseState()
    {
        ReleaseFlatBuffers();
        foreach (var state in _state.Values) state.Clear();
        _state.Clear();
        GlobalState.Clear();
    }

    /// <summary>Applies <paramref name="set"/> to every group's options (for optimizer-level IMomentum/IBetas).</summary>
    private protected void SetOnAllGroups(Func<TOptions, TOptions> set)
    {
        // Validate every new value before assigning any, so a bad value changes no group.
        var updated = _groups.Select(g => set(g.Options)).ToList();
        foreach (var o in updated) o.Validate();
        for (var g = 0; g < _groups.Count; g++) _groups[g].Options = updated[g];
    }
}
