using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Support;

/// <summary>
/// Checks every algorithm must pass (PyTorch's test_optim.py asks the same of each optimizer). The test classes call
/// them with their own configurations, so no check is written twice.
/// </summary>
public static class Behaviour
{
    /// <summary>
    /// Training 10 steps, checkpointing, restoring into fresh parameters and a fresh optimizer and training 10 more gives
    /// exactly the parameters and state of an uninterrupted 20-step run.
    /// </summary>
    public static void ResumesBitExactly<TOptions>(Func<IReadOnlyList<Parameter>, Optimizer<TOptions>> make, ScalarType dtype, bool viaFile)
        where TOptions : OptimizerOptions
    {
        var c = RandomCases.Make(dtype, seed: 1234, steps: 20);

        var straightParams = c.MakeParameters();
        using var straight = make(straightParams);
        var expected = c.Run(straightParams, straight);

        var firstParams = c.MakeParameters();
        using var first = make(firstParams);
        var trajectory = c.Run(firstParams, first, 0, 10);

        var resumedParams = firstParams.Select(p => new Parameter(p.detach().clone())).ToList();
        using var resumed = make(resumedParams);
        if (viaFile)
        {
            var path = Path.Combine(Path.GetTempPath(), $"optim-{Guid.NewGuid():N}.ckpt");
            try
            {
                first.Save(path);
                resumed.Load(path);
            }
            finally
            {
                File.Delete(path);
            }
        }
        else
        {
            resumed.LoadStateDict(first.StateDict());
        }
        // The resumed optimizer must own copies: freeing the original's state may not affect it.
        first.Dispose();
        trajectory.AddRange(c.Run(resumedParams, resumed, 10, 20));

        Trajectories.ShouldBeBitwise(trajectory, expected);
        StatesShouldBeBitwiseEqual(resumed, resumedParams, straight, straightParams);
    }

    /// <summary>Two optimizers hold the same state keys, in the same order, with bitwise-equal tensors.</summary>
    public static void StatesShouldBeBitwiseEqual<TOptions>(Optimizer<TOptions> actual, IReadOnlyList<Parameter> actualParams,
        Optimizer<TOptions> expected, IReadOnlyList<Parameter> expectedParams) where TOptions : OptimizerOptions
    {
        for (var i = 0; i < expectedParams.Count; i++)
        {
            var e = expected.State[expectedParams[i]];
            var a = actual.State[actualParams[i]];
            a.Keys.Should().Equal(e.Keys, $"param {i}");
            foreach (var key in e.Keys)
                Trajectories.BitwiseEqual(a[key], e[key]).Should().BeTrue($"state '{key}' of param {i} should be bitwise equal");
        }
    }

    /// <summary>A group with lr 1e-28 keeps its parameters bit for bit while a group with <paramref name="lr"/> moves.</summary>
    public static void TinyLearningRateLeavesGroupUnchanged<TOptions>(Func<IEnumerable<ParamGroupSpec<TOptions>>, Optimizer<TOptions>> make,
        double lr, ScalarType dtype) where TOptions : OptimizerOptions
    {
        var c = RandomCases.Make(dtype, seed: 28, steps: 10);
        var tiny = c.MakeParameters();
        var normal = c.MakeParameters();
        using var opt = make(new[]
        {
            new ParamGroupSpec<TOptions>(tiny, o => o with { Lr = 1e-28 }),
            new ParamGroupSpec<TOptions>(normal, o => o with { Lr = lr }),
        });
        for (var s = 0; s < c.Grads.Count; s++)
        {
            c.SetGradients(tiny, s);
            c.SetGradients(normal, s);
            opt.step();
        }
        for (var i = 0; i < tiny.Count; i++)
        {
            GoldenCase.Values(tiny[i]).Should().Equal(c.Initial[i], $"param {i} of the lr=1e-28 group should be unchanged");
            GoldenCase.Values(normal[i]).Should().NotEqual(c.Initial[i], $"param {i} of the lr={lr} group should move");
        }
    }

    /// <summary>
    /// Steps without any gradient change no parameter and create no state; an algorithm that creates its state eagerly
    /// checks it with <paramref name="checkState"/> instead.
    /// </summary>
    public static void StepsWithoutGradientsChangeNothing<TOptions>(Func<IReadOnlyList<Parameter>, Optimizer<TOptions>> make,
        Action<Optimizer<TOptions>, IReadOnlyList<Parameter>>? checkState = null) where TOptions : OptimizerOptions
    {
        var c = RandomCases.Make(ScalarType.Float32, seed: 7, steps: 1);
        var ps = c.MakeParameters();
        using var opt = make(ps);
        opt.step();
        opt.step();
        for (var i = 0; i < ps.Count; i++) GoldenCase.Values(ps[i]).Should().Equal(c.Initial[i]);
        if (checkState is null) opt.State.Should().BeEmpty();
        else checkState(opt, ps);
    }

    /// <summary>
    /// Steps with all-zero gradients on a fresh optimizer: <paramref name="expectedParams"/> maps the initial values
    /// and step count to what PyTorch leaves (null: unchanged); <paramref name="checkState"/> sees the state after
    /// <paramref name="steps"/> steps.
    /// </summary>
    public static void ZeroGradients<TOptions>(Func<IReadOnlyList<Parameter>, Optimizer<TOptions>> make, ScalarType dtype, int steps,
        Action<Optimizer<TOptions>, IReadOnlyList<Parameter>> checkState, Func<Tensor, int, Tensor>? expectedParams = null)
        where TOptions : OptimizerOptions
    {
        var c = RandomCases.Make(dtype, seed: 0, steps: 1);
        var ps = c.MakeParameters();
        var initial = ps.Select(p => p.detach().clone()).ToList();
        using var opt = make(ps);
        for (var s = 0; s < steps; s++)
        {
            foreach (var p in ps) p.grad = zeros_like(p);
            opt.step();
        }
        for (var i = 0; i < ps.Count; i++)
        {
            var expected = expectedParams is null ? initial[i] : expectedParams(initial[i], steps);
            Trajectories.BitwiseEqual(ps[i], expected).Should().BeTrue($"param {i} after {steps} zero-gradient steps");
        }
        checkState(opt, ps);
    }

    /// <summary>Several steps never write into the gradients (PyTorch checks this for every optimizer).</summary>
    public static void GradientsAreNeverWritten<TOptions>(Func<IReadOnlyList<Parameter>, Optimizer<TOptions>> make, ScalarType dtype)
        where TOptions : OptimizerOptions
    {
        var c = RandomCases.Make(dtype, seed: 99, steps: 6);
        var ps = c.MakeParameters();
        using var opt = make(ps);
        for (var s = 0; s < c.Grads.Count; s++)
        {
            c.SetGradients(ps, s);
            var before = ps.Select(p => p.grad?.clone()).ToList();
            opt.step();
            for (var i = 0; i < ps.Count; i++)
            {
                if (before[i] is null) ps[i].grad.Should().BeNull();
                else Trajectories.BitwiseEqual(ps[i].grad!, before[i]!).Should().BeTrue($"the gradient of param {i} at step {s} must not change");
            }
        }
    }

    /// <summary>All tensors of a state entry, as doubles.</summary>
    public static double[] Values(ParameterState state, string key) => GoldenCase.Values(state[key]);
}
