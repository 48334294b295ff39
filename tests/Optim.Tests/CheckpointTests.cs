using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>Resume from a checkpoint must continue exactly as an uninterrupted run would.</summary>
public class CheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("optim-ckpt").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    // Two groups with different options, so the group layout and hyperparameters are part of the round trip.
    private static SGD TwoGroupSgd(IReadOnlyList<Parameter> ps) => new(new[]
    {
        new ParamGroupSpec<SGDOptions>(ps.Take(2)),
        new ParamGroupSpec<SGDOptions>(ps.Skip(2), o => o with { Lr = 0.05, Nesterov = true, WeightDecay = 0.01 }),
    }, lr: 0.1, momentum: 0.9);

    private static GoldenCase Case(string id = "momentum_float32 (Float32)") => GoldenCase.Get("sgd.json", id);

    [Theory]
    [InlineData("file")]
    [InlineData("stream")]
    [InlineData("state dict")]
    public void Resuming_is_bit_identical_to_an_uninterrupted_run(string via)
    {
        var c = Case();
        var straightParams = c.MakeParameters();
        using var straight = TwoGroupSgd(straightParams);
        var expected = c.Run(straightParams, straight);

        var firstParams = c.MakeParameters();
        using var first = TwoGroupSgd(firstParams);
        var head = c.Run(firstParams, first, 0, 10);

        // Fresh parameters holding the same values, a fresh optimizer, different lr (the checkpoint's must win).
        var resumedParams = firstParams.Select(p => new Parameter(p.detach().clone())).ToList();
        using var resumed = new SGD(new[]
        {
            new ParamGroupSpec<SGDOptions>(resumedParams.Take(2)),
            new ParamGroupSpec<SGDOptions>(resumedParams.Skip(2)),
        }, lr: 0.7, momentum: 0.5);

        switch (via)
        {
            case "file":
                var path = Path.Combine(_dir, "opt.ckpt");
                first.Save(path);
                resumed.Load(path);
                break;
            case "stream":
                using (var memory = new MemoryStream())
                {
                    first.Save(memory);
                    memory.Position = 0;
                    resumed.Load(memory);
                }
                break;
            default:
                resumed.LoadStateDict(first.StateDict());
                break;
        }

        resumed.ParamGroups[1].Options.Should().Be(first.ParamGroups[1].Options);
        var tail = c.Run(resumedParams, resumed, 10);
        Trajectories.ShouldBeBitwise(head.Concat(tail).ToList(), expected);
    }

    [Fact]
    public void Loading_a_state_dict_copies_its_tensors()
    {
        var c = Case();
        var ps = c.MakeParameters();
        using var source = new SGD(ps, 0.1, momentum: 0.9);
        c.Run(ps, source, 0, 3);
        var ps2 = c.MakeParameters();
        using var target = new SGD(ps2, 0.1, momentum: 0.9);
        target.LoadStateDict(source.StateDict());
        var loaded = target.State[ps2[1]]["momentum_buffer"];
        var original = source.State[ps[1]]["momentum_buffer"];
        loaded.Handle.Should().NotBe(original.Handle);
        Trajectories.BitwiseEqual(loaded, original).Should().BeTrue();
        original.add_(1);
        Trajectories.BitwiseEqual(loaded, original).Should().BeFalse();
    }

    [Fact]
    public void State_dict_has_PyTorchs_shape()
    {
        var c = Case();
        var ps = c.MakeParameters();
        using var opt = TwoGroupSgd(ps);
        c.Run(ps, opt, 0, 2);
        var sd = opt.StateDict();
        sd.OptimizerType.Should().Be("SGD");
        sd.ParamGroups.Select(g => g.Params).Should().BeEquivalentTo(new[] { new[] { 0, 1 }, new[] { 2 } }, o => o.WithStrictOrdering());
        sd.ParamGroups[1]["lr"].Should().Be(0.05);
        sd.ParamGroups[1]["nesterov"].Should().Be(true);
        sd.ParamGroups[0].Hyperparameters.Select(h => h.Key).Should().Equal("lr", "momentum", "weight_decay", "dampening", "nesterov", "maximize", "implementation");
        sd.State.Keys.Should().Equal(0, 1, 2);
        sd.State[0].Keys.Should().Equal("momentum_buffer");
    }

    [Fact]
    public void Loads_cast_state_to_the_parameters_dtype()
    {
        var c = Case();
        var ps = c.MakeParameters();
        using var source = new SGD(ps, 0.1, momentum: 0.9);
        c.Run(ps, source, 0, 2);
        var ps64 = ps.Select(p => new Parameter(p.detach().to(ScalarType.Float64))).ToList();
        using var target = new SGD(ps64, 0.1, momentum: 0.9);
        target.LoadStateDict(source.StateDict());
        target.State[ps64[2]]["momentum_buffer"].dtype.Should().Be(ScalarType.Float64);
    }

    [Theory]
    [InlineData("groups")]
    [InlineData("size")]
    [InlineData("type")]
    [InlineData("shape")]
    [InlineData("hyperparameter")]
    public void A_mismatched_state_dict_is_rejected_and_changes_nothing(string mismatch)
    {
        var c = Case();
        var ps = c.MakeParameters();
        using var source = TwoGroupSgd(ps);
        c.Run(ps, source, 0, 3);
        var sd = source.StateDict();

        var targetParams = c.MakeParameters();
        using var target = TwoGroupSgd(targetParams);
        c.Run(targetParams, target, 0, 1);
        var before = StateSnapshot.Of(target, targetParams);

        var bad = mismatch switch
        {
            "groups" => sd with { ParamGroups = sd.ParamGroups.Take(1).ToList() },
            "size" => sd with { ParamGroups = new[] { sd.ParamGroups[0] with { Params = new[] { 0 } }, sd.ParamGroups[1] } },
            "type" => sd with { OptimizerType = "Adam" },
            "shape" => sd with { State = new Dictionary<int, IReadOnlyDictionary<string, Tensor>>(sd.State) { [2] = new Dictionary<string, Tensor> { ["momentum_buffer"] = torch.zeros(4) } } },
            _ => sd with { ParamGroups = new[] { sd.ParamGroups[0], sd.ParamGroups[1] with { Hyperparameters = new[] { new KeyValuePair<string, object?>("lr", -1.0) } } } },
        };
        var message = mismatch switch
        {
            "groups" => "loaded state dict has a different number of parameter groups*",
            "size" => "loaded state dict contains a parameter group that doesn't match the size of optimizer's group*",
            "type" => "*'Adam' optimizer, not 'SGD'*",
            "shape" => "*'momentum_buffer' of parameter id 2 has shape [4], but the parameter has shape [3, 4]*",
            _ => "Invalid learning rate: -1.0*",
        };
        var act = () => target.LoadStateDict(bad);
        act.Should().Throw<ArgumentException>().WithMessage(message);
        StateSnapshot.Of(target, targetParams).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
    }

    [Fact]
    public void Checkpoints_round_trip_every_dtype_bit_for_bit()
    {
        var types = new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Float16, ScalarType.BFloat16 };
        var ps = types.Select(t => new Parameter(torch.randn(3, 2).to(t))).ToList();
        using var opt = new SGD(ps, 0.1, momentum: 0.9);
        foreach (var p in ps) p.grad = torch.randn(3, 2).to(p.dtype);
        opt.step();
        using var memory = new MemoryStream();
        opt.Save(memory);
        memory.Position = 0;
        var ps2 = ps.Select(p => new Parameter(p.detach().clone())).ToList();
        using var opt2 = new SGD(ps2, 0.1, momentum: 0.9);
        opt2.Load(memory);
        for (var i = 0; i < ps.Count; i++)
            Trajectories.BitwiseEqual(opt.State[ps[i]]["momentum_buffer"], opt2.State[ps2[i]]["momentum_buffer"]).Should().BeTrue();
    }

    [Fact]
    public void Saving_over_a_file_replaces_it_atomically_and_leaves_no_temporary_files()
    {
        var c = Case();
        var ps = c.MakeParameters();
        using var opt = new SGD(ps, 0.1, momentum: 0.9);
        c.Run(ps, opt, 0, 2);
        var path = Path.Combine(_dir, "opt.ckpt");
        opt.Save(path);
        c.Run(ps, opt, 2, 3);
        opt.Save(path);
        Directory.GetFiles(_dir).Should().Equal(path);
        var ps2 = c.MakeParameters();
        using var loaded = new SGD(ps2, 0.1, momentum: 0.9);
        loaded.Load(path);
        Trajectories.BitwiseEqual(loaded.State[ps2[1]]["momentum_buffer"], opt.State[ps[1]]["momentum_buffer"]).Should().BeTrue();
    }

    [Fact]
    public void A_failed_save_leaves_the_previous_checkpoint_intact()
    {
        var c = Case();
        var ps = c.MakeParameters();
        using var opt = new SGD(ps, 0.1, momentum: 0.9);
        c.Run(ps, opt, 0, 2);
        var path = Path.Combine(_dir, "opt.ckpt");
        opt.Save(path);
        var before = File.ReadAllBytes(path);
        var act = () => Formats.AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[100]);
            throw new IOException("disk full (simulated)");
        });
        act.Should().Throw<IOException>();
        File.ReadAllBytes(path).Should().Equal(before);
        Directory.GetFiles(_dir).Should().Equal(path);
    }

    [Theory]
    [InlineData("Adam into SGD", "*'Adam' optimizer, not 'SGD'*")]
    [InlineData("AdamW into Adam", "*'AdamW' optimizer, not 'Adam'*")]
    [InlineData("two groups into one", "loaded state dict has a different number of parameter groups*")]
    [InlineData("groups split differently", "loaded state dict contains a parameter group that doesn't match the size of optimizer's group*")]
    [InlineData("other shapes", "*'momentum_buffer' of parameter id 1 has shape [5], but the parameter has shape [4]*")]
    public void Loading_a_checkpoint_file_that_does_not_fit_gives_a_specific_error_and_changes_nothing(string mismatch, string message)
    {
        var c = Case();
        var sourceParams = c.MakeParameters();
        using Optimizer source = mismatch switch
        {
            "Adam into SGD" => new Adam(sourceParams, 0.1),
            "AdamW into Adam" => new AdamW(sourceParams, 0.1),
            "other shapes" => new SGD(sourceParams, 0.1, momentum: 0.9),
            _ => TwoGroupSgd(sourceParams),
        };
        c.Run(sourceParams, source, 0, 3);
        var path = Path.Combine(_dir, "source.ckpt");
        source.Save(path);

        var ps = mismatch == "other shapes"
            ? new List<Parameter> { new(torch.zeros(Array.Empty<long>())), new(torch.zeros(4)), new(torch.zeros(3, 4)) }
            : c.MakeParameters();
        using Optimizer target = mismatch switch
        {
            "AdamW into Adam" => new Adam(ps, 0.1),
            "groups split differently" => new SGD(new[]
            {
                new ParamGroupSpec<SGDOptions>(ps.Take(1)),
                new ParamGroupSpec<SGDOptions>(ps.Skip(1)),
            }, lr: 0.1, momentum: 0.9),
            _ => new SGD(ps, 0.1, momentum: 0.9),
        };
        foreach (var p in ps) p.grad = torch.ones_like(p);
        target.step();
        var before = StateSnapshot.Of(target, ps);

        var act = () => target.Load(path);
        act.Should().Throw<ArgumentException>().WithMessage(message);
        StateSnapshot.Of(target, ps).Should().Equal(before);
    }

    [Fact]
    public void A_failed_first_save_leaves_no_file_at_all()
    {
        var path = Path.Combine(_dir, "never.ckpt");
        var act = () => Formats.AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[10]);
            throw new IOException("disk full (simulated)");
        });
        act.Should().Throw<IOException>();
        Directory.GetFiles(_dir).Should().BeEmpty();
    }
}
