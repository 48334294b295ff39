using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>The bookkeeping every algorithm inherits, exercised through SGD.</summary>
public class OptimizerBaseTests
{
    private static Parameter P(params float[] values) => new(torch.tensor(values));

    [Fact]
    public void Construction_rejects_an_empty_parameter_list()
    {
        var act = () => new SGD(Array.Empty<Parameter>(), 0.1);
        act.Should().Throw<ArgumentException>().WithMessage("optimizer got an empty parameter list*");
    }

    [Fact]
    public void Construction_rejects_a_parameter_in_two_groups()
    {
        var shared = P(1);
        var act = () => new SGD(new[] { new ParamGroupSpec<SGDOptions>(new[] { shared }), new ParamGroupSpec<SGDOptions>(new[] { P(2), shared }) }, 0.1);
        act.Should().Throw<ArgumentException>().WithMessage("some parameters appear in more than one parameter group*");
    }

    [Fact]
    public void Construction_rejects_the_same_parameter_twice_in_a_group()
    {
        // PyTorch only warns and then updates the parameter twice per step.
        var p = P(1);
        var act = () => new SGD(new[] { p, P(2), p }, 0.1);
        act.Should().Throw<ArgumentException>().WithMessage("optimizer contains a parameter group with duplicate parameters*'0.2'*");
    }

    [Fact]
    public void Construction_rejects_a_non_leaf_tensor()
    {
        var leaf = new Parameter(torch.ones(2));
        var nonLeaf = new Parameter(leaf * 2);
        nonLeaf.is_leaf.Should().BeFalse();
        var act = () => new SGD(new[] { leaf, nonLeaf }, 0.1);
        act.Should().Throw<ArgumentException>().WithMessage("can't optimize a non-leaf Tensor*");
    }

    [Fact]
    public void Groups_take_the_defaults_they_do_not_override()
    {
        var a = P(1);
        var b = P(2);
        using var opt = new SGD(new[]
        {
            new ParamGroupSpec<SGDOptions>(new[] { a }),
            new ParamGroupSpec<SGDOptions>(new[] { b }, o => o with { Lr = 0.5, WeightDecay = 0.1 }),
        }, lr: 0.1, momentum: 0.9);
        opt.ParamGroups[0].Options.Should().Be(new SGDOptions { Lr = 0.1, Momentum = 0.9 });
        opt.ParamGroups[1].Options.Should().Be(new SGDOptions { Lr = 0.5, Momentum = 0.9, WeightDecay = 0.1 });
        opt.parameters().Should().Equal(a, b);
    }

    [Fact]
    public void Named_parameters_name_errors()
    {
        var w = new Parameter(torch.ones(3));
        using var opt = new SGD(new[] { ("fc.weight", w) }, 0.1);
        w.grad = torch.ones(2);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*'fc.weight'*[2]*[3]*");
    }

    [Fact]
    public void A_bad_gradient_in_a_later_group_leaves_every_parameter_and_all_state_unchanged()
    {
        var a = P(1, 2);
        var b = P(3, 4);
        using var opt = new SGD(new[] { new ParamGroupSpec<SGDOptions>(new[] { a }), new ParamGroupSpec<SGDOptions>(new[] { b }) }, 0.1, momentum: 0.9);
        a.grad = torch.ones(2);
        b.grad = torch.ones(2, dtype: ScalarType.Float64);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*Float64*Float32*");
        a.data<float>().ToArray().Should().Equal(1f, 2f);
        opt.State.Should().BeEmpty();
    }

    [Fact]
    public void Step_runs_the_closure_with_grad_enabled_and_returns_its_loss()
    {
        var p = P(3);
        using var opt = new SGD(new[] { p }, 0.1);
        var loss = opt.step(() =>
        {
            opt.zero_grad();
            var l = (p * p).sum();
            l.backward();
            return l;
        });
        loss!.item<float>().Should().Be(9f);
        p.data<float>()[0].Should().BeApproximately(3f - 0.1f * 6f, 1e-6f);
    }

    [Fact]
    public void Zero_grad_sets_to_none_by_default_and_zeroes_in_place_on_request()
    {
        var p = P(1, 2);
        using var opt = new SGD(new[] { p }, 0.1);
        p.grad = torch.ones(2);
        opt.zero_grad(set_to_none: false);
        p.grad.data<float>().ToArray().Should().Equal(0f, 0f);
        opt.zero_grad();
        p.grad.Should().BeNull();
    }

    [Fact]
    public void Add_param_group_later_gets_state_lazily_and_schedulers_see_it()
    {
        var a = P(1);
        var b = P(2);
        using var opt = new SGD(new[] { a }, 0.1, momentum: 0.9);
        opt.AddParamGroup(new ParamGroupSpec<SGDOptions>(new[] { b }, o => o with { Lr = 0.01 }));
        opt.State.ContainsKey(b).Should().BeFalse();
        b.grad = torch.ones(1);
        opt.step();
        opt.State[b].Keys.Should().Equal("momentum_buffer");
        ((torch.optim.Optimizer)opt).ParamGroups.Select(g => g.LearningRate).Should().Equal(0.1, 0.01);
    }

    [Fact]
    public void TorchSharp_param_groups_can_be_added()
    {
        var a = P(1);
        var b = P(2);
        using var opt = new SGD(new[] { a }, 0.1);
        opt.add_param_group(new SGDParamGroup(new[] { b }, new TorchSharp.Modules.SGD.Options { LearningRate = 0.3 }));
        opt.ParamGroups[1].Options.Lr.Should().Be(0.3);
    }

    [Fact]
    public void Converting_the_module_after_construction_gives_a_clear_error_not_a_KeyNotFoundException()
    {
        // TorchSharp's optimizers key state by native handle, which converting the module replaces.
        var lin = nn.Linear(3, 2);
        using var opt = new SGD(lin.named_parameters(), 0.1);
        lin.to(ScalarType.Float64);
        using var loss = lin.call(torch.ones(1, 3, dtype: ScalarType.Float64)).sum();
        loss.backward();
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*'weight' has been disposed*create the optimizer after*");
    }

    [Fact]
    public void Setting_an_invalid_learning_rate_on_a_group_is_rejected_and_changes_nothing()
    {
        using var opt = new SGD(new[] { P(1) }, 0.1, momentum: 0.9, nesterov: true);
        var group = (torch.optim.ILearningRateController)opt.ParamGroups[0];
        var act = () => group.LearningRate = -1;
        act.Should().Throw<ArgumentException>().WithMessage("Invalid learning rate: -1.0*");
        var momentum = () => opt.Momentum = 0;
        momentum.Should().Throw<ArgumentException>().WithMessage("Nesterov momentum requires*");
        opt.ParamGroups[0].Options.Should().Be(new SGDOptions { Lr = 0.1, Momentum = 0.9, Nesterov = true });
    }

    [Fact]
    public void StepLR_drives_the_learning_rate()
    {
        var p = P(1);
        using var opt = new SGD(new[] { p }, 1.0);
        var scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size: 2, gamma: 0.5);
        var lrs = new List<double>();
        for (var i = 0; i < 6; i++)
        {
            p.grad = torch.ones(1);
            opt.step();
            scheduler.step();
            lrs.Add(opt.ParamGroups[0].LearningRate);
        }
        lrs.Should().Equal(1.0, 0.5, 0.5, 0.25, 0.25, 0.125);
    }

    [Fact]
    public void CyclicLR_cycles_the_momentum_of_every_group()
    {
        var a = P(1);
        var b = P(2);
        using var opt = new SGD(new[] { new ParamGroupSpec<SGDOptions>(new[] { a }), new ParamGroupSpec<SGDOptions>(new[] { b }) }, 0.1, momentum: 0.9);
        var scheduler = torch.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up: 4, cycle_momentum: true, base_momentum: 0.8, max_momentum: 0.9);
        var momenta = new List<double>();
        for (var i = 0; i < 4; i++)
        {
            a.grad = torch.ones(1);
            opt.step();
            scheduler.step();
            momenta.Add(opt.ParamGroups[1].Options.Momentum);
        }
        // TorchSharp's CyclicLR computes max_momentum + (max - base) * scale (PyTorch subtracts), so momentum
        // climbs from 0.9 towards 1.0 on the way up; we follow whatever the scheduler sets, in every group.
        momenta.Should().Equal(new[] { 0.925, 0.95, 0.975, 1.0 }, (x, y) => Math.Abs(x - y) < 1e-12);
        opt.ParamGroups[0].Options.Momentum.Should().Be(opt.ParamGroups[1].Options.Momentum);
        opt.ParamGroups[0].LearningRate.Should().BeGreaterThan(0.01);
    }

    [Fact]
    public void OneCycleLR_cycles_the_momentum()
    {
        var p = P(1);
        using var opt = new SGD(new[] { p }, 0.1, momentum: 0.9);
        var scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr: 0.1, total_steps: 10, cycle_momentum: true);
        var momenta = new List<double> { opt.Momentum };
        for (var i = 0; i < 5; i++)
        {
            p.grad = torch.ones(1);
            opt.step();
            scheduler.step();
            momenta.Add(opt.Momentum);
        }
        momenta.First().Should().BeApproximately(0.95, 1e-12);
        momenta.Distinct().Should().HaveCountGreaterThan(3);
    }
}

internal sealed class SGDParamGroup : TorchSharp.Modules.ParamGroup<TorchSharp.Modules.SGD.Options>
{
    public SGDParamGroup(IEnumerable<Parameter> ps, TorchSharp.Modules.SGD.Options options) : base(ps, options) { }
}
