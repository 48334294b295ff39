using System;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Tests;

/// <summary>
/// PyTorch 2.x's <c>param_names</c>: an optimizer built from named parameters keeps the names in each group of its state
/// dict; a load matches parameters by position, not name, and the names it carries replace the groups' (a dict without
/// names leaves them); either every group has names or none has.
/// </summary>
public class ParamNamesTests
{
    private static (Parameter, Parameter, Parameter) Three() =>
        (new Parameter(torch.ones(2)), new Parameter(torch.ones(3)), new Parameter(torch.ones(2, 2)));

    [Fact]
    public void State_dicts_carry_the_names_given_with_the_parameters_and_none_otherwise()
    {
        var (a, b, c) = Three();
        using var named = new Adam(new[] { ("encoder.weight", a), ("encoder.bias", b), ("head.weight", c) });
        named.ParamGroups[0].ParamNames.Should().Equal("encoder.weight", "encoder.bias", "head.weight");
        named.StateDict().ParamGroups[0].ParamNames.Should().Equal("encoder.weight", "encoder.bias", "head.weight");

        using var unnamed = new Adam(new[] { a, b, c });
        unnamed.ParamGroups[0].ParamNames.Should().BeNull();
        unnamed.StateDict().ParamGroups[0].ParamNames.Should().BeNull();
        unnamed.ParamGroups[0].Names.Should().Equal("0.0", "0.1", "0.2"); // messages still name them
    }

    [Fact]
    public void Groups_with_and_without_names_do_not_mix_as_in_PyTorch()
    {
        var (a, b, c) = Three();
        using var named = new SGD(new[] { new ParamGroupSpec<SGDOptions>([a], Names: ["a"]) });
        FluentActions.Invoking(() => named.AddParamGroup(new ParamGroupSpec<SGDOptions>([b])))
            .Should().Throw<ArgumentException>()
            .WithMessage("all optimizer param groups should be with/without names. cannot add param group without names to the optimizer*");
        using var unnamed = new SGD(new[] { c });
        FluentActions.Invoking(() => unnamed.AddParamGroup(new ParamGroupSpec<SGDOptions>([b], Names: ["b"])))
            .Should().Throw<ArgumentException>().WithMessage("*cannot add param group with names to the optimizer*");
        named.ParamGroups.Should().HaveCount(1);
        unnamed.ParamGroups.Should().HaveCount(1);
        named.AddParamGroup(new ParamGroupSpec<SGDOptions>([b], Names: ["b"]));
        named.StateDict().ParamGroups.Select(g => g.ParamNames![0]).Should().Equal("a", "b");
    }

    [Fact]
    public void Names_survive_an_optimizer_checkpoint_and_replace_the_names_of_the_optimizer_that_loads_them()
    {
        var (a, b, c) = Three();
        using var source = new SGD(new[] { ("w", a), ("b", b), ("h", c) }, lr: 0.1, momentum: 0.9);
        foreach (var p in new[] { a, b, c }) p.grad = torch.ones_like(p);
        source.step();
        using var stream = new MemoryStream();
        source.Save(stream);

        // Unnamed target: the parameters are matched by position, and the saved names become the group's.
        var (x, y, z) = Three();
        using var target = new SGD(new[] { x, y, z }, lr: 0.1, momentum: 0.9);
        stream.Position = 0;
        target.Load(stream);
        target.ParamGroups[0].ParamNames.Should().Equal("w", "b", "h");
        Trajectories.BitwiseEqual(target.State[z]["momentum_buffer"], source.State[c]["momentum_buffer"]).Should().BeTrue();

        // A dict without names leaves a group's names as they are.
        using var unnamedSource = new SGD(new[] { new Parameter(torch.ones(2)), new Parameter(torch.ones(3)), new Parameter(torch.ones(2, 2)) });
        target.LoadStateDict(unnamedSource.StateDict());
        target.ParamGroups[0].ParamNames.Should().Equal("w", "b", "h");
    }

    [Fact]
    public void Names_are_not_matched_on_load_as_PyTorch_does_not_match_them()
    {
        var (a, b, c) = Three();
        using var source = new SGD(new[] { ("old.w", a), ("old.b", b), ("old.h", c) });
        var (x, y, z) = Three();
        using var target = new SGD(new[] { ("new.w", x), ("new.b", y), ("new.h", z) });
        target.LoadStateDict(source.StateDict());
        target.ParamGroups[0].ParamNames.Should().Equal("old.w", "old.b", "old.h");
    }

    [Fact]
    public void A_dict_whose_names_do_not_fit_its_params_is_refused_and_changes_nothing()
    {
        var (a, b, c) = Three();
        using var opt = new SGD(new[] { ("w", a), ("b", b), ("h", c) }, lr: 0.1);
        var sd = opt.StateDict();
        var bad = sd with { ParamGroups = [sd.ParamGroups[0] with { ParamNames = ["w", "b"], Hyperparameters = [new("lr", 0.5)] }] };
        FluentActions.Invoking(() => opt.LoadStateDict(bad)).Should().Throw<ArgumentException>().WithMessage("*2 param_names for 3 params*");
        opt.ParamGroups[0].LearningRate.Should().Be(0.1);
        opt.ParamGroups[0].ParamNames.Should().Equal("w", "b", "h");
        var withNull = sd with { ParamGroups = [sd.ParamGroups[0] with { ParamNames = ["w", null!, "h"] }] };
        FluentActions.Invoking(() => opt.LoadStateDict(withNull)).Should().Throw<ArgumentException>().WithMessage("*null*");
    }

    [Fact]
    public void A_training_checkpoint_keeps_the_names()
    {
        var model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1));
        using var opt = new AdamW(model.named_parameters());
        var path = Path.Combine(Path.GetTempPath(), $"optim-names-{Guid.NewGuid():N}.ckpt");
        try
        {
            Formats.TrainingCheckpoint.Save(path, model, opt);
            using var unnamed = new AdamW(model.parameters());
            Formats.TrainingCheckpoint.Load(path, model, unnamed);
            unnamed.ParamGroups[0].ParamNames.Should().Equal(model.named_parameters().Select(p => p.name));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
