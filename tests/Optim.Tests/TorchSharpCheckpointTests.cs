using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using Optim.Formats;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;
using TsOptimizerState = TorchSharp.Modules.OptimizerState;

namespace Optim.Tests;

/// <summary>
/// Migration from and to TorchSharp's built-in optimizers: every file read here was written by TorchSharp 0.107's own
/// classes in this test run, and every file written here is read back by them.
/// </summary>
public class TorchSharpCheckpointTests(ITestOutputHelper output) : IDisposable
{
    private const int Head = 5;   // steps before the checkpoint
    private const int Total = 25; // steps in all

    private readonly string _dir = Directory.CreateTempSubdirectory("optim-tsckpt").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// One configuration of one algorithm. <c>Other</c> factories build the same algorithm with different hyperparameters:
    /// a load must replace them with the checkpoint's. <see cref="TsState"/> gives TorchSharp's state of one parameter in
    /// our terms: its step and its tensors by PyTorch's keys (SGD's buffer negated under maximize).
    /// </summary>
    public sealed record Case(
        string Name,
        Func<IReadOnlyList<Parameter>, OptimizerHelper> TorchSharp,
        Func<IReadOnlyList<Parameter>, OptimizerHelper> TorchSharpOther,
        Func<IReadOnlyList<Parameter>, Implementation, Optimizer> Ours,
        Func<IReadOnlyList<Parameter>, Implementation, Optimizer> OursOther,
        Func<TsOptimizerState, (long? Step, Dictionary<string, Tensor> Tensors)> TsState,
        string[] OurKeys,
        double Tolerance) // for-loop continuation: 0 = bit for bit, else the absolute tolerance (see ShouldTrack)
    {
        public override string ToString() => Name;
    }

    private static (long?, Dictionary<string, Tensor>) AdamState(TsOptimizerState s)
    {
        var (step, expAvg, expAvgSq, max) = s switch
        {
            TorchSharp.Modules.Adam.State a => (a.step, a.exp_avg, a.exp_avg_sq, a.max_exp_avg_sq),
            TorchSharp.Modules.AdamW.State a => (a.step, a.exp_avg, a.exp_avg_sq, a.max_exp_avg_sq),
            _ => throw new ArgumentException(s.GetType().FullName),
        };
        var tensors = new Dictionary<string, Tensor> { ["exp_avg"] = expAvg, ["exp_avg_sq"] = expAvgSq };
        if (max is not null) tensors["max_exp_avg_sq"] = max;
        return (step, tensors);
    }

    private static (long?, Dictionary<string, Tensor>) SgdState(TsOptimizerState s, bool maximize)
    {
        var buffer = ((TorchSharp.Modules.SGD.State)s).momentum_buffer;
        var tensors = new Dictionary<string, Tensor>();
        if (buffer is not null) tensors["momentum_buffer"] = maximize ? buffer.neg() : buffer;
        return (null, tensors);
    }

    private static (long?, Dictionary<string, Tensor>) AdagradState(TsOptimizerState s)
    {
        var a = (TorchSharp.Modules.Adagrad.State)s;
        return (a.step, new Dictionary<string, Tensor> { ["sum"] = a.sum });
    }

    private static (long?, Dictionary<string, Tensor>) RmsState(TsOptimizerState s)
    {
        var r = (RMSProp.State)s;
        return (r.step, new Dictionary<string, Tensor>
        {
            ["square_avg"] = r.square_avg, ["momentum_buffer"] = r.momentum_buffer, ["grad_avg"] = r.grad_avg,
        });
    }

    private static readonly Case[] AllCases =
    {
        new("Adam",
            ps => torch.optim.Adam(ps, lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1),
            ps => torch.optim.Adam(ps, lr: 0.5),
            (ps, impl) => new Adam(ps, lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.1, implementation: impl),
            (ps, impl) => new Adam(ps, lr: 0.5, amsgrad: true, implementation: impl),
            AdamState, new[] { "exp_avg", "exp_avg_sq" }, 1e-7),
        new("Adam amsgrad maximize",
            ps => torch.optim.Adam(ps, lr: 0.01, amsgrad: true, maximize: true),
            ps => torch.optim.Adam(ps, lr: 0.5),
            (ps, impl) => new Adam(ps, lr: 0.01, amsgrad: true, maximize: true, implementation: impl),
            (ps, impl) => new Adam(ps, lr: 0.5, implementation: impl),
            AdamState, new[] { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" }, 1e-7),
        new("AdamW",
            ps => torch.optim.AdamW(ps, lr: 0.01, weight_decay: 0.05),
            ps => torch.optim.AdamW(ps, lr: 0.5, weight_decay: 0.3),
            (ps, impl) => new AdamW(ps, lr: 0.01, weight_decay: 0.05, implementation: impl),
            (ps, impl) => new AdamW(ps, lr: 0.5, weight_decay: 0.3, implementation: impl),
            AdamState, new[] { "exp_avg", "exp_avg_sq" }, 1e-7),
        new("SGD momentum",
            ps => torch.optim.SGD(ps, 0.05, momentum: 0.9, dampening: 0.1, weight_decay: 0.01),
            ps => torch.optim.SGD(ps, 0.5),
            (ps, impl) => new SGD(ps, lr: 0.05, momentum: 0.9, dampening: 0.1, weight_decay: 0.01, implementation: impl),
            (ps, impl) => new SGD(ps, lr: 0.5, implementation: impl),
            s => SgdState(s, maximize: false), new[] { "momentum_buffer" }, 0),
        new("SGD nesterov maximize",
            ps => torch.optim.SGD(ps, 0.05, momentum: 0.9, nesterov: true, maximize: true),
            ps => torch.optim.SGD(ps, 0.5, momentum: 0.1),
            (ps, impl) => new SGD(ps, lr: 0.05, momentum: 0.9, nesterov: true, maximize: true, implementation: impl),
            (ps, impl) => new SGD(ps, lr: 0.5, momentum: 0.1, implementation: impl),
            s => SgdState(s, maximize: true), new[] { "momentum_buffer" }, 0),
        new("Adagrad",
            ps => torch.optim.Adagrad(ps, lr: 0.05, lr_decay: 0.01, weight_decay: 0.02, initial_accumulator_value: 0.1, eps: 1e-8),
            ps => torch.optim.Adagrad(ps, lr: 0.5),
            (ps, impl) => new Adagrad(ps, lr: 0.05, lr_decay: 0.01, weight_decay: 0.02, initial_accumulator_value: 0.1, eps: 1e-8, implementation: impl),
            (ps, impl) => new Adagrad(ps, lr: 0.5, maximize: true, implementation: impl),
            AdagradState, new[] { "sum" }, 0),
        new("RMSProp centered momentum",
            ps => torch.optim.RMSProp(ps, lr: 0.01, alpha: 0.9, eps: 1e-6, weight_decay: 0.01, momentum: 0.5, centered: true),
            ps => torch.optim.RMSProp(ps, lr: 0.5),
            (ps, impl) => new RMSprop(ps, lr: 0.01, alpha: 0.9, eps: 1e-6, weight_decay: 0.01, momentum: 0.5, centered: true, implementation: impl),
            (ps, impl) => new RMSprop(ps, lr: 0.5, implementation: impl),
            RmsState, new[] { "square_avg", "momentum_buffer", "grad_avg" }, 1e-7),
        new("RMSProp plain",
            ps => torch.optim.RMSProp(ps, lr: 0.01),
            ps => torch.optim.RMSProp(ps, lr: 0.5, momentum: 0.9, centered: true),
            (ps, impl) => new RMSprop(ps, lr: 0.01, implementation: impl),
            (ps, impl) => new RMSprop(ps, lr: 0.5, momentum: 0.9, centered: true, implementation: impl),
            RmsState, new[] { "square_avg" }, 0),
    };

    public static TheoryData<string, Implementation> CaseNames()
    {
        var data = new TheoryData<string, Implementation>();
        foreach (var c in AllCases)
        {
            data.Add(c.Name, Implementation.ForLoop);
            data.Add(c.Name, Implementation.Auto);
        }
        return data;
    }

    private static Case Get(string name) => AllCases.Single(c => c.Name == name);

    private static GoldenCase Inputs() => RandomCases.Make(ScalarType.Float32, seed: 1455, steps: Total);

    private static List<Parameter> Copy(IReadOnlyList<Parameter> ps) => ps.Select(p => new Parameter(p.detach().clone())).ToList();

    private static List<double[][]> Run(GoldenCase inputs, IReadOnlyList<Parameter> ps, torch.optim.Optimizer optimizer, int from, int to)
    {
        var trajectory = new List<double[][]>();
        for (var s = from; s < to; s++)
        {
            inputs.SetGradients(ps, s);
            optimizer.step();
            trajectory.Add(ps.Select(GoldenCase.Values).ToArray());
        }
        return trajectory;
    }

    private static double Step(Tensor t) => t.ToDouble();

    // Ours' state equals TorchSharp's bit for bit: the same tensors where ours has them, and TorchSharp's extra RMSProp
    // buffers all zero where ours has none.
    private static void ShouldHoldTheSameState(Case c, Optimizer ours, OptimizerHelper ts, bool tsExtrasAreZero)
    {
        var ourState = ours.StateDict().State;
        var tsStates = ts.state_dict().State;
        for (var id = 0; id < tsStates.Count; id++)
        {
            var (step, tensors) = c.TsState(tsStates[id]);
            ourState.Should().ContainKey(id, $"parameter {id} has been stepped");
            var mine = ourState[id];
            mine.Keys.Where(k => k != "step").Should().BeEquivalentTo(c.OurKeys, $"parameter {id}");
            if (step is long s) Step(mine["step"]).Should().Be(s);
            else mine.Should().NotContainKey("step");
            foreach (var key in c.OurKeys)
                Trajectories.BitwiseEqual(mine[key], tensors[key]).Should().BeTrue($"{key} of parameter {id} must be bitwise equal");
            if (!tsExtrasAreZero) continue;
            foreach (var (key, t) in tensors.Where(e => !c.OurKeys.Contains(e.Key)))
                t.count_nonzero().item<long>().Should().Be(0, $"TorchSharp's unused {key} of parameter {id}");
        }
    }

    private static void OptionsShouldEqual(OptimizerHelper actual, OptimizerHelper expected)
    {
        var a = actual.state_dict().Options;
        var e = expected.state_dict().Options;
        a.Should().HaveSameCount(e);
        for (var g = 0; g < e.Count; g++)
        {
            a[g].LearningRate.Should().Be(e[g].LearningRate);
            a[g].InitialLearningRate.Should().Be(e[g].InitialLearningRate);
            foreach (var f in e[g].GetType().GetFields(BindingFlags.Public | BindingFlags.Instance))
                f.GetValue(a[g]).Should().Be(f.GetValue(e[g]), $"option {f.Name} of group {g}");
        }
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void A_checkpoint_written_by_TorchSharp_loads_and_training_continues(string name, Implementation implementation)
    {
        var c = Get(name);
        var inputs = Inputs();

        var tsParams = inputs.MakeParameters();
        using var ts = c.TorchSharp(tsParams);
        Run(inputs, tsParams, ts, 0, Head);
        var path = Path.Combine(_dir, "torchsharp.bin");
        ts.save_state_dict(path);

        var ourParams = Copy(tsParams);
        using var ours = c.OursOther(ourParams, implementation);
        ours.LoadTorchSharp(path);

        using var reference = c.Ours(Copy(tsParams), implementation);
        var loaded = ours.StateDict();
        var expected = reference.StateDict();
        loaded.ParamGroups.Select(g => g.Hyperparameters).Should().BeEquivalentTo(expected.ParamGroups.Select(g => g.Hyperparameters));
        loaded.ParamGroups.Select(g => g.InitialLr).Should().Equal(expected.ParamGroups.Select(g => g.InitialLr));
        ShouldHoldTheSameState(c, ours, ts, tsExtrasAreZero: false);

        var theirs = Run(inputs, tsParams, ts, Head, Total);
        var mine = Run(inputs, ourParams, ours, Head, Total);
        Report(c, $"TorchSharp -> ours {implementation}", mine, theirs);
        ShouldTrack(c, implementation, mine, theirs);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void A_checkpoint_written_by_us_loads_into_TorchSharp_and_training_continues(string name, Implementation implementation)
    {
        var c = Get(name);
        var inputs = Inputs();

        var ourParams = inputs.MakeParameters();
        using var ours = c.Ours(ourParams, implementation);
        Run(inputs, ourParams, ours, 0, Head);
        var path = Path.Combine(_dir, "ours.bin");
        ours.SaveTorchSharp(path);

        var tsParams = Copy(ourParams);
        using var ts = c.TorchSharpOther(tsParams);
        ts.load_state_dict(path);

        using var reference = c.TorchSharp(Copy(ourParams));
        OptionsShouldEqual(ts, reference);
        ShouldHoldTheSameState(c, ours, ts, tsExtrasAreZero: true);

        var theirs = Run(inputs, tsParams, ts, Head, Total);
        var mine = Run(inputs, ourParams, ours, Head, Total);
        Report(c, $"ours -> TorchSharp {implementation}", mine, theirs);
        ShouldTrack(c, implementation, theirs, mine);
    }

    // The for-loop path runs PyTorch's single-tensor ops; where TorchSharp's own update is the same op sequence (SGD,
    // Adagrad, plain RMSProp) the two continue bit for bit. TorchSharp's Adam/AdamW update exp_avg, and its centered
    // RMSProp grad_avg, with mul_(beta).add_(grad, 1 - beta) where PyTorch uses lerp_(grad, 1 - beta): an ulp here and
    // there (measured over 20 steps: at most 3.0e-8 absolute, 2.5e-6 relative on near-zero elements; replacing that one
    // op in a hand-written TorchSharp Adam made it match ours bit for bit, while its Math.Sqrt(bias_correction2) against
    // PyTorch's bias_correction2 ** 0.5 changed nothing). Auto runs ATen's fused or foreach kernels, whose vectorized
    // arithmetic differs from TorchSharp's per-tensor ops by an ulp or two a step (measured: at most 4.2e-7 absolute, SGD).
    private static void ShouldTrack(Case c, Implementation implementation, List<double[][]> actual, List<double[][]> expected)
    {
        if (implementation != Implementation.ForLoop) Trajectories.ShouldBeClose(actual, expected, atol: 1e-6, rtol: 1e-5);
        else if (c.Tolerance == 0) Trajectories.ShouldBeBitwise(actual, expected);
        else Trajectories.ShouldBeClose(actual, expected, atol: c.Tolerance, rtol: 1e-6);
    }

    [Fact]
    public void Groups_keep_their_own_options_and_parameters()
    {
        var inputs = Inputs();
        var tsParams = inputs.MakeParameters();
        using var ts = torch.optim.Adam(new[]
        {
            new TorchSharp.Modules.Adam.ParamGroup(tsParams.Take(1), lr: 0.02, amsgrad: true),
            new TorchSharp.Modules.Adam.ParamGroup(tsParams.Skip(1), lr: 0.003, beta1: 0.5, weight_decay: 0.1),
        });
        Run(inputs, tsParams, ts, 0, Head);
        using var file = new MemoryStream();
        using (var writer = new BinaryWriter(file, System.Text.Encoding.UTF8, leaveOpen: true)) ts.save_state_dict(writer);

        var ourParams = Copy(tsParams);
        using var ours = new Adam(new[]
        {
            new ParamGroupSpec<AdamOptions>(ourParams.Take(1)),
            new ParamGroupSpec<AdamOptions>(ourParams.Skip(1)),
        }, lr: 0.9, implementation: Implementation.ForLoop);
        file.Position = 0;
        ours.LoadTorchSharp(file);
        file.Position.Should().Be(file.Length);

        ours.ParamGroups[0].Options.Should().Be(new AdamOptions { Lr = 0.02, Amsgrad = true, Implementation = Implementation.ForLoop });
        ours.ParamGroups[1].Options.Should().Be(new AdamOptions { Lr = 0.003, Beta1 = 0.5, WeightDecay = 0.1, Implementation = Implementation.ForLoop });
        ours.ParamGroups.Select(g => g.InitialLearningRate).Should().Equal(0.02, 0.003);
        ours.State[ourParams[0]].Keys.Should().Equal("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq");
        ours.State[ourParams[1]].Keys.Should().Equal("step", "exp_avg", "exp_avg_sq");

        var theirs = Run(inputs, tsParams, ts, Head, Total);
        var mine = Run(inputs, ourParams, ours, Head, Total);
        Trajectories.ShouldBeClose(mine, theirs, atol: 1e-7, rtol: 1e-6);
    }

    [Fact]
    public void A_parameter_TorchSharp_never_stepped_gets_no_state_as_in_PyTorch()
    {
        var inputs = Inputs();
        var tsParams = inputs.MakeParameters();
        using var ts = torch.optim.RMSProp(tsParams, lr: 0.01, momentum: 0.9);
        for (var s = 0; s < Head; s++)
        {
            inputs.SetGradients(tsParams, s);
            tsParams[2].grad = null;
            ts.step();
        }
        var path = Path.Combine(_dir, "partial.bin");
        ts.save_state_dict(path);

        var ourParams = Copy(tsParams);
        using var ours = new RMSprop(ourParams, implementation: Implementation.ForLoop);
        ours.LoadTorchSharp(path);
        ours.StateDict().State.Keys.Should().Equal(0, 1);
        ours.State[ourParams[0]].Keys.Should().Equal("step", "square_avg", "momentum_buffer");

        // Written back, it is what TorchSharp itself would hold: step 0 and zeros.
        var back = Path.Combine(_dir, "back.bin");
        ours.SaveTorchSharp(back);
        File.ReadAllBytes(back).Should().Equal(File.ReadAllBytes(path));

        var theirs = Run(inputs, tsParams, ts, Head, Total);
        var mine = Run(inputs, ourParams, ours, Head, Total);
        Trajectories.ShouldBeBitwise(mine, theirs);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Our_file_round_trips_through_the_format_to_the_same_state(string name, Implementation implementation)
    {
        var c = Get(name);
        var inputs = Inputs();
        var ps = inputs.MakeParameters();
        using var ours = c.Ours(ps, implementation);
        Run(inputs, ps, ours, 0, Head);
        using var file = new MemoryStream();
        ours.SaveTorchSharp(file);
        file.Position = 0;

        using var again = c.OursOther(Copy(ps), implementation);
        again.LoadTorchSharp(file);
        ShouldBeTheSame(again.StateDict(), ours.StateDict());

        // And the bytes are TorchSharp's own: its optimizer, loaded from them, saves them unchanged.
        using var ts = c.TorchSharpOther(Copy(ps));
        file.Position = 0;
        using (var reader = new BinaryReader(file, System.Text.Encoding.UTF8, leaveOpen: true)) ts.load_state_dict(reader);
        using var resaved = new MemoryStream();
        using (var writer = new BinaryWriter(resaved)) ts.save_state_dict(writer);
        resaved.ToArray().Should().Equal(file.ToArray());
    }

    private static void ShouldBeTheSame(OptimizerStateDict actual, OptimizerStateDict expected)
    {
        actual.OptimizerType.Should().Be(expected.OptimizerType);
        actual.ParamGroups.Should().BeEquivalentTo(expected.ParamGroups, o => o.WithStrictOrdering());
        actual.State.Keys.Should().Equal(expected.State.Keys);
        foreach (var (id, state) in expected.State)
        {
            actual.State[id].Keys.Should().Equal(state.Keys, $"parameter {id}");
            foreach (var (key, t) in state) Trajectories.BitwiseEqual(actual.State[id][key], t).Should().BeTrue($"{key} of parameter {id}");
        }
    }

    // A trained optimizer and a snapshot of its state, to show that failed loads change nothing.
    private static (Adam Optimizer, OptimizerStateDict Before) TrainedAdam(GoldenCase inputs)
    {
        var ps = inputs.MakeParameters();
        var adam = new Adam(ps, lr: 0.07, amsgrad: true);
        Run(inputs, ps, adam, 0, 3);
        return (adam, adam.StateDict().DeepCopy());
    }

    private string TorchSharpFile(string name, Func<IReadOnlyList<Parameter>, OptimizerHelper> create)
    {
        var inputs = Inputs();
        var ps = inputs.MakeParameters();
        using var ts = create(ps);
        Run(inputs, ps, ts, 0, Head);
        var path = Path.Combine(_dir, name);
        ts.save_state_dict(path);
        return path;
    }

    [Fact]
    public void A_file_of_another_optimizer_class_is_refused_by_name_and_changes_nothing()
    {
        var adamW = TorchSharpFile("adamw.bin", ps => torch.optim.AdamW(ps, lr: 0.01));
        var (ours, before) = TrainedAdam(Inputs());
        using (ours)
        {
            var load = () => ours.LoadTorchSharp(adamW);
            load.Should().Throw<ArgumentException>().WithMessage("*TorchSharp's 'AdamW'*Adam reads*'Adam'*");
            ShouldBeTheSame(ours.StateDict(), before);
        }
        before.DisposeTensors();

        var rms = TorchSharpFile("rmsprop.bin", ps => torch.optim.RMSProp(ps));
        using var sgd = new SGD(Inputs().MakeParameters(), lr: 0.1, momentum: 0.9);
        var wrong = () => sgd.LoadTorchSharp(rms);
        wrong.Should().Throw<ArgumentException>().WithMessage("*TorchSharp's 'RMSProp'*SGD reads*'SGD'*");

        // TorchSharp refuses our files the same way: we write the class name it checks.
        using var ourAdamW = new AdamW(Inputs().MakeParameters());
        var path = Path.Combine(_dir, "ours-adamw.bin");
        ourAdamW.SaveTorchSharp(path);
        using var tsAdam = torch.optim.Adam(Inputs().MakeParameters());
        var tsLoad = () => tsAdam.load_state_dict(path);
        tsLoad.Should().Throw<InvalidDataException>().WithMessage("*Mismatched optimizer type*");
    }

    [Fact]
    public void Every_truncation_of_a_TorchSharp_file_is_invalid_data_and_changes_nothing()
    {
        var full = File.ReadAllBytes(TorchSharpFile("adam.bin", ps => torch.optim.Adam(ps, lr: 0.01, amsgrad: true)));
        var (ours, before) = TrainedAdam(Inputs());
        using (ours)
        {
            for (var length = 0; length < full.Length; length++)
            {
                using var cut = new MemoryStream(full, 0, length, writable: false);
                var load = () => ours.LoadTorchSharp(cut);
                load.Should().Throw<InvalidDataException>($"the file cut to {length} of {full.Length} bytes");
            }
            ShouldBeTheSame(ours.StateDict(), before);
            ours.ParamGroups[0].Options.Lr.Should().Be(0.07);
        }
        before.DisposeTensors();
    }

    [Fact]
    public void Damaged_structure_and_other_formats_are_invalid_data()
    {
        var path = TorchSharpFile("sgd.bin", ps => torch.optim.SGD(ps, 0.1, momentum: 0.9));
        var bytes = File.ReadAllBytes(path);
        using var sgd = new SGD(Inputs().MakeParameters(), lr: 0.1, momentum: 0.9);

        // The first state's "has momentum_buffer" flag: 4 + 2 + 2 * 8 + 3 * 8 + 2 bytes in.
        var flag = 1 + "SGD".Length + 2 + 5 * 8 + 2;
        bytes[flag].Should().Be(1);
        var damaged = (byte[])bytes.Clone();
        damaged[flag] = 7;
        var load = () => sgd.LoadTorchSharp(new MemoryStream(damaged));
        load.Should().Throw<InvalidDataException>().WithMessage("*byte 7*momentum_buffer*");

        var trailing = Path.Combine(_dir, "trailing.bin");
        File.WriteAllBytes(trailing, bytes.Concat(new byte[] { 0 }).ToArray());
        var fromFile = () => sgd.LoadTorchSharp(trailing);
        fromFile.Should().Throw<InvalidDataException>().WithMessage("*1 bytes after*");

        // A stream may carry more after the checkpoint (e.g. the model): the load stops at the checkpoint's end.
        using var followed = new MemoryStream(bytes.Concat(new byte[] { 42 }).ToArray());
        sgd.LoadTorchSharp(followed);
        followed.Position.Should().Be(bytes.Length);

        using var optimFormat = new MemoryStream();
        sgd.Save(optimFormat);
        optimFormat.Position = 0;
        var ours = () => sgd.LoadTorchSharp(optimFormat);
        ours.Should().Throw<InvalidDataException>().WithMessage("*not a TorchSharp optimizer checkpoint*");
    }

    [Fact]
    public void A_different_layout_is_refused()
    {
        var path = TorchSharpFile("two.bin", ps => torch.optim.Adagrad(ps));
        var ps = Inputs().MakeParameters();
        using var fewer = new Adagrad(ps.Take(2));
        var load = () => fewer.LoadTorchSharp(path);
        load.Should().Throw<ArgumentException>().WithMessage("*state for 3 parameters, the optimizer has 2*");

        using var twoGroups = new Adagrad(new[] { new ParamGroupSpec<AdagradOptions>(ps.Take(1)), new ParamGroupSpec<AdagradOptions>(ps.Skip(1)) });
        var grouped = () => twoGroups.LoadTorchSharp(path);
        grouped.Should().Throw<ArgumentException>().WithMessage("*1 parameter groups, the optimizer has 2*");

        // Shapes are checked too (by LoadStateDict): parameters in another order do not fit.
        using var reordered = new Adagrad(ps.AsEnumerable().Reverse());
        var shuffled = () => reordered.LoadTorchSharp(path);
        shuffled.Should().Throw<ArgumentException>().WithMessage("*shape*");
    }

    [Fact]
    public void What_TorchSharp_cannot_represent_is_refused_and_nothing_is_written()
    {
        var ps = Inputs().MakeParameters();
        using var nesterov = new SGDMomentumNesterov(ps);
        var path = Path.Combine(_dir, "never.bin");
        var save = () => nesterov.SaveTorchSharp(path);
        save.Should().Throw<NotSupportedException>().WithMessage("*SGDMomentumNesterov*");
        File.Exists(path).Should().BeFalse();
        var load = () => nesterov.LoadTorchSharp(new MemoryStream());
        load.Should().Throw<NotSupportedException>();

        // TorchSharp's Adagrad always minimizes.
        using var maximizing = new Adagrad(ps, maximize: true);
        using var stream = new MemoryStream();
        var write = () => maximizing.SaveTorchSharp(stream);
        write.Should().Throw<NotSupportedException>().WithMessage("*maximize*");
        stream.Length.Should().Be(0);

        TorchSharpCheckpoint.ClassName(new RMSprop(ps)).Should().Be("RMSProp");
    }

    private void Report(Case c, string direction, List<double[][]> mine, List<double[][]> theirs)
    {
        var worstAbs = 0.0;
        var worstRel = 0.0;
        for (var s = 0; s < mine.Count; s++)
        {
            for (var p = 0; p < mine[s].Length; p++)
            {
                for (var k = 0; k < mine[s][p].Length; k++)
                {
                    var d = Math.Abs(mine[s][p][k] - theirs[s][p][k]);
                    worstAbs = Math.Max(worstAbs, d);
                    worstRel = Math.Max(worstRel, d / Math.Max(Math.Abs(theirs[s][p][k]), 1e-30));
                }
            }
        }
        output.WriteLine($"{c.Name}, {direction}: worst |diff| {worstAbs:E3}, worst relative {worstRel:E3}");
    }
}
