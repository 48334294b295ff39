using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Optim.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim.Amp;

/// <summary>
/// Dynamic loss scaling for float16/bfloat16 training, with the semantics of PyTorch's <c>torch.amp.GradScaler</c>:
/// <c>scale(loss).backward()</c>, optionally <c>unscale_(optimizer)</c> (to clip), <c>step(optimizer)</c>, <c>update()</c>.
/// </summary>
/// <remarks>
/// <para>
/// <c>scale</c> multiplies the loss by the scale (65536 at first), so small gradients do not underflow in half precision.
/// <c>unscale_</c> divides the optimizer's gradients by it in place, per device and dtype with ATen's
/// <c>_amp_foreach_non_finite_check_and_unscale_</c>, recording whether any was NaN or infinite. <c>step</c> then skips
/// <c>optimizer.step()</c> if one was (the parameters and the optimizer's state stay as they were) and calls it
/// otherwise. <c>update</c> multiplies the scale by <c>backoff_factor</c> after a skipped step and by
/// <c>growth_factor</c> after <c>growth_interval</c> consecutive clean ones (ATen's <c>_amp_update_scale_</c>).
/// </para>
/// <para>
/// Which route <c>step</c> takes is decided at each call from the optimizer alone, never from what an
/// <see cref="Implementation.Auto"/> group happens to resolve to: when <see cref="Optimizer.StepSupportsAmpScaling"/>
/// (every group asks for <see cref="Implementation.Fused"/>), the scale and the overflow flag are handed to the fused
/// kernels through <see cref="Optimizer.GradScale"/> and <see cref="Optimizer.FoundInf"/>, which unscale the gradients
/// and skip the update on the device, without reading the flag back to the host (PyTorch's
/// <c>_step_supports_amp_scaling</c> route); both are cleared after the step. Every other optimizer, TorchSharp's own
/// included, takes the generic route: unscale, read the flag, skip or step.
/// </para>
/// <para>
/// Where this differs from PyTorch: float16 gradients are unscaled (PyTorch refuses them in <c>unscale_</c>, expecting
/// float32 master gradients from autocast, which TorchSharp does not have); the constructor and
/// <see cref="LoadStateDict"/> reject a non-finite or non-positive scale, a backoff factor outside (0, 1) and a growth
/// interval below 1; PyTorch's <c>device</c> argument is not needed (the scale lives on the device of the first tensor
/// scaled). A scaler is used from one thread at a time.
/// </para>
/// </remarks>
public sealed class GradScaler : IDisposable
{
    private readonly bool _enabled;
    private double _initScale;
    private double _growthFactor;
    private double _backoffFactor;
    private int _growthInterval;
    private int _initGrowthTracker;

    // Created lazily by the first scale(), on the device of its tensor; never in a caller's dispose scope.
    private Tensor? _scale;
    private Tensor? _growthTracker;

    // PyTorch's _per_optimizer_states, keyed by the optimizer object.
    private Dictionary<torch.optim.Optimizer, OptimizerRecord> _perOptimizer = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    /// <summary>Creates a scaler; <c>GradScaler()</c> has PyTorch's defaults.</summary>
    /// <param name="init_scale">The first scale.</param>
    /// <param name="growth_factor">Multiplies the scale after <paramref name="growth_interval"/> consecutive clean steps; above 1.</param>
    /// <param name="backoff_factor">Multiplies the scale after a step whose gradients overflowed; in (0, 1).</param>
    /// <param name="growth_interval">Consecutive clean steps before the scale grows; at least 1.</param>
    /// <param name="enabled">When false, <c>step</c> just calls <c>optimizer.step()</c> and every other method is a no-op.</param>
    /// <exception cref="ArgumentOutOfRangeException">A hyperparameter is out of range (only checked when enabled, as PyTorch).</exception>
    public GradScaler(double init_scale = 65536.0, double growth_factor = 2.0, double backoff_factor = 0.5, int growth_interval = 2000,
        bool enabled = true)
    {
        _enabled = enabled;
        if (!enabled) return;
        Validate(init_scale, growth_factor, backoff_factor, growth_interval, growthTracker: 0);
        _initScale = init_scale;
        _growthFactor = growth_factor;
        _backoffFactor = backoff_factor;
        _growthInterval = growth_interval;
    }

    private enum Stage
    {
        Ready,
        Unscaled,
        Stepped,
    }

    private sealed class OptimizerRecord
    {
        public Stage Stage { get; set; } = Stage.Ready;

        // One overflow flag per device that had gradients (float32, 0-dim, owned here).
        public Dictionary<(DeviceType, int), Tensor> FoundInfPerDevice { get; set; } = new();

        public void Release()
        {
            foreach (var t in FoundInfPerDevice.Values) t.Dispose();
            FoundInfPerDevice.Clear();
        }
    }

    /// <summary>Whether this scaler scales (PyTorch's <c>is_enabled()</c>).</summary>
    public bool is_enabled() => _enabled;

    /// <summary>
    /// Multiplies <paramref name="outputs"/> (usually the loss) by the scale, creating the scale on its device on first
    /// use. Returns <paramref name="outputs"/> itself when disabled. The product is registered in the caller's dispose scope.
    /// </summary>
    /// <param name="outputs">The tensor to scale.</param>
    public Tensor scale(Tensor outputs)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        if (!_enabled) return outputs;
        ThrowIfDisposed();
        if (_scale is null) LazyInitScaleGrowthTracker(outputs.device);
        using var scope = NewDisposeScope();
        return outputs.mul(OnDevice(_scale!, outputs)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Scales several tensors (several losses), copying the scale once to each device they live on. Returns the same
    /// tensors when disabled.
    /// </summary>
    /// <param name="outputs">The tensors to scale.</param>
    public IReadOnlyList<Tensor> scale(IEnumerable<Tensor> outputs)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        var list = outputs.ToList();
        if (!_enabled) return list;
        ThrowIfDisposed();
        if (list.Count == 0) return list;
        if (_scale is null) LazyInitScaleGrowthTracker(list[0].device);
        using var scope = NewDisposeScope();
        var perDevice = new Dictionary<(DeviceType, int), Tensor>();
        var scaled = new Tensor[list.Count];
        for (var i = 0; i < list.Count; i++)
        {
            var key = DeviceKey(list[i]);
            if (!perDevice.TryGetValue(key, out var s)) perDevice[key] = s = OnDevice(_scale!, list[i]);
            scaled[i] = list[i].mul(s).MoveToOuterDisposeScope();
        }
        return scaled;
    }

    /// <summary>
    /// Divides the gradients of <paramref name="optimizer"/>'s parameters by the scale in place and records, per device,
    /// whether any was NaN or infinite (no host synchronization). Optional: <c>step</c> does it when it was not called,
    /// so call it only to work on unscaled gradients (clipping) between <c>backward()</c> and <c>step</c>; at most once
    /// per optimizer between two <c>update()</c>s.
    /// </summary>
    /// <param name="optimizer">The optimizer whose parameters' gradients to unscale (any TorchSharp optimizer).</param>
    /// <exception cref="InvalidOperationException">Called twice, after <c>step</c>, or before any <c>scale</c>.</exception>
    public void unscale_(torch.optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (!_enabled) return;
        ThrowIfDisposed();
        CheckScaleGrowthTracker("unscale_");
        var record = Record(optimizer);
        if (record.Stage == Stage.Unscaled)
            throw new InvalidOperationException("unscale_() has already been called on this optimizer since the last update().");
        if (record.Stage == Stage.Stepped) throw new InvalidOperationException("unscale_() is being called after step().");

        using var scope = NewDisposeScope();
        // As PyTorch: the reciprocal in float64, then rounded to float32.
        var invScale = _scale!.to(ScalarType.Float64).reciprocal().to(ScalarType.Float32);
        record.Release();
        record.FoundInfPerDevice = UnscaleGrads(optimizer, invScale);
        record.Stage = Stage.Unscaled;
    }

    /// <summary>
    /// Unscales the gradients unless <c>unscale_</c> already did, then runs <c>optimizer.step()</c> unless a gradient
    /// was NaN or infinite (see the class remarks for the fused route, which skips on the device instead). When disabled
    /// it just calls <c>optimizer.step(closure)</c>.
    /// </summary>
    /// <param name="optimizer">The optimizer to step.</param>
    /// <param name="closure">Only allowed when disabled: closure-driven steps are not supported with scaling, as in PyTorch.</param>
    /// <returns>What <c>optimizer.step()</c> returned, or null when the step was skipped.</returns>
    /// <exception cref="InvalidOperationException">A closure, a closure-driven optimizer (LBFGS), a second step before
    /// <c>update()</c>, or no <c>scale</c> before.</exception>
    public Tensor? step(torch.optim.Optimizer optimizer, Func<Tensor>? closure = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (!_enabled) return optimizer.step(closure);
        ThrowIfDisposed();
        if (closure is not null || IsClosureDriven(optimizer))
            throw new InvalidOperationException("Closure use is not currently supported if GradScaler is enabled.");
        CheckScaleGrowthTracker("step");
        var record = Record(optimizer);
        if (record.Stage == Stage.Stepped) throw new InvalidOperationException("step() has already been called since the last update().");

        if (optimizer is Optimizer optim && optim.StepSupportsAmpScaling) return FusedStep(optim, record);

        if (record.Stage == Stage.Ready) unscale_(optimizer);
        if (record.FoundInfPerDevice.Count == 0) throw new InvalidOperationException("No inf checks were recorded for this optimizer.");
        var foundInf = record.FoundInfPerDevice.Values.Any(t => t.item<float>() != 0);
        var retval = foundInf ? null : optimizer.step();
        record.Stage = Stage.Stepped;
        return retval;
    }

    // PyTorch's _step_supports_amp_scaling route: the fused kernels unscale (unless unscale_ already did) and skip
    // on the device; found_inf is never read here.
    private Tensor? FusedStep(Optimizer optimizer, OptimizerRecord record)
    {
        if (record.Stage == Stage.Ready)
        {
            // Only the check: unscaling by 1.
            using var checkScope = NewDisposeScope();
            var one = torch.full(Array.Empty<long>(), S(1.0f), ScalarType.Float32, _scale!.device);
            record.Release();
            record.FoundInfPerDevice = UnscaleGrads(optimizer, one);
        }
        var previousScale = optimizer.GradScale;
        using var scope = NewDisposeScope();
        Tensor? foundInf = null;
        foreach (var t in record.FoundInfPerDevice.Values)
        {
            var here = OnDevice(t, _scale!);
            foundInf = foundInf is null ? here.clone() : foundInf.add_(here, One);
        }
        try
        {
            if (record.Stage != Stage.Unscaled)
                optimizer.GradScale = previousScale is null ? _scale : _scale!.mul(OnDevice(previousScale, _scale!));
            optimizer.FoundInf = foundInf;
            var retval = optimizer.step();
            record.Stage = Stage.Stepped;
            return retval?.MoveToOuterDisposeScope();
        }
        finally
        {
            optimizer.GradScale = null;
            optimizer.FoundInf = null;
        }
    }

    /// <summary>
    /// Updates the scale from the overflow flags of this iteration's steps: times <c>backoff_factor</c> if any step
    /// found NaN or infinity, times <c>growth_factor</c> after <c>growth_interval</c> consecutive clean iterations.
    /// Call it once per iteration, after <c>step</c> for every optimizer. It reads nothing back to the host.
    /// </summary>
    /// <param name="new_scale">Sets the scale to this value instead.</param>
    /// <exception cref="InvalidOperationException">No <c>scale</c> before, or no step or unscale recorded.</exception>
    public void update(double? new_scale = null)
    {
        if (!_enabled) return;
        ThrowIfDisposed();
        CheckScaleGrowthTracker("update");
        if (new_scale is double value)
        {
            if (!double.IsFinite(value) || value <= 0)
                throw new ArgumentOutOfRangeException(nameof(new_scale), value, "new_scale must be a positive finite number.");
            _scale!.fill_(S(value));
        }
        else
        {
            using var scope = NewDisposeScope();
            var foundInfs = _perOptimizer.Values.SelectMany(r => r.FoundInfPerDevice.Values).ToList();
            if (foundInfs.Count == 0) throw new InvalidOperationException("No inf checks were recorded prior to update.");
            var combined = OnDevice(foundInfs[0], _scale!).clone();
            for (var i = 1; i < foundInfs.Count; i++) combined.add_(OnDevice(foundInfs[i], _scale!), One);
            Aten.AmpUpdateScale_(_scale!, _growthTracker!, combined, _growthFactor, _backoffFactor, _growthInterval);
        }
        ResetPerOptimizerStates();
    }

    /// <summary>Sets the scale to the value of a one-element tensor (copied; later changes to it do not matter).</summary>
    /// <param name="new_scale">A one-element tensor without gradient.</param>
    public void update(Tensor new_scale)
    {
        ArgumentNullException.ThrowIfNull(new_scale);
        if (!_enabled) return;
        ThrowIfDisposed();
        CheckScaleGrowthTracker("update");
        if (new_scale.numel() != 1 || new_scale.requires_grad)
            throw new ArgumentException("new_scale should be a float or a 1-element tensor with requires_grad=False.", nameof(new_scale));
        using (var scope = NewDisposeScope())
        {
            _scale!.copy_(new_scale.reshape(Array.Empty<long>()));
        }
        ResetPerOptimizerStates();
    }

    /// <summary>The current scale (1.0 when disabled; the initial scale before the first <c>scale</c>). Reads the device.</summary>
    public double get_scale()
    {
        if (!_enabled) return 1.0;
        ThrowIfDisposed();
        return _scale is null ? _initScale : _scale.item<float>();
    }

    /// <summary>The growth factor.</summary>
    public double get_growth_factor() => _growthFactor;

    /// <summary>Sets the growth factor (above 1).</summary>
    /// <param name="new_factor">The new factor.</param>
    public void set_growth_factor(double new_factor)
    {
        CheckGrowthFactor(new_factor, nameof(new_factor));
        _growthFactor = new_factor;
    }

    /// <summary>The backoff factor.</summary>
    public double get_backoff_factor() => _backoffFactor;

    /// <summary>Sets the backoff factor (in (0, 1)).</summary>
    /// <param name="new_factor">The new factor.</param>
    public void set_backoff_factor(double new_factor)
    {
        CheckBackoffFactor(new_factor, nameof(new_factor));
        _backoffFactor = new_factor;
    }

    /// <summary>The growth interval.</summary>
    public int get_growth_interval() => _growthInterval;

    /// <summary>Sets the growth interval (at least 1).</summary>
    /// <param name="new_interval">The new interval.</param>
    public void set_growth_interval(int new_interval)
    {
        CheckGrowthInterval(new_interval, nameof(new_interval));
        _growthInterval = new_interval;
    }

    /// <summary>Consecutive clean steps since the scale last changed. Reads the device.</summary>
    public int GrowthTracker => !_enabled ? 0 : _growthTracker is null ? _initGrowthTracker : _growthTracker.item<int>();

    /// <summary>
    /// The scaler's state (PyTorch's <c>state_dict()</c>), or null when disabled (PyTorch's empty dict). Take it after
    /// <c>update()</c>, at the end of an iteration.
    /// </summary>
    public GradScalerState? StateDict()
    {
        if (!_enabled) return null;
        ThrowIfDisposed();
        return new GradScalerState(get_scale(), _growthFactor, _backoffFactor, _growthInterval, GrowthTracker);
    }

    /// <summary>
    /// Restores a state from <see cref="StateDict"/> (or PyTorch's, via <see cref="GradScalerState.FromDictionary"/>).
    /// Everything is checked before anything changes. A no-op when disabled, as in PyTorch.
    /// </summary>
    /// <param name="state">The state; null (a disabled scaler's) is an error for an enabled scaler.</param>
    /// <exception cref="ArgumentException">The state is null or holds an out-of-range value; nothing changed.</exception>
    public void LoadStateDict(GradScalerState? state) => PrepareLoad(state)();

    /// <summary>
    /// <see cref="LoadStateDict"/> in two parts: checks <paramref name="state"/> (throwing as it would, changing
    /// nothing) and returns the action that applies it, which cannot fail.
    /// </summary>
    internal Action PrepareLoad(GradScalerState? state)
    {
        if (!_enabled) return () => { };
        ThrowIfDisposed();
        if (state is null)
            throw new ArgumentException("The source state dict is empty, possibly because it was saved from a disabled instance of GradScaler.", nameof(state));
        Validate(state.Scale, state.GrowthFactor, state.BackoffFactor, state.GrowthInterval, state.GrowthTracker, nameof(state));
        return () => Apply(state);
    }

    private void Apply(GradScalerState state)
    {
        _initScale = state.Scale;
        _scale?.fill_(S(state.Scale));
        _growthFactor = state.GrowthFactor;
        _backoffFactor = state.BackoffFactor;
        _growthInterval = state.GrowthInterval;
        _initGrowthTracker = state.GrowthTracker;
        _growthTracker?.fill_(S(state.GrowthTracker));
    }

    /// <summary>Frees the scale tensors and any overflow flags still held.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ResetPerOptimizerStates();
        _scale?.Dispose();
        _growthTracker?.Dispose();
        _scale = _growthTracker = null;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    // PyTorch asserts the two factors' bounds; the rest is checked here so that a bad value fails at once, not as
    // a scale that silently stops changing (a tracker at or past the interval never triggers growth again).
    private static void Validate(double scale, double growthFactor, double backoffFactor, int growthInterval, int growthTracker, string? argument = null)
    {
        CheckGrowthFactor(growthFactor, argument ?? "growth_factor");
        CheckBackoffFactor(backoffFactor, argument ?? "backoff_factor");
        if (!double.IsFinite(scale) || scale <= 0 || scale > float.MaxValue)
            throw new ArgumentOutOfRangeException(argument ?? "init_scale", scale, "The scale must be a positive finite float32 number.");
        CheckGrowthInterval(growthInterval, argument ?? "growth_interval");
        if (growthTracker < 0 || growthTracker >= growthInterval)
            throw new ArgumentOutOfRangeException(argument ?? "_growth_tracker", growthTracker,
                string.Create(CultureInfo.InvariantCulture, $"The growth tracker must lie in [0, growth_interval = {growthInterval})."));
    }

    private static void CheckGrowthFactor(double value, string argument)
    {
        if (!(value > 1.0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(argument, value, "The growth factor must be > 1.0.");
    }

    private static void CheckBackoffFactor(double value, string argument)
    {
        if (!(value < 1.0) || !(value > 0))
            throw new ArgumentOutOfRangeException(argument, value, "The backoff factor must be < 1.0 (and > 0).");
    }

    private static void CheckGrowthInterval(int value, string argument)
    {
        if (value < 1) throw new ArgumentOutOfRangeException(argument, value, "The growth interval must be at least 1.");
    }

    private void LazyInitScaleGrowthTracker(Device device)
    {
        _scale = torch.full(Array.Empty<long>(), S(_initScale), ScalarType.Float32, device).DetachFromDisposeScope();
        _growthTracker = torch.full(Array.Empty<long>(), S(_initGrowthTracker), ScalarType.Int32, device).DetachFromDisposeScope();
    }

    private void CheckScaleGrowthTracker(string funcname)
    {
        const string Fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration.";
        if (_scale is null) throw new InvalidOperationException($"Attempted {funcname} but _scale is None.  " + Fix);
    }

    private OptimizerRecord Record(torch.optim.Optimizer optimizer)
    {
        if (!_perOptimizer.TryGetValue(optimizer, out var record)) _perOptimizer[optimizer] = record = new OptimizerRecord();
        return record;
    }

    private void ResetPerOptimizerStates()
    {
        foreach (var record in _perOptimizer.Values) record.Release();
        _perOptimizer = new(ReferenceEqualityComparer.Instance);
    }

    // LBFGS re-evaluates the loss through its closure, which the scaler cannot scale: PyTorch's closure error.
    private static bool IsClosureDriven(torch.optim.Optimizer optimizer) =>
        (optimizer is Optimizer ours && AlgorithmCatalog.Of(ours)?.RequiresClosure == true)
        || optimizer is LBFGS or TorchSharp.Modules.LBFGS || optimizer.GetType().Name == "LBFGS";

    // PyTorch's _unscale_grads_: the gradients grouped by device, then dtype (in order of first appearance), one
    // _amp_foreach_non_finite_check_and_unscale_ per group. Returns an owned found_inf per device that had gradients.
    private static Dictionary<(DeviceType, int), Tensor> UnscaleGrads(torch.optim.Optimizer optimizer, Tensor invScale)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var perDevice = new Dictionary<(DeviceType, int), Dictionary<ScalarType, List<Tensor>>>();
        var devices = new List<(DeviceType, int)>();
        foreach (var p in optimizer.parameters())
        {
            var grad = p.grad;
            if (grad is null) continue;
            // PyTorch unscales a sparse gradient's values (coalesced first in float16); TorchSharp 0.107 binds neither
            // coalesce nor _values, and no Optim optimizer takes sparse gradients.
            if (grad.is_sparse) throw new NotSupportedException("GradScaler does not support sparse gradients.");
            var key = DeviceKey(grad);
            if (!perDevice.TryGetValue(key, out var perDtype))
            {
                perDevice[key] = perDtype = new Dictionary<ScalarType, List<Tensor>>();
                devices.Add(key);
            }
            if (!perDtype.TryGetValue(grad.dtype, out var grads)) perDtype[grad.dtype] = grads = new List<Tensor>();
            grads.Add(grad);
        }

        var foundInfPerDevice = new Dictionary<(DeviceType, int), Tensor>();
        try
        {
            foreach (var key in devices)
            {
                var device = perDevice[key].Values.First()[0].device;
                var foundInf = torch.zeros(Array.Empty<long>(), ScalarType.Float32, device).DetachFromDisposeScope();
                foundInfPerDevice[key] = foundInf;
                var invScaleHere = invScale.to(device);
                foreach (var grads in perDevice[key].Values) Unscale(grads, foundInf, invScaleHere);
            }
        }
        catch
        {
            foreach (var t in foundInfPerDevice.Values) t.Dispose();
            throw;
        }
        return foundInfPerDevice;
    }

    // One device's gradients of one dtype. ATen's CUDA kernel has no bfloat16 (PyTorch raises "not implemented for
    // 'BFloat16'"), while its CPU kernel computes a bfloat16 element in float and rounds the product back: bfloat16 CUDA
    // gradients are unscaled through float32 copies, which gives those bits instead of an error.
    private static void Unscale(List<Tensor> grads, Tensor foundInf, Tensor invScale)
    {
        if (grads[0].dtype != ScalarType.BFloat16 || grads[0].device_type != DeviceType.CUDA)
        {
            Aten.AmpForeachNonFiniteCheckAndUnscale_(grads, foundInf, invScale);
            return;
        }
        using var scope = NewDisposeScope();
        var wide = grads.ConvertAll(g => g.to(ScalarType.Float32));
        Aten.AmpForeachNonFiniteCheckAndUnscale_(wide, foundInf, invScale);
        for (var i = 0; i < grads.Count; i++) grads[i].copy_(wide[i]);
    }

    private static (DeviceType, int) DeviceKey(Tensor t) => (t.device_type, t.device_index);

    // `t` on `like`'s device: t itself when it is there already (never a copy to dispose), else a copy in the current scope.
    private static Tensor OnDevice(Tensor t, Tensor like) =>
        Devices.Same(t, like) ? t : t.to(like.device);
}
