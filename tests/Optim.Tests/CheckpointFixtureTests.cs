using System;
using System.IO;
using Optim.Tests.Support;

namespace Optim.Tests;

/// <summary>Checkpoints written by earlier releases still load: the fixtures are files the version-1 writer produced.</summary>
public class CheckpointFixtureTests
{
    public static TheoryData<string> Names => new(V1Fixtures.Names);

    [Theory]
    [MemberData(nameof(Names))]
    public void A_version_1_checkpoint_loads_with_every_value_bit_for_bit(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Fixtures", V1Fixtures.FileName(name));
        File.ReadAllBytes(path).AsSpan(8, 2).ToArray().Should().Equal(new byte[] { 1, 0 }, "the fixture is a version-1 file");

        var (expected, expectedParams) = V1Fixtures.Trained(name);
        using var _ = expected;
        var ps = V1Fixtures.Parameters();
        using var loaded = V1Fixtures.Create(name, ps);
        loaded.Load(path);

        var want = expected.StateDict();
        var got = loaded.StateDict();
        got.OptimizerType.Should().Be(want.OptimizerType);
        got.ParamGroups.Should().HaveSameCount(want.ParamGroups);
        for (var g = 0; g < want.ParamGroups.Count; g++)
        {
            got.ParamGroups[g].Hyperparameters.Should().Equal(want.ParamGroups[g].Hyperparameters);
            got.ParamGroups[g].InitialLr.Should().Be(want.ParamGroups[g].InitialLr);
            got.ParamGroups[g].Params.Should().Equal(want.ParamGroups[g].Params);
        }
        got.State.Keys.Should().Equal(want.State.Keys);
        foreach (var (id, entries) in want.State)
        {
            got.State[id].Keys.Should().Equal(entries.Keys, $"parameter {id} has the same state keys, in order");
            foreach (var (key, tensor) in entries)
                Trajectories.BitwiseEqual(got.State[id][key], tensor).Should().BeTrue($"state '{key}' of parameter {id} is bit for bit");
        }

        // And training continues exactly as the uninterrupted run.
        for (var i = 0; i < ps.Count; i++)
        {
            using (TorchSharp.torch.no_grad()) ps[i].copy_(expectedParams[i]);
            ps[i].grad = TorchSharp.torch.ones_like(ps[i]);
            expectedParams[i].grad = TorchSharp.torch.ones_like(expectedParams[i]);
        }
        expected.step();
        loaded.step();
        for (var i = 0; i < ps.Count; i++) Trajectories.BitwiseEqual(ps[i], expectedParams[i]).Should().BeTrue();
    }
}
