using Optim.Schedulers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch.optim;

namespace Optim.Tests.Schedulers;

/// <summary>Momentum and beta1 cycling through Optim's and TorchSharp's group interfaces, in PyTorch's direction.</summary>
public class SchedulerMomentumTests
{
    [Fact]
    public void CyclicLR_moves_SGD_momentum_down_while_the_learning_rate_rises()
    {
        using var optimizer = SchedulerFixtures.Sgd();
        var scheduler = new CyclicLR(optimizer, base_lr: 0.01, max_lr: 0.1, step_size_up: 4);
        var group = (IMomentum)optimizer.ParamGroups[0];
        group.Momentum.Should().Be(0.9, "at the bottom of the cycle momentum is max_momentum");
        optimizer.ParamGroups[0].Options.Momentum.Should().Be(0.9);
        for (var i = 0; i < 4; i++)
        {
            var (lr, momentum) = (optimizer.ParamGroups[0].LearningRate, group.Momentum);
            scheduler.step();
            optimizer.ParamGroups[0].LearningRate.Should().BeGreaterThan(lr);
            group.Momentum.Should().BeLessThan(momentum);
        }

        group.Momentum.Should().BeApproximately(0.8, 1e-15, "at the peak momentum is base_momentum");
        optimizer.ParamGroups[0].LearningRate.Should().BeApproximately(0.1, 1e-15);
    }

    [Fact]
    public void OneCycleLR_cycles_Adams_beta1_and_keeps_beta2()
    {
        using var optimizer = SchedulerFixtures.Adam();
        var scheduler = new OneCycleLR(optimizer, max_lr: 0.01, total_steps: 20);
        scheduler.use_beta1.Should().BeTrue();
        optimizer.ParamGroups[1].Options.Beta1.Should().Be(0.95);
        for (var i = 0; i < 5; i++) scheduler.step();
        optimizer.ParamGroups[1].Options.Beta1.Should().BeApproximately(0.85, 1e-12, "beta1 is base_momentum at the peak (step 5 of 20 at pct_start 0.3 is 5 = 0.3 * 20 - 1)");
        optimizer.ParamGroups[1].Options.Beta2.Should().Be(0.999);
    }

    [Fact]
    public void Schedulers_drive_TorchSharps_own_optimizers_like_Optims()
    {
        foreach (var name in new[] { "OneCycleLR_cos", "CyclicLR_triangular", "SequentialLR_warmup_cosine", "CosineAnnealingWarmRestarts", "SWALR_cos" })
        {
            var golden = SchedulerFixtures.Cases[name];
            var p1 = new Parameter(torch.zeros(2));
            var p2 = new Parameter(torch.zeros(3));
            using var optimizer = torch.optim.SGD(new[]
            {
                new TorchSharp.Modules.SGD.ParamGroup(new[] { p1 }, lr: 0.1, momentum: 0.9),
                new TorchSharp.Modules.SGD.ParamGroup(new[] { p2 }, lr: 0.02, momentum: 0.9),
            }, 0.1, momentum: 0.9);
            var scheduler = SchedulerFixtures.Build(name, optimizer);
            for (var i = 0; i < golden.Lr.Length; i++)
            {
                if (i > 0) scheduler.step();
                SchedulerGoldenTests.Close(SchedulerFixtures.Lrs(optimizer), golden.Lr[i], $"{name} on TorchSharp's SGD, record {i}");
                if (golden.Track is not null)
                    SchedulerGoldenTests.Close(SchedulerFixtures.Momenta(optimizer, "momentum"), golden.Momentum![i], $"{name} momentum on TorchSharp's SGD");
            }
        }
    }

    [Fact]
    public void CyclicLR_cycles_beta1_of_TorchSharps_Adam()
    {
        var golden = SchedulerFixtures.Cases["CyclicLR_beta1"];
        using var optimizer = torch.optim.Adam(new[]
        {
            new TorchSharp.Modules.Adam.ParamGroup(new[] { new Parameter(torch.zeros(2)) }, lr: 0.1),
            new TorchSharp.Modules.Adam.ParamGroup(new[] { new Parameter(torch.zeros(3)) }, lr: 0.02),
        });
        var scheduler = SchedulerFixtures.Build(golden.Name, optimizer);
        for (var i = 0; i < golden.Lr.Length; i++)
        {
            if (i > 0) scheduler.step();
            SchedulerGoldenTests.Close(SchedulerFixtures.Lrs(optimizer), golden.Lr[i], "lr");
            SchedulerGoldenTests.Close(SchedulerFixtures.Momenta(optimizer, "beta1"), golden.Momentum![i], "beta1");
        }
    }
}
