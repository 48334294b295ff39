using System;
using System.Collections.Generic;
using System.Threading;
using static TorchSharp.torch;

namespace Optim;

// The public entry points that run hooks (step, StateDict, LoadStateDict) and the hook registries: PyTorch 2.x's
// torch.optim.Optimizer hooks. The algorithm-independent work behind each entry point is Optimizer<TOptions>'s
// StepCore, StateDictCore and PrepareLoadCore.
public abstract partial class Optimizer
{
    private static readonly HookList<Func<Optimizer, StepArguments, StepArguments?>> GlobalStepPreHooks = new();
    private static readonly HookList<Action<Optimizer, StepArguments>> GlobalStepPostHooks = new();

    private readonly HookList<Func<Optimizer, StepArguments, StepArguments?>> _stepPreHooks = new();
    private readonly HookList<Action<Optimizer, StepArguments>> _stepPostHooks = new();
    private readonly HookList<Action<Optimizer>> _stateDictPreHooks = new();
    private readonly HookList<Func<Optimizer, OptimizerStateDict, OptimizerStateDict?>> _stateDictPostHooks = new();
    private readonly HookList<Func<Optimizer, OptimizerStateDict, OptimizerStateDict?>> _loadStateDictPreHooks = new();
    private readonly HookList<Action<Optimizer>> _loadStateDictPostHooks = new();

    /// <summary>
    /// Performs one optimization step. The step pre-hooks run first (the global ones, then this optimizer's, each in
    /// registration order; one may replace the arguments), then the algorithm's step with the final arguments, then this
    /// optimizer's step post-hooks and the global ones. The closure (if any) runs with gradients enabled; the update runs
    /// without them, inside a dispose scope, after every gradient of every group has been checked, so a bad gradient
    /// leaves every parameter and all state as they were.
    /// </summary>
    /// <param name="closure">Re-evaluates the model and returns the loss; optional for most algorithms.</param>
    /// <returns>The closure's loss, or null.</returns>
    /// <remarks>
    /// As in PyTorch, post-hooks run only after a step that returned; a hook that throws stops the step there (a pre-hook:
    /// before anything changed; a post-hook: after the step was applied).
    /// </remarks>
    public sealed override Tensor? step(Func<Tensor>? closure = null)
    {
        ThrowIfDisposed();
        var globalPre = GlobalStepPreHooks.Snapshot;
        var pre = _stepPreHooks.Snapshot;
        var post = _stepPostHooks.Snapshot;
        var globalPost = GlobalStepPostHooks.Snapshot;
        if (globalPre.Length + pre.Length + post.Length + globalPost.Length == 0) return StepCore(closure);

        var arguments = new StepArguments(closure);
        foreach (var hook in globalPre) arguments = hook(this, arguments) ?? arguments;
        foreach (var hook in pre) arguments = hook(this, arguments) ?? arguments;
        var loss = StepCore(arguments.Closure);
        foreach (var hook in post) hook(this, arguments);
        foreach (var hook in globalPost) hook(this, arguments);
        return loss;
    }

    /// <summary>
    /// The optimizer's state in PyTorch's shape; its tensors are the live state (see <see cref="OptimizerStateDict"/>).
    /// The state-dict pre-hooks run before it is built, the post-hooks after (each may return a dict that replaces it).
    /// <see cref="OptimizerCheckpointExtensions.Save(Optimizer, string)"/> and training checkpoints save what this returns.
    /// </summary>
    public OptimizerStateDict StateDict()
    {
        ThrowIfDisposed();
        foreach (var hook in _stateDictPreHooks.Snapshot) hook(this);
        var stateDict = StateDictCore();
        foreach (var hook in _stateDictPostHooks.Snapshot) stateDict = hook(this, stateDict) ?? stateDict;
        return stateDict;
    }

    /// <summary>
    /// Replaces hyperparameters and state with those of <paramref name="stateDict"/>, following PyTorch's rules (groups
    /// matched by position, tensors cast to each parameter's dtype and device except <c>step</c>, saved parameter names
    /// replace the groups' names) and also checking the optimizer type and every tensor's shape. The load pre-hooks run
    /// first (each may return a dict to load instead); everything is then validated before anything changes; the dict's
    /// tensors are copied, never aliased. The load post-hooks run after the load.
    /// </summary>
    /// <param name="stateDict">A dict from <see cref="StateDict"/> of an optimizer of the same type and layout.</param>
    /// <exception cref="ArgumentException">The dict does not fit this optimizer; nothing was changed.</exception>
    /// <remarks>A post-hook that throws does so after the load was applied, as in PyTorch.</remarks>
    public void LoadStateDict(OptimizerStateDict stateDict)
    {
        PrepareLoad(stateDict).Commit();
        RunLoadStateDictPostHooks();
    }

    /// <summary>
    /// <see cref="LoadStateDict"/> in two parts: runs the load pre-hooks, then validates and stages everything (throwing
    /// as it would, changing nothing) and returns the staged load, whose <see cref="StagedLoad.Commit"/> cannot fail; a
    /// training checkpoint stages every part of a run before committing any, then calls
    /// <see cref="RunLoadStateDictPostHooks"/>.
    /// </summary>
    internal StagedLoad PrepareLoad(OptimizerStateDict stateDict)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(stateDict);
        var toLoad = stateDict;
        foreach (var hook in _loadStateDictPreHooks.Snapshot) toLoad = hook(this, toLoad) ?? toLoad;
        // Only the dict a checkpoint reader built owns its tensors: one a hook returned instead is copied, whatever it holds.
        if (!ReferenceEquals(toLoad, stateDict) && toLoad.TensorsAreStaged) toLoad = toLoad with { TensorsAreStaged = false };
        return PrepareLoadCore(toLoad);
    }

    /// <summary>Runs the load post-hooks (after a load was committed).</summary>
    internal void RunLoadStateDictPostHooks()
    {
        foreach (var hook in _loadStateDictPostHooks.Snapshot) hook(this);
    }

    /// <summary>The algorithm's step, with the closure the pre-hooks settled on.</summary>
    private protected abstract Tensor? StepCore(Func<Tensor>? closure);

    /// <summary>Group <paramref name="g"/>'s flat buffers, or null where it has none (for tests and benchmarks).</summary>
    internal abstract IReadOnlyList<FlatBuffer>? FlatBuffersOf(int g);

    /// <summary>The state dict, before the post-hooks (also what internal readers use to map ids to groups).</summary>
    internal abstract OptimizerStateDict StateDictCore();

    /// <summary>Validates and stages a load of <paramref name="stateDict"/> (after the pre-hooks); changes nothing.</summary>
    private protected abstract StagedLoad PrepareLoadCore(OptimizerStateDict stateDict);

    /// <summary>
    /// Registers a hook that runs before every <c>step</c> of this optimizer (PyTorch's <c>register_step_pre_hook</c>).
    /// It gets the optimizer and the step's arguments and returns null to keep them or new arguments to step with (a
    /// replaced or wrapped closure); later hooks see what earlier ones returned. Hooks run in registration order, after
    /// the global ones (<see cref="RegisterOptimizerStepPreHook"/>).
    /// </summary>
    /// <param name="hook">The hook.</param>
    /// <returns>A handle whose <see cref="RemovableHandle.Remove"/> removes the hook (also after the optimizer was disposed).</returns>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed (not for the global hooks).</exception>
    public RemovableHandle RegisterStepPreHook(Func<Optimizer, StepArguments, StepArguments?> hook) => Register(_stepPreHooks, hook, false);

    /// <summary>
    /// Registers a hook that runs after every <c>step</c> of this optimizer that returned (PyTorch's
    /// <c>register_step_post_hook</c>), with the arguments the step ran with. Hooks run in registration order, before the
    /// global ones (<see cref="RegisterOptimizerStepPostHook"/>).
    /// </summary>
    /// <inheritdoc cref="RegisterStepPreHook"/>
    public RemovableHandle RegisterStepPostHook(Action<Optimizer, StepArguments> hook) => Register(_stepPostHooks, hook, false);

    /// <summary>
    /// Registers a hook that runs before <c>step</c> of every optimizer of this library, before the optimizer's own
    /// pre-hooks (PyTorch's <c>torch.optim.optimizer.register_optimizer_step_pre_hook</c>); it may return new arguments
    /// as <see cref="RegisterStepPreHook"/>'s do. Process-wide: it runs on whatever thread steps an optimizer.
    /// </summary>
    /// <inheritdoc cref="RegisterStepPreHook"/>
    public static RemovableHandle RegisterOptimizerStepPreHook(Func<Optimizer, StepArguments, StepArguments?> hook) =>
        GlobalStepPreHooks.Add(hook, prepend: false);

    /// <summary>
    /// Registers a hook that runs after <c>step</c> of every optimizer of this library, after the optimizer's own
    /// post-hooks (PyTorch's <c>torch.optim.optimizer.register_optimizer_step_post_hook</c>). Process-wide.
    /// </summary>
    /// <inheritdoc cref="RegisterStepPreHook"/>
    public static RemovableHandle RegisterOptimizerStepPostHook(Action<Optimizer, StepArguments> hook) =>
        GlobalStepPostHooks.Add(hook, prepend: false);

    /// <summary>
    /// Registers a hook that runs before <see cref="StateDict"/> builds the dict (PyTorch's
    /// <c>register_state_dict_pre_hook</c>).
    /// </summary>
    /// <param name="hook">The hook.</param>
    /// <param name="prepend">Run it before the hooks already registered instead of after them.</param>
    /// <returns>A handle whose <see cref="RemovableHandle.Remove"/> removes the hook (also after the optimizer was disposed).</returns>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    public RemovableHandle RegisterStateDictPreHook(Action<Optimizer> hook, bool prepend = false) => Register(_stateDictPreHooks, hook, prepend);

    /// <summary>
    /// Registers a hook that runs after <see cref="StateDict"/> built the dict (PyTorch's
    /// <c>register_state_dict_post_hook</c>): it returns null to keep the dict, or a dict that replaces it (the next hook
    /// and the caller get that one).
    /// </summary>
    /// <inheritdoc cref="RegisterStateDictPreHook"/>
    public RemovableHandle RegisterStateDictPostHook(Func<Optimizer, OptimizerStateDict, OptimizerStateDict?> hook, bool prepend = false) =>
        Register(_stateDictPostHooks, hook, prepend);

    /// <summary>
    /// Registers a hook that runs when <see cref="LoadStateDict"/> (or a checkpoint load) starts, before anything is
    /// validated (PyTorch's <c>register_load_state_dict_pre_hook</c>): it returns null to load the dict it got, or a dict
    /// to load instead (to rename, add or drop state saved by another version of a model, say). What it returns is
    /// validated like any dict; if that fails, or the hook throws, the optimizer is unchanged.
    /// </summary>
    /// <inheritdoc cref="RegisterStateDictPreHook"/>
    public RemovableHandle RegisterLoadStateDictPreHook(Func<Optimizer, OptimizerStateDict, OptimizerStateDict?> hook, bool prepend = false) =>
        Register(_loadStateDictPreHooks, hook, prepend);

    /// <summary>
    /// Registers a hook that runs after <see cref="LoadStateDict"/> (or a checkpoint load) applied a dict (PyTorch's
    /// <c>register_load_state_dict_post_hook</c>); a load that failed runs none.
    /// </summary>
    /// <inheritdoc cref="RegisterStateDictPreHook"/>
    public RemovableHandle RegisterLoadStateDictPostHook(Action<Optimizer> hook, bool prepend = false) =>
        Register(_loadStateDictPostHooks, hook, prepend);

    private RemovableHandle Register<T>(HookList<T> hooks, T hook, bool prepend) where T : Delegate
    {
        ThrowIfDisposed();
        return hooks.Add(hook, prepend);
    }

    // An ordered list of hooks, copied on write so that a hook may register or remove hooks (its own included) while the
    // list runs: a call runs the hooks registered when it started. Thread-safe, for the process-wide step hooks.
    private sealed class HookList<T> where T : Delegate
    {
        private readonly object _lock = new();
        private (object Key, T Hook)[] _hooks = [];

        public T[] Snapshot
        {
            get
            {
                var hooks = Volatile.Read(ref _hooks);
                if (hooks.Length == 0) return [];
                return Array.ConvertAll(hooks, h => h.Hook);
            }
        }

        public RemovableHandle Add(T hook, bool prepend)
        {
            ArgumentNullException.ThrowIfNull(hook);
            var key = new object();
            lock (_lock)
            {
                var entry = (key, hook);
                _hooks = prepend ? [entry, .. _hooks] : [.. _hooks, entry];
            }
            return new RemovableHandle(() =>
            {
                lock (_lock) _hooks = Array.FindAll(_hooks, h => h.Key != key);
            });
        }
    }
}

/// <summary>
/// The arguments of one <c>step</c> call as step hooks see them (PyTorch's <c>args</c> and <c>kwargs</c>): a pre-hook
/// returns a changed copy (<c>arguments with { Closure = ... }</c>) to change what the step runs with.
/// </summary>
/// <param name="Closure">The closure the step runs, or null.</param>
public sealed record StepArguments(Func<Tensor>? Closure);

/// <summary>
/// Removes a registered hook (PyTorch's <c>torch.utils.hooks.RemovableHandle</c>). <see cref="Remove"/> and
/// <see cref="Dispose"/> do the same; the second call does nothing.
/// </summary>
public sealed class RemovableHandle : IDisposable
{
    private Action? _remove;

    internal RemovableHandle(Action remove) => _remove = remove;

    /// <summary>Removes the hook (PyTorch's <c>handle.remove()</c>); a hook list already running still runs it this time.</summary>
    public void Remove() => Interlocked.Exchange(ref _remove, null)?.Invoke();

    /// <summary>Removes the hook, so that <c>using var handle = optimizer.Register...(...)</c> scopes it.</summary>
    public void Dispose() => Remove();
}
