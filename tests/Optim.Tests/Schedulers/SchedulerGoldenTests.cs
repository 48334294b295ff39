using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Schedulers;

namespace Optim.Tests.Schedulers;

/// <summary>Every scheduler against PyTorch's schedules (Goldens/schedulers.json), to 1e-12 relative.</summary>
public class SchedulerGoldenTests
{
    private const double Relative = 1e-12;

    public static IEnumerable<object[]> Cases() => SchedulerFixtures.CaseNames();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Schedule_matches_PyTorch(string name)
    {
        var golden = SchedulerFixtures.Cases[name];
        var (optimizer, scheduler) = SchedulerFixtures.Start(golden);
        using var _ = optimizer;
        Check(golden, optimizer, scheduler, 0);
        for (var i = 0; i < golden.Lr.Length - 1; i++)
        {
            SchedulerFixtures.Step(scheduler, golden, i);
            Check(golden, optimizer, scheduler, i + 1);
        }
    }

    [Fact]
    public void Goldens_cover_every_scheduler_and_record_their_source()
    {
        SchedulerFixtures.TorchVersion.Should().StartWith("1.13");
        var types = SchedulerFixtures.Cases.Keys.Select(k => SchedulerFixtures.Build(k, SchedulerFixtures.MakeOptimizer(SchedulerFixtures.Cases[k])).GetType().Name).ToHashSet();
        types.Should().BeEquivalentTo(new[]
        {
            "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR",
            "CosineAnnealingLR", "ChainedScheduler", "SequentialLR", "ReduceLROnPlateau", "CyclicLR", "OneCycleLR",
            "CosineAnnealingWarmRestarts", "SWALR",
        });
        SchedulerFixtures.Cases.Values.Should().OnlyContain(c => c.Source == "torch" || c.Source == "transcribed");
        SchedulerFixtures.Cases.Values.Should().OnlyContain(c => c.Lr.Length >= 21);
    }

    internal static void Check(SchedulerGolden golden, Optimizer optimizer, LRScheduler scheduler, int record)
    {
        var lrs = SchedulerFixtures.Lrs(optimizer);
        Close(lrs, golden.Lr[record], $"{golden.Name} lr at record {record}");
        if (scheduler is not ReduceLROnPlateau) Close(scheduler.get_last_lr(), golden.Lr[record], $"{golden.Name} get_last_lr at record {record}");
        if (golden.Track is not null)
            Close(SchedulerFixtures.Momenta(optimizer, golden.Track), golden.Momentum![record], $"{golden.Name} {golden.Track} at record {record}");
    }

    internal static void Close(IReadOnlyList<double> actual, IReadOnlyList<double> expected, string what)
    {
        actual.Count.Should().Be(expected.Count, what);
        for (var i = 0; i < expected.Count; i++)
        {
            var tolerance = Relative * Math.Abs(expected[i]);
            Math.Abs(actual[i] - expected[i]).Should().BeLessThanOrEqualTo(tolerance, $"{what}, group {i}: {actual[i]:R} vs PyTorch's {expected[i]:R}");
        }
    }
}
