using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using StateDictionary = TorchSharp.torch.optim.Optimizer.StateDictionary;

namespace Optim.Tests;

/// <summary>
/// TorchSharp's optimizer API on ours (<see cref="TorchSharpOptimizerExtensions"/>, the constructors that take
/// TorchSharp's <c>ParamGroup</c> arrays), checked against TorchSharp 0.107's own optimizers: the options a group ends up
/// with, state dicts both ways, and failed loads that change nothing.
/// </summary>
[Collection("Sequential")]
public class TorchSharpDropInTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("optim-dropin").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Every algorithm TorchSharp also has.</summary>
    public static TheoryData<string> TorchSharpAlgorithms() =>
        new(AlgorithmCatalog.All.Where(a => a.TorchSharpLayout is not null).Select(a => a.Name));

    [Fact]
    public void Every_algorithm_with_a_TorchSharp_format_has_a_state_dict_and_TorchSharp_has_eleven()
    {
        TorchSharpAlgorithms().Should().HaveCount(11);
        foreach (var name in AlgorithmCatalog.All.Where(a => a.TorchSharpLayout is not null).Select(a => a.Name))
        {
            var ps = Parameters(seed: 1);
            using var opt = Make(name, ps, lr: 0.01);
            var sd = opt.state_dict();
            sd.Options.Should().ContainSingle();
            sd.State.Should().HaveCount(ps.Count);
            sd.StateIndexRef.Should().ContainSingle().Which.Should().Equal(0, 1, 2);
            // TorchSharp's own types: Modules.<ClassName>.Options / .State.
            var className = Algorithms.Get(name).TorchSharpLayout!.ClassName;
            sd.Options[0].GetType().DeclaringType!.Name.Should().Be(className, name);
            sd.State.Should().AllSatisfy(s => s.GetType().DeclaringType!.Name.Should().Be(className, name));
        }
    }

    [Fact]
    public void Algorithms_TorchSharp_lacks_have_no_state_dict()
    {
        var ps = Parameters(seed: 1);
        using var opt = new SGDMomentumNesterov(ps, lr: 0.01);
        opt.Invoking(o => o.state_dict()).Should().Throw<NotSupportedException>();
        using var lbfgs = new LBFGS(ps);
        lbfgs.Invoking(o => o.save_state_dict(Path.Combine(_dir, "x.bin"))).Should().Throw<NotSupportedException>();
    }

    [Theory]
    [MemberData(nameof(TorchSharpAlgorithms))]
    public void A_state_dict_loads_into_a_fresh_optimizer_which_then_continues_bit_for_bit(string name)
    {
        var ps = Parameters(seed: 2);
        using var a = Make(name, ps, lr: 0.01);
        Train(a, ps, steps: 3, seed: 3, skip: 2);

        var copies = ps.Select(p => new Parameter(p.detach().clone())).ToList();
        using var b = Make(name, copies, lr: 0.5);
        b.load_state_dict(a.state_dict());

        // Equal state, hyperparameters included; a parameter never stepped has none, as in PyTorch (Adagrad's is created
        // at construction, as in PyTorch).
        StateSnapshot.Of(b, copies).Should().Equal(StateSnapshot.Of(a, ps));
        b.State.ContainsKey(copies[2]).Should().Be(a.State.ContainsKey(ps[2])).And.Be(name == "Adagrad");

        Train(a, ps, steps: 2, seed: 4, skip: -1);
        Train(b, copies, steps: 2, seed: 4, skip: -1);
        StateSnapshot.Of(b, copies).Should().Equal(StateSnapshot.Of(a, ps));
    }

    [Theory]
    [MemberData(nameof(TorchSharpAlgorithms))]
    public void The_file_and_stream_methods_round_trip(string name)
    {
        var ps = Parameters(seed: 5);
        using var a = Make(name, ps, lr: 0.01);
        Train(a, ps, steps: 2, seed: 6, skip: -1);
        var path = Path.Combine(_dir, "a.bin");
        a.save_state_dict(path);

        using var b = Make(name, ps, lr: 0.5);
        b.load_state_dict(path);
        StateSnapshot.Of(b, ps).Should().Equal(StateSnapshot.Of(a, ps));

        // Two checkpoints back to back in one stream, as TorchSharp's BinaryWriter overloads allow.
        using var c = Make(name, ps, lr: 0.25);
        using var d = Make(name, ps, lr: 0.125);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            a.save_state_dict(writer);
            c.save_state_dict(writer);
        }
        stream.Position = 0;
        using var e = Make(name, ps, lr: 0.5);
        using var f = Make(name, ps, lr: 0.5);
        using (var reader = new BinaryReader(stream))
        {
            e.load_state_dict(reader);
            f.load_state_dict(reader);
        }
        StateSnapshot.Of(e, ps).Should().Equal(StateSnapshot.Of(a, ps));
        StateSnapshot.Of(f, ps).Should().Equal(StateSnapshot.Of(c, ps));
    }

    [Fact]
    public void State_dict_tensors_are_copies_that_outlive_the_optimizer_and_a_dispose_scope()
    {
        var ps = Parameters(seed: 7);
        StateDictionary sd;
        using (var scope = NewDisposeScope())
        {
            using var opt = new Adam(ps, lr: 0.01);
            Train(opt, ps, steps: 1, seed: 8, skip: -1);
            sd = opt.state_dict();
            var before = ((TorchSharp.Modules.Adam.State)sd.State[0]).exp_avg.clone().DetachFromDisposeScope();
            Train(opt, ps, steps: 1, seed: 9, skip: -1);
            Trajectories.BitwiseEqual(((TorchSharp.Modules.Adam.State)sd.State[0]).exp_avg, before).Should().BeTrue("a state dict is a snapshot");
        }
        var state = (TorchSharp.Modules.Adam.State)sd.State[0];
        state.exp_avg.IsInvalid.Should().BeFalse();
        state.step.Should().Be(1);
    }

    // ---- TorchSharp's optimizers and ours, through state dicts ----

    [Fact]
    public void TorchSharps_state_dict_loads_into_ours_and_ours_into_TorchSharps()
    {
        // SGD with momentum: TorchSharp's update is PyTorch's op for op, so the two continue bit for bit.
        var ps = Parameters(seed: 10);
        var tsParams = ps.Select(p => new Parameter(p.detach().clone())).ToList();
        using var ts = torch.optim.SGD(tsParams, 0.01, momentum: 0.9, weight_decay: 0.1);
        Train(ts, tsParams, steps: 3, seed: 11, skip: -1);

        var ourParams = tsParams.Select(p => new Parameter(p.detach().clone())).ToList();
        using var ours = new SGD(ourParams, 0.5);
        ours.load_state_dict(ts.state_dict());
        ours.ParamGroups[0].Options.Should().Be(new SGDOptions { Lr = 0.01, Momentum = 0.9, WeightDecay = 0.1 });
        Train(ts, tsParams, steps: 2, seed: 12, skip: -1);
        Train(ours, ourParams, steps: 2, seed: 12, skip: -1);
        ourParams.Zip(tsParams).Should().AllSatisfy(p => Trajectories.BitwiseEqual(p.First, p.Second).Should().BeTrue());

        // And back: TorchSharp's own load_state_dict takes ours (RMSProp: its buffers must be there, zeros where unused).
        var rmsParams = Parameters(seed: 13);
        using var rms = new RMSprop(rmsParams, 0.01, momentum: 0.5);
        Train(rms, rmsParams, steps: 2, seed: 14, skip: -1);
        var tsRmsParams = rmsParams.Select(p => new Parameter(p.detach().clone())).ToList();
        using var tsRms = torch.optim.RMSProp(tsRmsParams, 0.5);
        tsRms.load_state_dict(rms.state_dict());
        Train(rms, rmsParams, steps: 2, seed: 15, skip: -1);
        Train(tsRms, tsRmsParams, steps: 2, seed: 15, skip: -1);
        rmsParams.Zip(tsRmsParams).Should().AllSatisfy(p => Trajectories.BitwiseEqual(p.First, p.Second).Should().BeTrue());
    }

    // ---- failed loads change nothing ----

    [Fact]
    public void A_state_dict_that_does_not_fit_is_refused_and_changes_nothing()
    {
        var ps = Parameters(seed: 16);
        using var opt = new Adam(ps, lr: 0.01, amsgrad: true);
        Train(opt, ps, steps: 2, seed: 17, skip: -1);
        var before = StateSnapshot.Of(opt, ps);

        using var sgd = new SGD(ps, 0.1, momentum: 0.5);
        opt.Invoking(o => o.load_state_dict(sgd.state_dict())).Should().Throw<ArgumentException>().WithMessage("Options[0] is TorchSharp.Modules.SGD+Options*");

        using var twoGroups = new Adam(new[] { new ParamGroupSpec<AdamOptions>(ps.Take(1)), new ParamGroupSpec<AdamOptions>(ps.Skip(1)) });
        opt.Invoking(o => o.load_state_dict(twoGroups.state_dict())).Should().Throw<ArgumentException>()
            .WithMessage("Invalid optimizer state -- different number of parameter groups.*");
        using var fewer = new Adam(ps.Take(2), lr: 0.01);
        opt.Invoking(o => o.load_state_dict(fewer.state_dict())).Should().Throw<ArgumentException>()
            .WithMessage("Invalid optimizer state -- different number of states.*");

        var incomplete = opt.state_dict();
        incomplete.Options[0].LearningRate = null;
        opt.Invoking(o => o.load_state_dict(incomplete)).Should().Throw<ArgumentException>().WithMessage("*incomplete Adam options or state*");

        var invalid = opt.state_dict();
        ((TorchSharp.Modules.Adam.Options)invalid.Options[0]).beta1 = 1.5;
        opt.Invoking(o => o.load_state_dict(invalid)).Should().Throw<ArgumentException>().WithMessage("*beta*1.5*");

        var wrongShape = opt.state_dict();
        ((TorchSharp.Modules.Adam.State)wrongShape.State[2]).exp_avg = zeros(7);
        opt.Invoking(o => o.load_state_dict(wrongShape)).Should().Throw<ArgumentException>();

        StateSnapshot.Of(opt, ps).Should().Equal(before);
    }

    [Fact]
    public void A_file_of_another_optimizer_class_is_InvalidDataException_as_in_TorchSharp_and_changes_nothing()
    {
        var ps = Parameters(seed: 18);
        using var sgd = new SGD(ps, 0.05);
        var path = Path.Combine(_dir, "sgd.bin");
        sgd.save_state_dict(path);

        using var adam = new Adam(ps, lr: 0.01);
        Train(adam, ps, steps: 1, seed: 19, skip: -1);
        var before = StateSnapshot.Of(adam, ps);
        adam.Invoking(o => o.load_state_dict(path)).Should().Throw<InvalidDataException>()
            .WithMessage("Mismatched optimizer type: expected 'Adam', but found 'SGD' in the loaded stream.");
        using (var reader = new BinaryReader(File.OpenRead(path)))
            adam.Invoking(o => o.load_state_dict(reader)).Should().Throw<InvalidDataException>();

        // A truncated checkpoint: every prefix of a real one.
        var adamPath = Path.Combine(_dir, "adam.bin");
        adam.save_state_dict(adamPath);
        var bytes = File.ReadAllBytes(adamPath);
        using var other = new Adam(ps, lr: 0.5);
        var otherBefore = StateSnapshot.Of(other, ps);
        foreach (var length in new[] { 0, 1, 5, bytes.Length / 2, bytes.Length - 1 })
        {
            using var reader = new BinaryReader(new MemoryStream(bytes, 0, length));
            other.Invoking(o => o.load_state_dict(reader)).Should().Throw<InvalidDataException>($"a prefix of {length} bytes");
        }
        StateSnapshot.Of(other, ps).Should().Equal(otherBefore);
        StateSnapshot.Of(adam, ps).Should().Equal(before);
    }

    [Fact]
    public void To_a_device_checks_that_the_state_is_there_already()
    {
        var ps = Parameters(seed: 20);
        using var opt = new Adam(ps, lr: 0.01);
        Train(opt, ps, steps: 1, seed: 21, skip: -1);
        var before = StateSnapshot.Of(opt, ps);
        opt.to(CPU);
        opt.to(torch.device("cpu"));
        opt.Invoking(o => o.to(torch.device("meta"))).Should().Throw<ArgumentException>().WithMessage("parameter 0 is on cpu, not meta*");
        StateSnapshot.Of(opt, ps).Should().Equal(before);
    }

    // ---- TorchSharp's parameter groups: the options each group ends up with are TorchSharp's ----

    [Fact]
    public void TorchSharps_parameter_groups_get_the_options_TorchSharp_gives_them()
    {
        var ps = Parameters(seed: 22);
        IEnumerable<Parameter> P(int i) => new[] { ps[i] };

        SameOptions(() => new TorchSharp.Modules.SGD.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, nesterov = true } }, new(P(1), lr: 0.2, momentum: 0.3, dampening: 0.1, weight_decay: 0.2, nesterov: false, maximize: true), new() { Parameters = P(2) } },
            g => torch.optim.SGD(g, 0.01, 0.9, 0, 0.3, false, false), g => new SGD(g, 0.01, 0.9, 0, 0.3, false, false));
        SameOptions(() => new TorchSharp.Modules.Adam.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, amsgrad = true } }, new(P(1), lr: 0.2, beta1: 0.5, beta2: 0.6, eps: 1e-3, weight_decay: 0.2, amsgrad: false, maximize: true), new() { Parameters = P(2) } },
            g => torch.optim.Adam(g, 0.01, 0.8, 0.9, 1e-6, 0.3, false, false), g => new Adam(g, 0.01, 0.8, 0.9, 1e-6, 0.3, false, false));
        SameOptions(() => new TorchSharp.Modules.AdamW.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05 } }, new(P(1), lr: 0.2, beta1: 0.5, beta2: 0.6, eps: 1e-3, weight_decay: 0.2, amsgrad: true, maximize: true), new() { Parameters = P(2) } },
            g => torch.optim.AdamW(g, 0.01, 0.8, 0.9, 1e-6, 0.3, false, false), g => new AdamW(g, 0.01, 0.8, 0.9, 1e-6, 0.3, false, false));
        SameOptions(() => new TorchSharp.Modules.Adagrad.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, eps = 1e-3 } }, new(P(1), lr: 0.2, lr_decay: 0.1, weight_decay: 0.2, initial_accumulator_value: 0.5, eps: 1e-4), new() { Parameters = P(2) } },
            g => torch.optim.Adagrad(g, 0.01, 0.01, 0.3, 0.25, 1e-6), g => new Adagrad(g, 0.01, 0.01, 0.3, 0.25, 1e-6));
        SameOptions(() => new TorchSharp.Modules.RMSProp.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, centered = true } }, new(P(1), lr: 0.2, eps: 1e-3, alpha: 0.5, weight_decay: 0.2, momentum: 0.25, centered: false), new() { Parameters = P(2) } },
            g => torch.optim.RMSProp(g, 0.01, 0.9, 1e-6, 0.3, 0.5, true, true), g => new RMSprop(g, 0.01, 0.9, 1e-6, 0.3, 0.5, true, true));
        SameOptions(() => new TorchSharp.Modules.Adadelta.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, rho = 0.5 } }, new(P(1), lr: 0.2, rho: 0.6, eps: 1e-3, weight_decay: 0.2, maximize: true), new() { Parameters = P(2) } },
            g => torch.optim.Adadelta(g, 0.5, 0.8, 1e-5, 0.3, false), g => new Adadelta(g, 0.5, 0.8, 1e-5, 0.3, false));
        SameOptions(() => new TorchSharp.Modules.Adamax.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, beta1 = 0.5 } }, new(P(1), lr: 0.2, beta1: 0.6, beta2: 0.7, eps: 1e-3, weight_decay: 0.2), new() { Parameters = P(2) } },
            g => torch.optim.Adamax(g, 0.01, 0.8, 0.9, 1e-6, 0.3), g => new Adamax(g, 0.01, 0.8, 0.9, 1e-6, 0.3));
        SameOptions(() => new TorchSharp.Modules.ASGD.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, t0 = 10 } }, new(P(1), lr: 0.2, lambd: 0.01, alpha: 0.5, t0: 100, weight_decay: 0.2), new() { Parameters = P(2) } },
            g => torch.optim.ASGD(g, 0.01, 0.001, 0.6, 1000, 0.3, false), g => new ASGD(g, 0.01, 0.001, 0.6, 1000, 0.3, false));
        SameOptions(() => new TorchSharp.Modules.NAdam.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, momentum_decay = 0.01 } }, new(P(1), lr: 0.2, beta1: 0.6, beta2: 0.7, eps: 1e-3, weight_decay: 0.2, momentum_decay: 0.02), new() { Parameters = P(2) } },
            g => torch.optim.NAdam(g, 0.01, 0.8, 0.9, 1e-6, 0.3, 0.005), g => new NAdam(g, 0.01, 0.8, 0.9, 1e-6, 0.3, 0.005));
        SameOptions(() => new TorchSharp.Modules.RAdam.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, eps = 1e-3 } }, new(P(1), lr: 0.2, beta1: 0.6, beta2: 0.7, eps: 1e-4, weight_decay: 0.2), new() { Parameters = P(2) } },
            g => torch.optim.RAdam(g, 0.01, 0.8, 0.9, 1e-6, 0.3), g => new RAdam(g, 0.01, 0.8, 0.9, 1e-6, 0.3));
        SameOptions(() => new TorchSharp.Modules.Rprop.ParamGroup[] { new() { Parameters = P(0), Options = new() { LearningRate = 0.05, etaplus = 1.5 } }, new(P(1), lr: 0.2, etaminus: 0.4, etaplus: 1.3, min_step: 1e-5, max_step: 10, maximize: true), new() { Parameters = P(2) } },
            g => torch.optim.Rprop(g, 0.01, 0.3, 1.1, 1e-4, 20, false), g => new Rprop(g, 0.01, 0.3, 1.1, 1e-4, 20, false));
    }

    [Fact]
    public void AdamW_groups_default_to_PyTorchs_weight_decay_where_TorchSharps_factory_defaults_to_0()
    {
        var ps = Parameters(seed: 23);
        using var ts = torch.optim.AdamW(new TorchSharp.Modules.AdamW.ParamGroup[] { new() { Parameters = ps } });
        using var ours = new AdamW(new TorchSharp.Modules.AdamW.ParamGroup[] { new() { Parameters = ps } });
        ((TorchSharp.Modules.AdamW.Options)ts.state_dict().Options[0]).weight_decay.Should().Be(0);
        ours.ParamGroups[0].Options.WeightDecay.Should().Be(0.01);
    }

    // Our groups' options, read back as TorchSharp's options objects, equal those TorchSharp's optimizer gives the same
    // groups (each optimizer gets its own group objects: TorchSharp fills in the ones it is given).
    private static void SameOptions<TGroup>(Func<TGroup[]> groups, Func<TGroup[], OptimizerHelper> theirs, Func<TGroup[], Optimizer> ours)
    {
        using var ts = theirs(groups());
        using var mine = ours(groups());
        TorchSharpOptions.ShouldEqual(mine.state_dict().Options, ts.state_dict().Options, typeof(TGroup).DeclaringType!.Name);
    }

    // ---- helpers ----

    private static List<Parameter> Parameters(int seed)
    {
        var gen = new Generator((ulong)seed);
        return new List<Parameter>
        {
            new(randn(new long[] { 3 }, generator: gen)),
            new(randn(new long[] { 2, 4 }, generator: gen)),
            new(randn(new long[] { 5 }, generator: gen)),
        };
    }

    // The algorithm with TorchSharp-representable settings that exercise its state (no maximize, no decoupled decay).
    private static Optimizer Make(string name, IEnumerable<Parameter> ps, double lr)
    {
        var algorithm = Algorithms.Get(name);
        var options = new List<KeyValuePair<string, object?>> { new("lr", lr) };
        options.AddRange(Algorithms.Exercise(algorithm).Where(o => o.Key is not "maximize" and not "decoupled_weight_decay"));
        return algorithm.Create(ps, options);
    }

    // Steps with seeded gradients; parameter `skip` never gets one (stays without state).
    private static void Train(optim.Optimizer opt, IReadOnlyList<Parameter> ps, int steps, int seed, int skip)
    {
        var gen = new Generator((ulong)seed);
        for (var s = 0; s < steps; s++)
        {
            for (var i = 0; i < ps.Count; i++)
                ps[i].grad = i == skip ? null : randn(ps[i].shape, generator: gen);
            opt.step();
        }
    }
}

/// <summary>The drop-in surface frees what it creates: only a state dict's own tensors outlive a call, and the caller frees them.</summary>
[Collection(nameof(LeakTests))]
public class TorchSharpDropInLeakTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("optim-dropin-leak").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    public static TheoryData<string> Cases => new() { "Adam", "RMSprop", "ASGD", "Rprop" };

    [Theory]
    [MemberData(nameof(Cases))]
    public void State_dicts_files_and_streams_keep_the_native_tensor_count_flat(string name)
    {
        var ps = new[] { new Parameter(randn(10)), new Parameter(randn(3, 3)), new Parameter(randn(4)) };
        var options = new List<KeyValuePair<string, object?>> { new("lr", 0.01) };
        options.AddRange(Algorithms.Exercise(Algorithms.Get(name)));
        using var a = Algorithms.Get(name).Create(ps, options);
        using var b = Algorithms.Get(name).Create(ps, options);
        foreach (var p in ps.Take(2)) p.grad = randn_like(p).DetachFromDisposeScope();
        a.step();
        var path = Path.Combine(_dir, "state.bin");

        void RoundTrips()
        {
            var sd = a.state_dict();
            b.load_state_dict(sd);
            foreach (var state in sd.State) (state as IDisposable)?.Dispose();
            b.save_state_dict(path);
            a.load_state_dict(path);
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) a.save_state_dict(writer);
            stream.Position = 0;
            using var reader = new BinaryReader(stream);
            b.load_state_dict(reader);
        }

        RoundTrips();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var before = Tensor.TotalCount;
        for (var i = 0; i < 20; i++) RoundTrips();
        (Tensor.TotalCount - before).Should().Be(0);
    }
}
