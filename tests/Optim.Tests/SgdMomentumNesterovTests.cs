using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim.Tests;

public class SgdMomentumNesterovTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 0.0, false)]
    [InlineData(ScalarType.Float64, 0.0, false)]
    [InlineData(ScalarType.Float32, 0.1, true)]
    [InlineData(ScalarType.Float64, 0.1, true)]
    public void With_coupled_weight_decay_equals_SGD_with_Nesterov_momentum(ScalarType dtype, double weightDecay, bool maximize)
    {
        var c = RandomCases.Make(dtype, seed: 11, steps: 25);
        var a = c.MakeParameters();
        var b = c.MakeParameters();
        using var sgd = new SGD(a, lr: 0.1, momentum: 0.9, weight_decay: weightDecay, nesterov: true, maximize: maximize);
        using var nesterov = new SGDMomentumNesterov(b, lr: 0.1, weight_decay: weightDecay, maximize: maximize);
        Trajectories.ShouldBeBitwise(c.Run(b, nesterov), c.Run(a, sgd));
    }

    [Theory]
    [InlineData(-0.1, 0.9, 0, true, 0, "lr", "Invalid learning rate: -0.1")]
    [InlineData(0.1, -0.5, 0, false, 0, "momentum", "Invalid momentum value: -0.5")]
    [InlineData(0.1, 1.5, 0, false, 0, "momentum", "Invalid momentum value: 1.5")]
    [InlineData(0.1, 0.9, 0, true, -1e-5, "weight_decay", "Invalid weight_decay value: -1e-05")]
    [InlineData(0.1, 0.9, -0.1, false, 0, "dampening", "Invalid dampening value: -0.1")]
    [InlineData(0.1, 0.9, 1.5, false, 0, "dampening", "Invalid dampening value: 1.5")]
    [InlineData(0.1, 0, 0, true, 0, "nesterov", "Nesterov momentum requires a momentum and zero dampening")]
    [InlineData(0.1, 0.9, 0.1, true, 0, "nesterov", "Nesterov momentum requires a momentum and zero dampening")]
    [InlineData(double.PositiveInfinity, 0.9, 0, true, 0, "lr", "Invalid learning rate: inf")]
    [InlineData(0.1, double.NaN, 0, true, 0, "momentum", "Invalid momentum value: nan")]
    public void Rejects_invalid_hyperparameters_with_SGDs_message(double lr, double momentum, double dampening, bool nesterov, double wd, string param, string message)
    {
        var act = () => new SGDMomentumNesterov(new[] { new Parameter(torch.ones(1)) }, lr, momentum, dampening, nesterov, wd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Defaults_are_Nesterov_momentum_0_9_and_coupled_decay()
    {
        using var opt = new SGDMomentumNesterov(new[] { new Parameter(torch.ones(1)) });
        opt.Defaults.Should().Be(new SGDMomentumNesterovOptions());
        opt.Defaults.Lr.Should().Be(1e-3);
        opt.Defaults.Momentum.Should().Be(0.9);
        opt.Defaults.Nesterov.Should().BeTrue();
        opt.Defaults.DecoupledWeightDecay.Should().BeFalse();
    }

    [Fact]
    public void State_is_the_momentum_buffer_only()
    {
        var p = new Parameter(torch.ones(2, 3));
        using var opt = new SGDMomentumNesterov(new[] { p }, lr: 0.1);
        p.grad = torch.ones(2, 3);
        opt.step();
        opt.State[p].Keys.Should().Equal("momentum_buffer");
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void A_group_with_lr_1e_28_is_left_unchanged(ScalarType dtype) =>
        Behaviour.TinyLearningRateLeavesGroupUnchanged<SGDMomentumNesterovOptions>(
            g => new SGDMomentumNesterov(g, weight_decay: 0.1, decoupled_weight_decay: true), lr: 0.1, dtype);

    [Fact]
    public void Steps_without_gradients_change_nothing() =>
        Behaviour.StepsWithoutGradientsChangeNothing<SGDMomentumNesterovOptions>(
            ps => new SGDMomentumNesterov(ps, lr: 0.1, weight_decay: 0.1, decoupled_weight_decay: true));

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Zero_gradients_leave_params_unchanged(ScalarType dtype) =>
        // The buffer is the (zero) gradient, so the update adds -lr * 0.
        Behaviour.ZeroGradients<SGDMomentumNesterovOptions>(ps => new SGDMomentumNesterov(ps, lr: 0.1), dtype, steps: 3,
            (opt, ps) => ps.Should().OnlyContain(p => Behaviour.Values(opt.State[p], "momentum_buffer").All(v => v == 0)));

    [Fact]
    public void Zero_gradients_with_decoupled_decay_shrink_the_params() =>
        Behaviour.ZeroGradients<SGDMomentumNesterovOptions>(
            ps => new SGDMomentumNesterov(ps, lr: 0.1, weight_decay: 0.05, decoupled_weight_decay: true), ScalarType.Float32, steps: 2,
            (opt, ps) => ps.Should().OnlyContain(p => opt.State[p].ContainsKey("momentum_buffer")),
            expectedParams: (initial, steps) =>
            {
                var p = initial.clone();
                for (var s = 0; s < steps; s++) p.mul_(1 - 0.1 * 0.05);
                return p;
            });

    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.Float64, true)]
    public void Gradients_are_never_modified(ScalarType dtype, bool decoupled) =>
        // Nesterov without weight decay is where PyTorch's foreach SGD writes into .grad; the for-loop must not.
        Behaviour.GradientsAreNeverWritten<SGDMomentumNesterovOptions>(
            ps => new SGDMomentumNesterov(ps, lr: 0.1, weight_decay: decoupled ? 0.1 : 0, decoupled_weight_decay: decoupled, maximize: true), dtype);

    [Theory]
    [InlineData(ScalarType.Float32, true, true)]
    [InlineData(ScalarType.Float64, false, true)]
    [InlineData(ScalarType.Float32, false, false)]
    public void Resumes_from_a_checkpoint_bit_exactly(ScalarType dtype, bool decoupled, bool viaFile) =>
        Behaviour.ResumesBitExactly<SGDMomentumNesterovOptions>(
            ps => new SGDMomentumNesterov(ps, lr: 0.05, weight_decay: 0.1, decoupled_weight_decay: decoupled, maximize: true), dtype, viaFile);

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void Converges_on_linear_regression(bool contiguous, bool withScheduler) =>
        LinearRegression.ShouldConverge(ps => new SGDMomentumNesterov(ps, lr: 0.05), contiguous, withScheduler);

    [Fact]
    public void CyclicLR_cycles_the_momentum()
    {
        var momenta = new List<double>();
        var result = LinearRegression.Train(ps => new SGDMomentumNesterov(ps, lr: 0.01), contiguous: true, steps: 20,
            scheduler: o => lr_scheduler.CyclicLR(o, base_lr: 1e-3, max_lr: 1e-2, step_size_up: 5),
            afterStep: o =>
            {
                var opt = (SGDMomentumNesterov)o;
                momenta.Add(opt.ParamGroups[0].Options.Momentum);
                ((IMomentum)opt.ParamGroups[0]).Momentum.Should().Be(opt.Momentum);
            });
        momenta.Distinct().Should().HaveCountGreaterThan(4);
        // TorchSharp 0.107's CyclicLR cycles over [max_momentum, 2 max - base] (it adds where PyTorch subtracts).
        momenta.Should().OnlyContain(m => m >= 0.8 - 1e-12 && m <= 1.0);
        result.LearningRates.Distinct().Should().HaveCountGreaterThan(4);
        result.FinalLoss.Should().BeLessThan(result.InitialLoss);
    }
}
