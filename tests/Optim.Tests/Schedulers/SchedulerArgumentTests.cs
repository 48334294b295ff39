using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Schedulers;
using Optim.Swa;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Tests.Schedulers;

/// <summary>Bad arguments: PyTorch's messages (or ours where PyTorch has no check), as ArgumentException naming the argument.</summary>
public class SchedulerArgumentTests
{
    public static IEnumerable<object[]> BadArguments()
    {
        object[] Case(string param, string message, Func<Optimizer, object> build) => new object[] { param, message, build };
        yield return Case("factor", "Constant multiplicative factor expected to be between 0 and 1.", o => new ConstantLR(o, factor: 1.5));
        yield return Case("start_factor", "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.", o => new LinearLR(o, start_factor: 0));
        yield return Case("end_factor", "Ending multiplicative factor expected to be between 0 and 1.", o => new LinearLR(o, end_factor: -0.1));
        yield return Case("step_size", "Expected positive integer step_size, but got 0", o => new StepLR(o, 0));
        yield return Case("gamma", "Expected finite gamma, but got NaN", o => new ExponentialLR(o, double.NaN));
        yield return Case("T_max", "Expected positive integer T_max, but got 0", o => new CosineAnnealingLR(o, 0));
        yield return Case("total_iters", "Expected positive integer total_iters, but got 0", o => new PolynomialLR(o, total_iters: 0));
        yield return Case("lr_lambda", "Expected 2 lr_lambdas, but got 1", o => new LambdaLR(o, new Func<int, double>[] { e => 1 }));
        yield return Case("lr_lambda", "Expected 2 lr_lambdas, but got 3", o => new MultiplicativeLR(o, new Func<int, double>[] { e => 1, e => 1, e => 1 }));
        yield return Case("last_epoch", "Expected last_epoch >= -1, but got -2", o => new StepLR(o, 2, last_epoch: -2));
        yield return Case("T_0", "Expected positive integer T_0, but got 0", o => new CosineAnnealingWarmRestarts(o, 0));
        yield return Case("T_mult", "Expected integer T_mult >= 1, but got 0", o => new CosineAnnealingWarmRestarts(o, 2, T_mult: 0));
        yield return Case("factor", "Factor should be < 1.0.", o => new ReduceLROnPlateau(o, factor: 1.0));
        yield return Case("mode", "mode maximum is unknown!", o => new ReduceLROnPlateau(o, mode: "maximum"));
        yield return Case("threshold_mode", "threshold mode relative is unknown!", o => new ReduceLROnPlateau(o, threshold_mode: "relative"));
        yield return Case("min_lr", "min_lr must have the same length as optimizer.param_groups. min_lr has 3 values, param_groups has 2.",
            o => new ReduceLROnPlateau(o, min_lr: new[] { 0.1, 0.1, 0.1 }));
        yield return Case("mode", "mode is invalid and scale_fn is None", o => new CyclicLR(o, 0.01, 0.1, mode: "square"));
        yield return Case("max_lr", "max_lr must have the same length as optimizer.param_groups. max_lr has 1 values, param_groups has 2.",
            o => new CyclicLR(o, 0.01, new[] { 0.1 }));
        yield return Case("total_steps", "Expected positive integer total_steps, but got 0", o => new OneCycleLR(o, 0.1, total_steps: 0));
        yield return Case("epochs", "Expected positive integer epochs, but got -1", o => new OneCycleLR(o, 0.1, epochs: -1, steps_per_epoch: 3));
        yield return Case("steps_per_epoch", "Expected positive integer steps_per_epoch, but got 0", o => new OneCycleLR(o, 0.1, epochs: 2, steps_per_epoch: 0));
        yield return Case("total_steps", "You must define either total_steps OR (epochs AND steps_per_epoch)", o => new OneCycleLR(o, 0.1, epochs: 2));
        yield return Case("pct_start", "Expected float between 0 and 1 pct_start, but got 1.5", o => new OneCycleLR(o, 0.1, total_steps: 10, pct_start: 1.5));
        yield return Case("anneal_strategy", "anneal_strategy must be one of 'cos' or 'linear', instead got cosine",
            o => new OneCycleLR(o, 0.1, total_steps: 10, anneal_strategy: "cosine"));
        yield return Case("anneal_strategy", "anneal_strategy must by one of 'cos' or 'linear', instead got exp", o => new SWALR(o, 0.05, anneal_strategy: "exp"));
        yield return Case("anneal_epochs", "anneal_epochs must be equal or greater than 0, got -1", o => new SWALR(o, 0.05, anneal_epochs: -1));
        yield return Case("swa_lr", "swa_lr must have the same length as optimizer.param_groups. swa_lr has 3 values, param_groups has 2.",
            o => new SWALR(o, new[] { 0.1, 0.2, 0.3 }));
        yield return Case("schedulers", "SequentialLR expects at least one scheduler, but got no scheduler.",
            o => new SequentialLR(o, Array.Empty<LRScheduler>(), Array.Empty<int>()));
        yield return Case("milestones",
            "Sequential Schedulers expects number of schedulers provided to be one more than the number of milestone points, but got number of schedulers 2 and the number of milestones to be equal to 2",
            o => new SequentialLR(o, new LRScheduler[] { new StepLR(o, 2), new StepLR(o, 3) }, new[] { 2, 4 }));
        yield return Case("schedulers",
            "SequentialLR does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be specified when calling `step`, but got one at index 1 in the given schedulers sequence.",
            o => new SequentialLR(o, new LRScheduler[] { new StepLR(o, 2), new ReduceLROnPlateau(o) }, new[] { 2 }));
        yield return Case("schedulers", "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.",
            o => new ChainedScheduler(Array.Empty<LRScheduler>()));
        yield return Case("schedulers",
            "ChainedScheduler expects all schedulers to belong to the same optimizer, but got scheduler StepLR at index 1 has SGD, which is different from SGD.",
            o => new ChainedScheduler(new LRScheduler[] { new StepLR(o, 2), new StepLR(SchedulerFixtures.Sgd(), 2) }));
    }

    [Theory]
    [MemberData(nameof(BadArguments))]
    public void Bad_arguments_throw_PyTorchs_message_naming_the_argument(string param, string message, Func<Optimizer, object> build)
    {
        using var optimizer = SchedulerFixtures.Sgd();
        var lrs = SchedulerFixtures.Lrs(optimizer).ToArray();
        var act = () => build(optimizer);
        var error = act.Should().Throw<ArgumentException>().Which;
        error.ParamName.Should().Be(param);
        error.Message.Should().Be($"{message} (Parameter '{param}')");
        if (param != "schedulers" && param != "milestones") SchedulerFixtures.Lrs(optimizer).Should().Equal(lrs, "a refused scheduler changes nothing");
    }

    [Fact]
    public void Cycling_momentum_needs_momentum_or_betas()
    {
        using var adagrad = new Adagrad(new[] { new Parameter(torch.zeros(2)) }, lr: 0.1);
        var act = () => new CyclicLR(adagrad, 0.01, 0.1);
        act.Should().Throw<ArgumentException>().WithMessage("optimizer must support momentum or beta1 with `cycle_momentum` option enabled*")
            .Which.ParamName.Should().Be("cycle_momentum");
        var oneCycle = () => new OneCycleLR(adagrad, 0.1, total_steps: 10);
        oneCycle.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("cycle_momentum");
        _ = new OneCycleLR(adagrad, 0.1, total_steps: 10, cycle_momentum: false);
    }

    [Fact]
    public void Composites_refuse_steps_with_an_epoch_and_plateau_needs_its_metric()
    {
        using var optimizer = SchedulerFixtures.Sgd();
        var plateau = new ReduceLROnPlateau(optimizer);
        ((Action)(() => plateau.step())).Should().Throw<InvalidOperationException>();
        ((Action)(() => plateau.step(epoch: 10))).Should().Throw<InvalidOperationException>();
        var chained = new ChainedScheduler(new LRScheduler[] { new StepLR(optimizer, 2) });
        ((Action)(() => chained.step(3))).Should().Throw<InvalidOperationException>();
        var negative = () => new CosineAnnealingWarmRestarts(optimizer, 3).step(-1.0);
        negative.Should().Throw<ArgumentException>().WithMessage("Expected non-negative epoch, but got -1.0*");
    }
}
