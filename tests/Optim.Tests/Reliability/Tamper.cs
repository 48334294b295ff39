using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Reliability;

/// <summary>
/// The hostile inputs of the reliability tests, applied at random by <see cref="Run"/>: each tampers with a trained
/// optimizer through the public API only, then steps (or loads); the outcome must be success or an exception with every
/// parameter, state tensor and option as they were just before. <see cref="Run"/> runs in a child process (see
/// <see cref="FuzzTests"/>), so a native crash fails the test instead of killing the test run.
/// </summary>
public static class Tamper
{
    /// <summary>The paths worth tampering with for an algorithm (one, its own, for one without the <c>implementation</c> option).</summary>
    public static IEnumerable<Implementation> Paths(AlgorithmInfo info) =>
        !info.HasImplementations ? new[] { info.DefaultOptions.Implementation }
        : new[] { Implementation.Auto, Implementation.ForLoop, Implementation.Foreach, Implementation.Fused }
            .Where(i => i != Implementation.Fused || info.HasFusedKernel);

    /// <summary>A trained optimizer over three parameters (a 0-dim one among them), with state.</summary>
    public static (Optimizer Opt, List<Parameter> Params) Trained(AlgorithmInfo info, Implementation path, int seed)
    {
        // A generator of its own: tests run in parallel, and the global one is shared.
        using var generator = new torch.Generator((ulong)seed);
        // Muon takes matrices: the same elements as [1, 4], [3, 5] and [1, 1].
        var ps = new List<Parameter>
        {
            new(torch.randn(Support.Algorithms.Shape(info, 4), generator: generator)),
            new(torch.randn(new long[] { 3, 5 }, generator: generator)),
            new(torch.randn(Support.Algorithms.Shape(info), generator: generator)),
        };
        var opt = info.Create(ps, info.HasImplementations ? new[] { new KeyValuePair<string, object?>("implementation", path) } : null);
        for (var s = 0; s < 2; s++)
        {
            foreach (var p in ps) p.grad = Support.Algorithms.Gradient(info, torch.randn(p.shape, generator: generator));
            Step(opt, ps);
        }
        return (opt, ps);
    }

    /// <summary>
    /// A step: plain, or for a closure-driven algorithm (LBFGS) through a closure, a quadratic loss ½‖p‖² whose
    /// gradient is computed from whatever the parameters are now (so a tampered parameter reaches the algorithm).
    /// </summary>
    public static void Step(Optimizer opt, IReadOnlyList<Parameter> ps)
    {
        if (AlgorithmCatalog.Of(opt) is not { RequiresClosure: true })
        {
            opt.step();
            return;
        }
        using var loss = opt.step(() =>
        {
            var total = torch.zeros(Array.Empty<long>(), ScalarType.Float64);
            foreach (var p in ps)
            {
                using (no_grad()) p.grad = p.detach().clone();
                total = total + p.detach().to(ScalarType.Float64).square().sum() / 2;
            }
            return total;
        });
    }

    /// <summary>Everything a failed operation must leave as it was: options, every state tensor (values, dtype, shape), every parameter.</summary>
    public static List<string> Snapshot(Optimizer opt, IReadOnlyList<Parameter> ps)
    {
        var sd = opt.StateDict();
        var snapshot = sd.ParamGroups.Select(g => string.Join(",", g.Hyperparameters.Select(h => $"{h.Key}={h.Value}")) + $";initial_lr={g.InitialLr}").ToList();
        foreach (var (id, state) in sd.State)
            foreach (var (key, t) in state) snapshot.Add($"{id}.{key}:{Describe(t)}");
        foreach (var (key, value) in sd.Global) snapshot.Add($"global.{key}:{Support.StateSnapshot.Global(value, Describe)}");
        snapshot.AddRange(ps.Select(Describe));
        return snapshot;
    }

    private static string Describe(Tensor t) =>
        t.IsInvalid ? "disposed"
        : t.is_sparse || t.device_type == DeviceType.META ? $"{t.dtype}[{string.Join(",", t.shape)}]@{t.device}{(t.is_sparse ? " sparse" : "")}"
        : $"{t.dtype}[{string.Join(",", t.shape)}]@{t.device}:{Convert.ToBase64String(t.detach().cpu().contiguous().bytes)}";

    /// <summary>
    /// Runs <paramref name="trials"/> random tamperings of <paramref name="info"/> on every path; returns the violations
    /// (empty when every outcome was a success or a clean failure).
    /// </summary>
    public static List<string> Run(AlgorithmInfo info, int seed, int trials)
    {
        var violations = new List<string>();
        var random = new Random(seed);
        foreach (var path in Paths(info))
        {
            for (var trial = 0; trial < trials; trial++)
            {
                using var scope = NewDisposeScope();
                var (opt, ps) = Trained(info, path, seed + trial);
                using var _ = opt;
                var kind = random.Next(Kinds.Length);
                var what = $"{info.Name} {path} trial {trial} {Kinds[kind]}";
                try
                {
                    Apply(kind, opt, ps, random, what, violations);
                }
                catch (Exception e)
                {
                    violations.Add($"{what}: the harness itself failed: {e}");
                }
            }
        }
        return violations;
    }

    /// <summary>How many tampered operations succeeded [0] and failed cleanly [1] (what the worker reports).</summary>
    public static readonly int[] Outcomes = new int[2];

    private static readonly string[] Kinds =
    {
        "resize a parameter", "retype a parameter", "set a state tensor", "load a tampered state dict", "load a damaged checkpoint",
    };

    private static void Apply(int kind, Optimizer opt, List<Parameter> ps, Random random, string what, List<string> violations)
    {
        var victim = ps[random.Next(ps.Count)];
        switch (kind)
        {
            case 0:
            {
                // p.set_ to another size (larger or smaller), with a gradient of the new size: the state no longer fits.
                var size = random.Next(2) == 0 ? 200_000 : 2;
                using (no_grad()) victim.set_(torch.zeros(size));
                foreach (var p in ps) p.grad = Support.Algorithms.Gradient(opt, torch.ones_like(p));
                StepMustBeCleanOrSucceed(opt, ps, what, violations);
                break;
            }
            case 1:
            {
                using (no_grad()) victim.set_(victim.detach().to(ScalarType.Float64).clone());
                foreach (var p in ps) p.grad = Support.Algorithms.Gradient(opt, torch.ones_like(p));
                StepMustBeCleanOrSucceed(opt, ps, what, violations);
                break;
            }
            case 2 when opt.StateDict().Global.Count > 0 && TypedGlobalState(opt) is { } global:
            {
                // Optimizer-wide state (LBFGS's), set through its public API to a value that does not fit.
                var key = global.Keys.ElementAt(random.Next(global.Count));
                global.Set(key, random.Next(4) == 0 ? new[] { BadTensor(random) } : BadTensor(random));
                foreach (var p in ps) p.grad = Support.Algorithms.Gradient(opt, torch.ones_like(p));
                StepMustBeCleanOrSucceed(opt, ps, what + $" (global '{key}')", violations);
                break;
            }
            case 2:
            {
                var states = opt.State;
                if (states.Count == 0) return;
                var state = states.Values.ElementAt(random.Next(states.Count));
                var key = state.Count > 0 && random.Next(3) > 0 ? state.Keys.ElementAt(random.Next(state.Count)) : "exp_avg";
                state.Set(key, BadTensor(random));
                foreach (var p in ps) p.grad = Support.Algorithms.Gradient(opt, torch.ones_like(p));
                StepMustBeCleanOrSucceed(opt, ps, what, violations);
                break;
            }
            case 3:
            {
                var sd = opt.StateDict().DeepCopy();
                var state = sd.State.ToDictionary(e => e.Key, e => e.Value.ToDictionary(kv => kv.Key, kv => kv.Value));
                if (state.Count == 0) state[random.Next(3)] = new Dictionary<string, Tensor>();
                var entry = state.Values.ElementAt(random.Next(state.Count));
                switch (random.Next(3))
                {
                    case 0 when entry.Count > 0: entry.Remove(entry.Keys.ElementAt(random.Next(entry.Count))); break;
                    case 1: entry["unknown_key"] = torch.zeros(1); break;
                    default:
                        var key = entry.Count > 0 ? entry.Keys.ElementAt(random.Next(entry.Count)) : "step";
                        entry[key] = BadTensor(random);
                        break;
                }
                var tampered = sd with { State = state.ToDictionary(e => e.Key, e => (IReadOnlyDictionary<string, Tensor>)e.Value) };
                if (sd.Global.Count > 0 && random.Next(2) == 0)
                {
                    // Optimizer-wide state (LBFGS's): a value replaced by a tensor that does not fit, or an unknown key.
                    var global = sd.Global.ToDictionary(e => e.Key, e => e.Value);
                    if (random.Next(3) == 0) global["unknown_key"] = torch.zeros(1);
                    else global[global.Keys.ElementAt(random.Next(global.Count))] = BadTensor(random);
                    tampered = sd with { Global = global };
                }
                MustBeCleanOrSucceed(opt, ps, () => opt.LoadStateDict(tampered), what, violations);
                // Whatever was accepted must step.
                foreach (var p in ps) p.grad = Support.Algorithms.Gradient(opt, torch.ones_like(p));
                StepMustBeCleanOrSucceed(opt, ps, what + " then step", violations);
                break;
            }
            default:
            {
                using var memory = new MemoryStream();
                opt.Save(memory);
                var bytes = memory.ToArray();
                if (random.Next(2) == 0) bytes = bytes[..random.Next(bytes.Length)];
                else bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                MustBeCleanOrSucceed(opt, ps, () => opt.Load(new MemoryStream(bytes)), what, violations);
                break;
            }
        }
    }

    // The optimizer-wide state of an Optimizer<TOptions>, or null.
    private static OptimizerGlobalState? TypedGlobalState(Optimizer opt) =>
        opt.GetType().GetProperty(nameof(Optimizer<SGDOptions>.GlobalState))?.GetValue(opt) as OptimizerGlobalState;

    // Shapes, dtypes, layouts and devices a state tensor must not have.
    private static Tensor BadTensor(Random random) => random.Next(7) switch
    {
        0 => torch.zeros(200_000),
        1 => torch.zeros(1),
        2 => torch.zeros(3),
        3 => torch.zeros(2, 2).t(),
        4 => torch.zeros(new long[] { 3, 5 }, ScalarType.Bool),
        5 => torch.zeros(new long[] { 3, 5 }, device: torch.META),
        _ => torch.sparse_coo_tensor(torch.zeros(new long[] { 1, 1 }, ScalarType.Int64), torch.ones(1), new long[] { 4 }),
    };

    private static void StepMustBeCleanOrSucceed(Optimizer opt, List<Parameter> ps, string what, List<string> violations) =>
        MustBeCleanOrSucceed(opt, ps, () => Step(opt, ps), what, violations);

    private static void MustBeCleanOrSucceed(Optimizer opt, List<Parameter> ps, Action act, string what, List<string> violations)
    {
        var before = Snapshot(opt, ps);
        try
        {
            act();
            Outcomes[0]++;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or NotSupportedException)
        {
            Outcomes[1]++;
            var after = Snapshot(opt, ps);
            if (!after.SequenceEqual(before)) violations.Add($"{what}: failed with {e.GetType().Name} ({e.Message}) but changed the optimizer or a parameter");
        }
        catch (Exception e)
        {
            violations.Add($"{what}: undocumented exception {e.GetType().Name}: {e.Message}");
        }
    }
}
