using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using CustomOptimizer;
using Optim.Schedulers;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Samples;

/// <summary>
/// Lion (samples/CustomOptimizer), an optimizer written outside the library on its public API, gets what the built-in
/// algorithms get: both paths, golden trajectories, checkpoints, schedulers, validation and hooks.
/// </summary>
/// <remarks>
/// The goldens (Goldens/Samples/lion.json, tools/golden/lion.py) are not PyTorch's: torch.optim has no Lion, so the
/// generator transcribes the paper's update with real torch ops (Debian's PyTorch 1.13), on generate.py's cases. Lion only
/// multiplies, adds (with alpha) and takes signs, ops whose kernels give the same bits in 1.13 and libtorch 2.10 (as
/// SGD's goldens show), so the comparison is bit for bit, on both paths.
/// </remarks>
public class LionTests
{
    private const string GoldenFile = "Samples/lion.json";

    public static TheoryData<string, Implementation> GoldenCases()
    {
        var data = new TheoryData<string, Implementation>();
        foreach (var c in GoldenCase.Load(GoldenFile))
        {
            foreach (var implementation in new[] { Implementation.ForLoop, Implementation.Foreach, Implementation.Auto }) data.Add(c.ToString(), implementation);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void Both_paths_follow_the_papers_update_bit_for_bit(string id, Implementation implementation)
    {
        var c = GoldenCase.Get(GoldenFile, id);
        var ps = c.MakeParameters();
        using var lion = new Lion(ps, implementation: implementation);
        foreach (var group in lion.ParamGroups) group.Options = (LionOptions)group.Options.WithHyperparameters(Options(c));
        Trajectories.ShouldBeBitwise(c.Run(ps, lion), c.Expected);
    }

    [Fact]
    public void The_foreach_path_equals_the_for_loop_over_mixed_dtypes()
    {
        // Two buckets (float32 and float64): foreach runs once per bucket, the for-loop once per parameter.
        List<Parameter> Make() =>
        [
            new Parameter(torch.linspace(-1, 1, 7, dtype: ScalarType.Float32)),
            new Parameter(torch.linspace(-2, 2, 12, dtype: ScalarType.Float64).reshape(3, 4)),
            new Parameter(torch.linspace(0, 1, 5, dtype: ScalarType.Float32)),
        ];
        var a = Make();
        var b = Make();
        using var forLoop = new Lion(a, lr: 0.01, weight_decay: 0.1, implementation: Implementation.ForLoop);
        using var foreachPath = new Lion(b, lr: 0.01, weight_decay: 0.1, implementation: Implementation.Foreach);
        for (var step = 0; step < 5; step++)
        {
            for (var i = 0; i < a.Count; i++)
            {
                using var g = torch.sin(torch.arange(a[i].numel(), dtype: a[i].dtype) * (step + 1) + i).reshape(a[i].shape);
                a[i].grad = g.clone();
                b[i].grad = g.clone();
            }
            forLoop.step();
            foreachPath.step();
        }
        for (var i = 0; i < a.Count; i++) Trajectories.BitwiseEqual(a[i], b[i]).Should().BeTrue($"parameter {i}");
        Behaviour.StatesShouldBeBitwiseEqual(foreachPath, b, forLoop, a);
    }

    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.Float64, true)]
    public void A_run_resumed_from_a_state_dict_or_a_checkpoint_continues_bit_for_bit(ScalarType dtype, bool viaFile) =>
        Behaviour.ResumesBitExactly(ps => new Lion(ps, lr: 0.01, beta1: 0.85, weight_decay: 0.1), dtype, viaFile);

    // Flat mode with no code of Lion's own: the constructor's flat argument goes to the base, and both paths run once
    // per buffer with the same bits as without flat buffers (the cases leave a gradient out on some steps, where the
    // group steps per parameter).
    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Foreach)]
    public void Flat_mode_works_without_code_of_its_own(Implementation implementation)
    {
        var c = RandomCases.Make(ScalarType.Float32, seed: 21, steps: 10);
        var plainParams = c.MakeParameters();
        using var plain = new Lion(plainParams, lr: 0.01, weight_decay: 0.1, implementation: implementation);
        var flatParams = c.MakeParameters();
        using var flat = new Lion(flatParams, lr: 0.01, weight_decay: 0.1, implementation: implementation, flat: true);
        flat.Flat.Should().BeTrue();
        Trajectories.ShouldBeBitwise(c.Run(flatParams, flat), c.Run(plainParams, plain));
    }

    [Fact]
    public void A_training_checkpoint_carries_Lion_its_scheduler_and_its_parameter_names()
    {
        var c = RandomCases.Make(ScalarType.Float32, seed: 77, steps: 12);
        var path = Path.Combine(Path.GetTempPath(), $"optim-lion-{Guid.NewGuid():N}.ckpt");
        try
        {
            var straight = Run(12);
            Run(6, save: true);
            var resumed = Run(12, load: true);
            Trajectories.ShouldBeBitwise(resumed, straight.Skip(6).ToList());
        }
        finally
        {
            File.Delete(path);
        }

        List<double[][]> Run(int steps, bool save = false, bool load = false)
        {
            var ps = c.MakeParameters();
            var model = new ParameterHolder(ps);
            using var lion = new Lion(ps.Select((p, i) => ($"w{i}", p)), lr: 0.01);
            var scheduler = new CosineAnnealingLR(lion, T_max: 12);
            var from = load ? (int)(long)Formats.TrainingCheckpoint.Load(path, model, lion, [scheduler])["step"] : 0;
            if (load) lion.ParamGroups[0].ParamNames.Should().Equal("w0", "w1", "w2");
            var trajectory = new List<double[][]>();
            for (var s = from; s < steps; s++)
            {
                trajectory.AddRange(c.Run(ps, lion, s, s + 1));
                scheduler.step();
                if (save && s + 1 == steps)
                    Formats.TrainingCheckpoint.Save(path, model, lion, [scheduler], extra: new Dictionary<string, object> { ["step"] = (long)steps });
            }
            return trajectory;
        }
    }

    [Fact]
    public void A_scheduler_drives_its_learning_rate_and_OneCycleLR_cycles_its_beta1()
    {
        var c = RandomCases.Make(ScalarType.Float64, seed: 5, steps: 6);
        var scheduledParams = c.MakeParameters();
        using var scheduled = new Lion(scheduledParams, lr: 0.1);
        var stepLR = new StepLR(scheduled, step_size: 1, gamma: 0.5);
        var manualParams = c.MakeParameters();
        using var manual = new Lion(manualParams, lr: 0.1);
        for (var s = 0; s < 6; s++)
        {
            manual.ParamGroups[0].LearningRate = 0.1 * Math.Pow(0.5, s);
            c.Run(scheduledParams, scheduled, s, s + 1);
            c.Run(manualParams, manual, s, s + 1);
            stepLR.step();
        }
        for (var i = 0; i < scheduledParams.Count; i++) Trajectories.BitwiseEqual(scheduledParams[i], manualParams[i]).Should().BeTrue();
        scheduled.StateDict().ParamGroups[0]["lr"].Should().Be(0.1 * Math.Pow(0.5, 6));

        // LionOptions is an IBetasOptions, so its groups expose (beta1, beta2) to momentum cycling.
        using var cycled = new Lion(c.MakeParameters(), lr: 0.1);
        var oneCycle = new OneCycleLR(cycled, max_lr: 0.1, total_steps: 10, base_momentum: 0.8, max_momentum: 0.95);
        cycled.ParamGroups[0].Options.Beta1.Should().Be(0.95);
        oneCycle.step();
        cycled.ParamGroups[0].Options.Beta1.Should().BeLessThan(0.95);
    }

    [Fact]
    public void Bad_hyperparameters_are_rejected_with_PyTorchs_style_of_message()
    {
        var ps = RandomCases.Make(ScalarType.Float32, seed: 1).MakeParameters();
        FluentActions.Invoking(() => new Lion(ps, lr: -0.1)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "lr").WithMessage("Invalid learning rate: -0.1*");
        FluentActions.Invoking(() => new Lion(ps, beta1: 1.0)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "beta1").WithMessage("Invalid beta parameter at index 0: 1.0*");
        FluentActions.Invoking(() => new Lion(ps, beta2: double.NaN)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "beta2").WithMessage("Invalid beta parameter at index 1: nan*");
        FluentActions.Invoking(() => new Lion(ps, weight_decay: -1)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "weight_decay").WithMessage("Invalid weight_decay value: -1.0*");

        // At run time too: a group keeps its options when a new value is invalid, and a bad load changes nothing.
        using var lion = new Lion(ps, lr: 0.01);
        FluentActions.Invoking(() => lion.ParamGroups[0].LearningRate = -1).Should().Throw<ArgumentOutOfRangeException>();
        lion.ParamGroups[0].LearningRate.Should().Be(0.01);
        var sd = lion.StateDict();
        var bad = sd with
        {
            ParamGroups = [sd.ParamGroups[0] with { Hyperparameters = sd.ParamGroups[0].Hyperparameters.Select(h => h.Key == "beta1" ? new KeyValuePair<string, object?>("beta1", 2.0) : h).ToList() }],
        };
        FluentActions.Invoking(() => lion.LoadStateDict(bad)).Should().Throw<ArgumentException>().WithMessage("*Invalid beta parameter at index 0: 2.0*");
        lion.ParamGroups[0].Options.Beta1.Should().Be(0.9);
    }

    [Fact]
    public void Hooks_run_around_its_step_and_state_dict()
    {
        var c = RandomCases.Make(ScalarType.Float32, seed: 9, steps: 3);
        var ps = c.MakeParameters();
        using var lion = new Lion(ps, lr: 0.01);
        var log = new List<string>();
        using var pre = lion.RegisterStepPreHook((o, a) =>
        {
            log.Add("pre");
            return a with { Closure = () => torch.tensor(42f) };
        });
        using var post = lion.RegisterStepPostHook((o, a) => log.Add($"post {a.Closure!().item<float>()}"));
        c.SetGradients(ps, 0);
        using var loss = lion.step();
        loss!.item<float>().Should().Be(42f, "the pre-hook replaced the closure");
        log.Should().Equal("pre", "post 42");

        using var tag = lion.RegisterStateDictPostHook((o, sd) => sd with { Global = new Dictionary<string, object> { ["tag"] = "lion" } });
        FluentActions.Invoking(() => lion.LoadStateDict(lion.StateDict())).Should().Throw<ArgumentException>()
            .WithMessage("*optimizer-wide state 'tag'*", "Lion keeps no optimizer-wide state, so the hooked dict does not load back");
    }

    [Fact]
    public void It_is_not_in_the_catalog_and_sees_none_of_the_librarys_internals()
    {
        using var lion = new Lion(RandomCases.Make(ScalarType.Float32, seed: 1).MakeParameters());
        AlgorithmCatalog.Of(lion).Should().BeNull();
        // TorchSharp has no Lion, so there is no TorchSharp checkpoint layout for it.
        FluentActions.Invoking(() => lion.SaveTorchSharp(new MemoryStream())).Should().Throw<NotSupportedException>().WithMessage("*Lion*");
        typeof(Optimizer).Assembly.GetCustomAttributes<InternalsVisibleToAttribute>().Select(a => a.AssemblyName)
            .Should().NotContain(typeof(Lion).Assembly.GetName().Name);
    }

    private static IReadOnlyList<KeyValuePair<string, object?>> Options(GoldenCase c) =>
        c.Options.Select(o => new KeyValuePair<string, object?>(o.Key, GoldenCase.FromJson(LionOptions.Schema.Find(o.Key)!, o.Value))).ToList();

    // A module whose state_dict is the given parameters (what a training checkpoint saves of a model).
    private sealed class ParameterHolder : TorchSharp.torch.nn.Module
    {
        public ParameterHolder(IReadOnlyList<Parameter> ps) : base("holder")
        {
            for (var i = 0; i < ps.Count; i++) register_parameter($"w{i}", ps[i]);
        }
    }
}

/// <summary>Lion's paths, with step hooks registered, leave no native tensor behind (the leak tests' rule).</summary>
[Collection(nameof(LeakTests))]
public class LionLeakTests
{
    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Foreach)]
    public void Lion_keeps_the_native_tensor_count_flat_over_200_steps(Implementation implementation)
    {
        var ps = new[] { new Parameter(torch.randn(10)), new Parameter(torch.randn(3, 3)), new Parameter(torch.randn(System.Array.Empty<long>())) };
        using var lion = new Lion(ps, lr: 1e-3, weight_decay: 0.1, maximize: true, implementation: implementation);
        using var pre = lion.RegisterStepPreHook((o, a) => a with { });
        using var post = lion.RegisterStepPostHook((o, a) => { });
        LeakTests.LiveTensorsAfter(lion, ps, 200).Should().Be(0);
    }
}
