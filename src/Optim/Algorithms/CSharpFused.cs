using System;
using System.Collections.Generic;
using Optim.Kernels;
using static TorchSharp.torch;

namespace Optim;

/// <summary>
/// The fused path of an algorithm ATen has no fused kernel for: this library's C# CPU kernel (<see cref="CpuFused"/>)
/// over a bucket, with the step counted as ATen's fused kernels count it (<see cref="StateTensors.CountFusedStep"/>).
/// </summary>
internal static class CSharpFused
{
    /// <summary>
    /// Runs the update over <paramref name="bucket"/>; <paramref name="stateKeys"/> are the state streams S0..S3 in
    /// order (null: absent), each created as zeros where missing, as the for-loop creates them.
    /// </summary>
    public static void Step<TFloat, TDouble>(StepBatch bucket, string?[] stateKeys, Tensor? gradScale, Tensor? foundInf,
        TFloat updateFloat, TDouble updateDouble)
        where TFloat : struct, IFusedUpdate<float>
        where TDouble : struct, IFusedUpdate<double>
    {
        var kernel = Prepare(bucket, stateKeys);
        StateTensors.CountFusedStep(bucket, foundInf, _ => kernel.Run(gradScale, foundInf, _ => updateFloat, _ => updateDouble));
        MarkModified(bucket, stateKeys, gradScale);
    }

    /// <summary>
    /// As <see cref="Step{TFloat, TDouble}(StepBatch, string?[], Tensor?, Tensor?, TFloat, TDouble)"/>, for an update whose
    /// scalars depend on the parameter's step count (bias corrections): <paramref name="updateFloat"/> and
    /// <paramref name="updateDouble"/> make it from the parameter's index in the bucket and its count after this step's
    /// increment. Exactly one of them is called per parameter, and only when the update runs (not when
    /// <paramref name="foundInf"/> skips it), so it may also advance scalar state (NAdam's mu_product).
    /// </summary>
    public static void Step<TFloat, TDouble>(StepBatch bucket, string?[] stateKeys, Tensor? gradScale, Tensor? foundInf,
        Func<int, double, TFloat> updateFloat, Func<int, double, TDouble> updateDouble)
        where TFloat : struct, IFusedUpdate<float>
        where TDouble : struct, IFusedUpdate<double>
    {
        var kernel = Prepare(bucket, stateKeys);
        StateTensors.CountFusedStep(bucket, foundInf, steps =>
            kernel.Run(gradScale, foundInf, i => updateFloat(i, StateTensors.Value(steps[i])), i => updateDouble(i, StateTensors.Value(steps[i]))));
        MarkModified(bucket, stateKeys, gradScale);
    }

    // The kernel writes memory directly, which autograd's version counters do not see: count the change as ATen's fused
    // kernels (in-place ops on every argument) do, so that a backward through a graph that saved a parameter before the
    // step fails as PyTorch's does instead of using the new values silently. The gradients change only when unscaled.
    private static void MarkModified(StepBatch bucket, string?[] stateKeys, Tensor? gradScale)
    {
        var written = new List<Tensor>(bucket.Params);
        foreach (var state in bucket.States)
        {
            foreach (var key in stateKeys)
            {
                if (key is not null && state.Get(key) is { } t) written.Add(t);
            }
        }
        if (gradScale is not null) written.AddRange(bucket.Grads);
        Aten.MarkModified_(written);
    }

    private static CpuFused.FusedRun Prepare(StepBatch bucket, string?[] stateKeys)
    {
        var states = new Tensor?[bucket.Count][];
        for (var i = 0; i < bucket.Count; i++)
        {
            states[i] = new Tensor?[stateKeys.Length];
            for (var k = 0; k < stateKeys.Length; k++)
            {
                if (stateKeys[k] is { } key) states[i][k] = StateTensors.GetOrAddZeros(bucket.States[i], key, bucket.Params[i]);
            }
        }
        return CpuFused.Prepare(bucket.Params, bucket.Grads, states, bucket.Names, stateKeys);
    }
}
