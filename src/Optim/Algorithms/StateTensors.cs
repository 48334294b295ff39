using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>
/// How algorithms create and advance state the way PyTorch does: the <c>step</c> counter (a 0-dim tensor whose value the
/// scalar math reads as a Python float), other 0-dim scalars, and buffers created on demand. An algorithm that keeps a
/// step count declares it with <see cref="StateSchema.Step"/> and creates it with <see cref="NewStep()"/>, so state dicts,
/// checkpoints and loads treat it as PyTorch treats <c>step</c> (kept as saved, never cast to the parameter's dtype).
/// </summary>
public static class StateTensors
{
    /// <summary>A new <c>step</c> counter holding <paramref name="count"/> (see <see cref="NewStep()"/>).</summary>
    /// <param name="count">The step count.</param>
    public static Tensor NewStep(long count)
    {
        var step = NewStep();
        step.fill_(S(count));
        return step;
    }

    /// <summary>Whether every tensor except <c>step</c> is all zeros (state as TorchSharp creates it before a step).</summary>
    internal static bool AllZeroExceptStep(IReadOnlyDictionary<string, Tensor> state)
    {
        using var scope = NewDisposeScope();
        foreach (var (key, tensor) in state)
        {
            if (key != StateKeys.Step && tensor.count_nonzero().item<long>() != 0) return false;
        }
        return true;
    }

    /// <summary>
    /// A new <c>step</c> counter as PyTorch creates it, <c>torch.tensor(0.0, dtype=_get_scalar_dtype())</c>: a 0-dim CPU
    /// tensor, float64 when the default dtype is float64 and float32 otherwise.
    /// </summary>
    public static Tensor NewStep() =>
        torch.tensor(0.0, get_default_dtype() == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32);

    /// <summary>
    /// A 0-dim CPU scalar of the step counter's dtype holding <paramref name="value"/>, as PyTorch creates other scalar
    /// state (NAdam's <c>mu_product</c>: <c>torch.tensor(1.0, dtype=_get_scalar_dtype())</c>).
    /// </summary>
    /// <param name="value">The value.</param>
    public static Tensor NewScalar(double value) =>
        torch.tensor(value, get_default_dtype() == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32);

    /// <summary>
    /// PyTorch's <c>step_t += 1; step = step_t.item()</c>: increments the counter in place and returns its new value as
    /// the Python float the scalar math uses (a float32 counter's value, widened exactly).
    /// </summary>
    /// <param name="step">The counter (a state tensor declared with <see cref="StateSchema.Step"/>).</param>
    public static double IncrementStep(Tensor step)
    {
        ArgumentNullException.ThrowIfNull(step);
        step.add_(S(1), One);
        return Value(step);
    }

    /// <summary>PyTorch's <c>_get_value(step)</c>: the value of a 0-dim state tensor as a Python float.</summary>
    /// <param name="step">The counter or scalar.</param>
    public static double Value(Tensor step)
    {
        ArgumentNullException.ThrowIfNull(step);
        using var value = step.ToScalar();
        return value.ToDouble();
    }

    /// <summary>
    /// PyTorch's step counting around a fused kernel, which does not count steps itself: the bucket's
    /// <see cref="FusedSteps"/> are advanced first (<c>torch._foreach_add_(state_steps, 1)</c>), handed to
    /// <paramref name="kernel"/>, and taken back where <paramref name="foundInf"/> says the step was skipped
    /// (<c>torch._foreach_sub_(state_steps, [found_inf] * len(state_steps))</c>).
    /// </summary>
    internal static void CountFusedStep(StepBatch bucket, Tensor? foundInf, Action<IReadOnlyList<Tensor>> kernel)
    {
        var steps = FusedSteps(bucket);
        Aten.ForeachAdd_(steps, 1.0);
        kernel(steps);
        if (foundInf is not null) Aten.ForeachSub_(steps, Enumerable.Repeat(foundInf, steps.Count).ToList());
    }

    /// <summary>
    /// The step counts of a bucket as the fused kernels take them: float32 on the parameters' device (PyTorch creates
    /// them there for fused runs). Steps from another path or a checkpoint are moved once and stay moved.
    /// </summary>
    private static List<Tensor> FusedSteps(StepBatch bucket)
    {
        var steps = new List<Tensor>(bucket.Count);
        for (var i = 0; i < bucket.Count; i++)
        {
            var step = bucket.States[i][StateKeys.Step];
            var p = bucket.Params[i];
            if (step.dtype != ScalarType.Float32 || step.device_type != p.device_type || step.device_index != p.device_index)
            {
                step = step.to(ScalarType.Float32, p.device);
                bucket.States[i].Set(StateKeys.Step, step);
            }
            steps.Add(step);
        }
        return steps;
    }

    /// <summary>
    /// The state tensor under <paramref name="key"/>, created when missing as <c>torch.zeros_like(p,
    /// memory_format=torch.preserve_format)</c> (preserve is libtorch's default memory format). PyTorch
    /// creates optional buffers only on a parameter's first step (and fails with a KeyError if the option is turned on
    /// later); creating them here as well means an option turned on after the first step (RMSprop's momentum raised from 0
    /// by a scheduler, amsgrad or centered switched on) starts its buffer from zero.
    /// </summary>
    /// <param name="state">The parameter's state.</param>
    /// <param name="key">The buffer's key (declared in the algorithm's <see cref="StateSchema"/>).</param>
    /// <param name="parameter">The parameter the buffer is like.</param>
    public static Tensor GetOrAddZeros(ParameterState state, string key, Tensor parameter)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(parameter);
        if (state.TryGetValue(key, out var existing)) return existing;
        var created = zeros_like(parameter);
        state.Set(key, created);
        return created;
    }
}
