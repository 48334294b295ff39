using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Formats;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests.Amp;

/// <summary>
/// <see cref="Optimizer.MasterWeights"/>: float32 copies of float16/bfloat16 parameters, updated by the algorithm and
/// rounded back. A bfloat16 model trained with them reaches the float32 model's loss, one without stalls; on every
/// algorithm and path the copy follows a float32 twin bit for bit; float32 parameters are untouched; the copies travel
/// through state dicts and checkpoints; a skipped fused step changes nothing.
/// </summary>
public class MasterWeightsTests(ITestOutputHelper output)
{
    private const string Key = Optimizer.MasterWeightsKey;

    // Deterministic normal values (torch's global generator is shared by parallel tests).
    private static Tensor Normal(Random random, params long[] shape)
    {
        var n = shape.Aggregate(1L, (a, b) => a * b);
        var values = new float[n];
        for (var i = 0; i < n; i++)
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return torch.tensor(values).reshape(shape);
    }

    // Least squares y = x·W* + b* + noise, started close to the solution (W0 = W* + 0.1·noise), as fine-tuning does:
    // weights of magnitude ~1, updates of ~lr = 1e-3, below half a bfloat16 ulp (2^-8 near 1).
    private sealed class Regression
    {
        public readonly Tensor X, Y, W0, B0;

        public Regression()
        {
            var random = new Random(7);
            X = Normal(random, 256, 16);
            var wTrue = Normal(random, 16, 4);
            var bTrue = Normal(random, 4);
            Y = X.mm(wTrue) + bTrue + 0.05 * Normal(random, 256, 4);
            W0 = (wTrue + 0.1 * Normal(random, 16, 4)).to(ScalarType.BFloat16).to(ScalarType.Float32); // representable in bf16
            B0 = (bTrue + 0.1 * Normal(random, 4)).to(ScalarType.BFloat16).to(ScalarType.Float32);
        }

        // The model's loss in float32, whatever dtype its parameters are stored in.
        public double Loss(Tensor w, Tensor b)
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            return (X.mm(w.to(ScalarType.Float32)) + b.to(ScalarType.Float32) - Y).pow(2).mean().item<float>();
        }

        // Trains W and B stored in dtype with AdamW (lr 1e-3); the forward runs in that dtype.
        public (double Initial, double Final) Train(ScalarType dtype, bool masterWeights, int steps)
        {
            using var scope = NewDisposeScope();
            var w = new Parameter(W0.to(dtype).clone());
            var b = new Parameter(B0.to(dtype).clone());
            using var optimizer = new AdamW(new[] { w, b }, lr: 1e-3);
            optimizer.MasterWeights = masterWeights;
            var x = X.to(dtype);
            var initial = Loss(w, b);
            for (var s = 0; s < steps; s++)
            {
                using var stepScope = NewDisposeScope();
                optimizer.zero_grad();
                (x.mm(w) + b).to(ScalarType.Float32).sub(Y).pow(2).mean().backward();
                optimizer.step();
            }
            return (initial, Loss(w, b));
        }
    }

    [Fact]
    public void A_bfloat16_model_with_master_weights_reaches_the_float32_loss_and_one_without_stalls()
    {
        var problem = new Regression();
        const int steps = 400;
        var f32 = problem.Train(ScalarType.Float32, masterWeights: false, steps);
        var withMaster = problem.Train(ScalarType.BFloat16, masterWeights: true, steps);
        var without = problem.Train(ScalarType.BFloat16, masterWeights: false, steps);
        output.WriteLine($"initial {f32.Initial:G4}; after {steps} AdamW steps (lr 1e-3): float32 {f32.Final:G4}, "
            + $"bfloat16 with master weights {withMaster.Final:G4}, bfloat16 without {without.Final:G4}");

        f32.Final.Should().BeLessThan(f32.Initial / 20, "the float32 model converges");
        withMaster.Final.Should().BeApproximately(f32.Final, 0.1 * f32.Final, "master weights keep the small updates");
        without.Final.Should().BeGreaterThan(3 * f32.Final, "bfloat16 rounds most updates away");
    }

    // A bfloat16 and a float32 parameter of varied magnitudes, and their float32 twins.
    private static (List<Parameter> Params, List<Parameter> Twins) Pair(int seed)
    {
        var random = new Random(seed);
        var low = Normal(random, 3, 5).mul(torch.tensor(new float[] { 0.01f, 0.3f, 1, 4, 100 })).to(ScalarType.BFloat16);
        var full = Normal(random, 1, 7); // a matrix, which every algorithm takes (Muon nothing else)
        // A Parameter takes over its tensor's handle: the twins are made first.
        var twins = new List<Parameter> { new(low.to(ScalarType.Float32)), new(full.clone()) };
        return (new List<Parameter> { new(low), new(full) }, twins);
    }

    // Sparse for an algorithm that requires sparse gradients (SparseAdam).
    private static void SetGradients(Random random, IReadOnlyList<Parameter> ps, IReadOnlyList<Parameter> twins, AlgorithmInfo? algorithm = null)
    {
        for (var i = 0; i < ps.Count; i++)
        {
            var g = Normal(random, ps[i].shape).to(ps[i].dtype);
            if (algorithm is not null) g = Algorithms.Gradient(algorithm, g);
            ps[i].grad = g;
            twins[i].grad = g.to(ScalarType.Float32);
        }
    }

    // Closure-driven algorithms (LBFGS) update the parameters in place inside their closure loop: they have no master-weight
    // mode and refuse it (tested in the mode's own test above), so they are left out here.
    public static TheoryData<string, Implementation> AlgorithmsAndPaths()
    {
        var data = new TheoryData<string, Implementation>();
        foreach (var algorithm in AlgorithmCatalog.All.Where(a => !a.RequiresClosure))
        {
            // A C# fused kernel takes float32 and float64 parameters only: a bfloat16 one is refused at construction,
            // before master weights are switched on (CpuFusedTests checks the refusal).
            foreach (var impl in Algorithms.Paths(algorithm).Where(i => i != Implementation.Fused || !algorithm.FusedKernelIsCSharp))
                data.Add(algorithm.Name, impl);
        }
        return data;
    }

    [Theory, MemberData(nameof(AlgorithmsAndPaths))]
    public void The_copy_of_a_bfloat16_parameter_follows_a_float32_twin_bit_for_bit(string algorithm, Implementation impl)
    {
        using var scope = NewDisposeScope();
        var (ps, twins) = Pair(11);
        using var optimizer = Algorithms.Create(algorithm, ps, impl);
        optimizer.MasterWeights = true;
        using var twin = Algorithms.Create(algorithm, twins, impl);
        var random = new Random(5);
        for (var s = 0; s < 6; s++)
        {
            SetGradients(random, ps, twins, Algorithms.Get(algorithm));
            optimizer.step();
            twin.step();

            var master = optimizer.State[ps[0]][Key];
            master.dtype.Should().Be(ScalarType.Float32);
            Trajectories.BitwiseEqual(master, twins[0]).Should().BeTrue($"step {s}: the master is the float32 twin");
            Trajectories.BitwiseEqual(ps[0], twins[0].to(ScalarType.BFloat16)).Should().BeTrue($"step {s}: the parameter is the rounded master");
            Trajectories.BitwiseEqual(ps[1], twins[1]).Should().BeTrue($"step {s}: a float32 parameter is stepped as without the mode");
            foreach (var (key, tensor) in twin.State[twins[0]])
                Trajectories.BitwiseEqual(optimizer.State[ps[0]][key], tensor).Should().BeTrue($"step {s}: state '{key}' is the twin's (float32)");
            optimizer.State[ps[1]].ContainsKey(Key).Should().BeFalse();
        }
    }

    [Theory, MemberData(nameof(AlgorithmsAndPaths))]
    public void Float32_parameters_are_untouched_by_the_mode(string algorithm, Implementation impl)
    {
        using var scope = NewDisposeScope();
        var random = new Random(3);
        var info = Algorithms.Get(algorithm);
        var a = new List<Parameter> { new(Normal(random, 4, 3)), new(Normal(random, Algorithms.Shape(info, 5)).to(ScalarType.Float64)) };
        var b = a.Select(p => new Parameter(p.detach().clone())).ToList();
        using var on = Algorithms.Create(algorithm, a, impl);
        on.MasterWeights = true;
        using var off = Algorithms.Create(algorithm, b, impl);
        for (var s = 0; s < 5; s++)
        {
            SetGradients(random, a, b, info);
            for (var i = 0; i < a.Count; i++) b[i].grad = a[i].grad!.clone();
            on.step();
            off.step();
            for (var i = 0; i < a.Count; i++) Trajectories.BitwiseEqual(a[i], b[i]).Should().BeTrue($"step {s}, parameter {i}");
        }
        on.State.Values.Should().NotContain(st => st.ContainsKey(Key));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Master_weights_round_trip_through_state_dicts_and_checkpoints_and_a_resumed_run_continues_bit_for_bit(bool viaFile)
    {
        using var scope = NewDisposeScope();
        var (straightPs, _) = Pair(21);
        var (firstPs, _) = Pair(21);
        using var straight = new AdamW(straightPs, lr: 1e-3, amsgrad: true) { MasterWeights = true };
        using var first = new AdamW(firstPs, lr: 1e-3, amsgrad: true) { MasterWeights = true };
        var random = new Random(9);
        var grads = Enumerable.Range(0, 8).Select(_ => straightPs.Select(p => Normal(random, p.shape).to(p.dtype)).ToList()).ToList();
        void Run(Optimizer o, IReadOnlyList<Parameter> ps, int from, int to)
        {
            for (var s = from; s < to; s++)
            {
                for (var i = 0; i < ps.Count; i++) ps[i].grad = grads[s][i].clone();
                o.step();
            }
        }
        Run(straight, straightPs, 0, 8);
        Run(first, firstPs, 0, 4);

        var sd = first.StateDict();
        sd.State[0][Key].dtype.Should().Be(ScalarType.Float32);
        sd.State[0]["exp_avg"].dtype.Should().Be(ScalarType.Float32);
        sd.State[1].ContainsKey(Key).Should().BeFalse();

        var resumedPs = firstPs.Select(p => new Parameter(p.detach().clone())).ToList();
        using var resumed = new AdamW(resumedPs, lr: 1e-3, amsgrad: true) { MasterWeights = true };
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
            resumed.LoadStateDict(sd);
        }
        Trajectories.BitwiseEqual(resumed.State[resumedPs[0]][Key], first.State[firstPs[0]][Key]).Should().BeTrue();
        first.Dispose();
        Run(resumed, resumedPs, 4, 8);

        for (var i = 0; i < resumedPs.Count; i++) Trajectories.BitwiseEqual(resumedPs[i], straightPs[i]).Should().BeTrue($"parameter {i}");
        Behaviour.StatesShouldBeBitwiseEqual(resumed, resumedPs, straight, straightPs);
    }

    [Fact]
    public void Loads_check_the_copies()
    {
        using var scope = NewDisposeScope();
        var (ps, _) = Pair(31);
        using var optimizer = new Adam(ps) { MasterWeights = true };
        SetGradients(new Random(1), ps, ps.Select(p => new Parameter(p.detach().clone())).ToList());
        optimizer.step();
        var sd = optimizer.StateDict().DeepCopy();

        // Without the mode, a copy has no place.
        var (offPs, _) = Pair(31);
        using var off = new Adam(offPs);
        off.Invoking(o => o.LoadStateDict(sd)).Should().Throw<ArgumentException>().WithMessage("*master_param*MasterWeights*");

        // A copy of the wrong shape is refused, and nothing changes.
        var (badPs, _) = Pair(31);
        using var bad = new Adam(badPs) { MasterWeights = true };
        var state = sd.State.ToDictionary(e => e.Key, e => (IReadOnlyDictionary<string, Tensor>)e.Value.ToDictionary(kv => kv.Key, kv => kv.Value));
        var wrong = new Dictionary<string, Tensor>(state[0]) { [Key] = torch.zeros(2, 2) };
        state[0] = wrong;
        var badSd = new OptimizerStateDict(sd.OptimizerType, new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>(state), sd.ParamGroups);
        bad.Invoking(o => o.LoadStateDict(badSd)).Should().Throw<ArgumentException>().WithMessage("*master_param*shape*");
        bad.State.Should().BeEmpty();

        // A state saved without the mode gets its copy from the parameter, and float32 state.
        var (plainPs, _) = Pair(31);
        using var plain = new Adam(plainPs);
        SetGradients(new Random(1), plainPs, plainPs.Select(p => new Parameter(p.detach().clone())).ToList());
        plain.step();
        var (onPs, _) = Pair(31);
        for (var i = 0; i < onPs.Count; i++)
        {
            using var _ = no_grad();
            onPs[i].copy_(plainPs[i]);
        }
        using var on = new Adam(onPs) { MasterWeights = true };
        on.LoadStateDict(plain.StateDict());
        Trajectories.BitwiseEqual(on.State[onPs[0]][Key], onPs[0].to(ScalarType.Float32)).Should().BeTrue();
        on.State[onPs[0]]["exp_avg"].dtype.Should().Be(ScalarType.Float32);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void A_skipped_fused_step_changes_neither_the_parameter_nor_the_copy(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var random = new Random(4);
        var p = new Parameter(Normal(random, 6, 2).to(dtype));
        using var optimizer = new AdamW(new[] { p }, lr: 1e-3, implementation: Implementation.Fused) { MasterWeights = true };
        p.grad = Normal(random, 6, 2).to(dtype);
        optimizer.step();

        var parameterBefore = p.detach().clone();
        var masterBefore = optimizer.State[p][Key].clone();
        var stepBefore = optimizer.State[p]["step"].clone();
        p.grad = Normal(random, 6, 2).to(dtype) * 1024;
        optimizer.GradScale = torch.tensor(1024f);
        optimizer.FoundInf = torch.tensor(1f);
        optimizer.step();
        Trajectories.BitwiseEqual(p, parameterBefore).Should().BeTrue();
        Trajectories.BitwiseEqual(optimizer.State[p][Key], masterBefore).Should().BeTrue();
        Trajectories.BitwiseEqual(optimizer.State[p]["step"], stepBefore).Should().BeTrue();

        // The same step with no overflow moves both.
        optimizer.FoundInf = torch.tensor(0f);
        optimizer.step();
        Trajectories.BitwiseEqual(optimizer.State[p][Key], masterBefore).Should().BeFalse();
        Trajectories.BitwiseEqual(p, optimizer.State[p][Key].to(dtype)).Should().BeTrue();
    }

    [Fact]
    public void The_mode_is_chosen_before_the_first_step()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(torch.ones(3, dtype: ScalarType.BFloat16));
        using var adagrad = new Adagrad(new[] { p }, initial_accumulator_value: 0.5);
        adagrad.State[p]["sum"].dtype.Should().Be(ScalarType.BFloat16);
        adagrad.MasterWeights = true;
        adagrad.State[p]["sum"].dtype.Should().Be(ScalarType.Float32, "state created eagerly is made again, like the copy");
        adagrad.State[p][Key].dtype.Should().Be(ScalarType.Float32);
        p.grad = torch.ones(3, dtype: ScalarType.BFloat16);
        adagrad.step();
        adagrad.Invoking(o => o.MasterWeights = false).Should().Throw<InvalidOperationException>();
        adagrad.MasterWeights.Should().BeTrue();

        using var lbfgs = new LBFGS(new[] { new Parameter(torch.ones(2)) });
        lbfgs.Invoking(o => o.MasterWeights = true).Should().Throw<NotSupportedException>();
    }

    [Fact]
    public void TorchSharps_format_refuses_master_weights()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(torch.ones(3, dtype: ScalarType.BFloat16));
        using var optimizer = new Adam(new[] { p }) { MasterWeights = true };
        p.grad = torch.ones(3, dtype: ScalarType.BFloat16);
        optimizer.step();
        optimizer.Invoking(o => TorchSharpCheckpoint.Write(Stream.Null, o)).Should().Throw<NotSupportedException>().WithMessage("*master*");
    }
}
