using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Schedulers;
using Optim.Swa;

namespace Optim.Tests.Schedulers;

/// <summary>State dicts: round trips, exact resumes at several points, and loads that fail without changing anything.</summary>
public class SchedulerStateTests
{
    public static IEnumerable<object[]> Cases() => SchedulerFixtures.CaseNames();

    /// <summary>
    /// Runs the case k steps, saves optimizer and scheduler, builds a fresh optimizer and scheduler, loads both, and
    /// checks that both continue with the same bits at every later step. k covers mid-warm-up (SequentialLR's
    /// LinearLR phase), the peak of OneCycleLR, and points after CosineAnnealingWarmRestarts' restarts.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void A_resumed_schedule_continues_exactly(string name)
    {
        var golden = SchedulerFixtures.Cases[name];
        foreach (var k in new[] { 1, 3, 10, 17 }.Where(k => k < golden.Lr.Length - 1))
        {
            var (reference, referenceScheduler) = SchedulerFixtures.Start(golden);
            using var _ = reference;
            for (var i = 0; i < k; i++) SchedulerFixtures.Step(referenceScheduler, golden, i);

            var schedulerState = referenceScheduler.StateDict();
            var optimizerState = reference.StateDict();
            var (resumed, resumedScheduler) = SchedulerFixtures.Start(golden);   // fresh, at step 0
            using var __ = resumed;
            resumed.LoadStateDict(optimizerState);
            resumedScheduler.LoadStateDict(schedulerState);
            resumedScheduler.StateDict().ToString().Should().Be(schedulerState.ToString(), $"{name} after loading at step {k}");

            for (var i = k; i < golden.Lr.Length - 1; i++)
            {
                SchedulerFixtures.Step(referenceScheduler, golden, i);
                SchedulerFixtures.Step(resumedScheduler, golden, i);
                Bits(SchedulerFixtures.Lrs(resumed)).Should().Equal(Bits(SchedulerFixtures.Lrs(reference)), $"{name} resumed at {k}, step {i + 1}");
                Bits(resumedScheduler.get_last_lr()).Should().Equal(Bits(referenceScheduler.get_last_lr()));
                if (golden.Track is { } track)
                    Bits(SchedulerFixtures.Momenta(resumed, track)).Should().Equal(Bits(SchedulerFixtures.Momenta(reference, track)));
            }

            resumedScheduler.StateDict().ToString().Should().Be(referenceScheduler.StateDict().ToString());
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_failed_load_changes_nothing(string name)
    {
        var golden = SchedulerFixtures.Cases[name];
        var (optimizer, scheduler) = SchedulerFixtures.Start(golden);
        using var _ = optimizer;
        for (var i = 0; i < 5; i++) SchedulerFixtures.Step(scheduler, golden, i);
        var before = scheduler.StateDict();
        var lrs = SchedulerFixtures.Lrs(optimizer).ToArray();

        // Every entry, one at a time: wrong type, then (for numbers) out of range; plus an unknown entry and a missing one.
        var broken = new List<SchedulerStateDict> { before.With("surprise", 1L) };
        foreach (var (key, value) in before)
        {
            broken.Add(before.Without(key));
            broken.Add(before.With(key, value is string ? 3.5 : "wrong"));
            if (value is IReadOnlyList<double> list) broken.Add(before.With(key, list.Append(0.1).ToArray()));
            if (value is IReadOnlyList<SchedulerStateDict> children)
                broken.Add(before.With(key, children.Select((c, i) => i == children.Count - 1 ? c.With("last_epoch", "x") : c).ToArray()));
        }

        foreach (var state in broken)
        {
            var load = () => scheduler.LoadStateDict(state);
            load.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("state_dict");
            scheduler.StateDict().ToString().Should().Be(before.ToString(), $"{name}: a failed load of {state} changed the scheduler");
        }

        SchedulerFixtures.Lrs(optimizer).Should().Equal(lrs);
    }

    [Fact]
    public void A_state_dict_of_another_scheduler_is_refused()
    {
        using var optimizer = SchedulerFixtures.Sgd();
        var step = new StepLR(optimizer, 3);
        var exponential = new ExponentialLR(optimizer, 0.9);
        var load = () => exponential.LoadStateDict(step.StateDict());
        load.Should().Throw<ArgumentException>().WithMessage("A StepLR state dict cannot be loaded into a ExponentialLR.*");
    }

    [Fact]
    public void State_dicts_hold_PyTorchs_keys_and_typed_values()
    {
        using var optimizer = SchedulerFixtures.Sgd();
        var scheduler = new StepLR(optimizer, 3, gamma: 0.5);
        scheduler.step();
        var state = scheduler.StateDict();
        state.Scheduler.Should().Be("StepLR");
        state.Keys.Should().Equal("step_size", "gamma", "base_lrs", "last_epoch", "_step_count", "_last_lr");
        state.GetInt64("step_size").Should().Be(3);
        state.GetDouble("gamma").Should().Be(0.5);
        state.GetDoubles("base_lrs").Should().Equal(0.1, 0.02);
        state.GetInt64("last_epoch").Should().Be(1);
        state.GetInt64("_step_count").Should().Be(2);
        state.ToString().Should().Be("StepLR{step_size=3, gamma=0.5, base_lrs=[0.1, 0.02], last_epoch=1, _step_count=2, _last_lr=[0.1, 0.02]}");

        var wrong = () => state.GetString("gamma");
        wrong.Should().Throw<ArgumentException>().WithMessage("The StepLR state dict's 'gamma' should be a string, but is Double 0.5.*");
        var unsupported = () => new SchedulerStateDict("X", new[] { new KeyValuePair<string, object?>("a", new object()) });
        unsupported.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Lambdas_and_custom_scale_functions_are_not_in_the_state_dict()
    {
        using var optimizer = SchedulerFixtures.Sgd();
        new LambdaLR(optimizer, e => 0.5).StateDict().Keys.Should().NotContain("lr_lambdas");
        var cyclic = new CyclicLR(optimizer, 0.01, 0.1, scale_fn: x => 0.5, cycle_momentum: false);
        cyclic.StateDict()["_scale_fn_custom"].Should().BeNull();
    }

    [Fact]
    public void A_composite_loads_all_its_children_or_none()
    {
        using var optimizer = SchedulerFixtures.Sgd();
        var sequential = new SequentialLR(optimizer, new LRScheduler[] { new LinearLR(optimizer, 0.1, total_iters: 4), new ExponentialLR(optimizer, 0.9) }, new[] { 4 });
        for (var i = 0; i < 6; i++) sequential.step();
        var state = sequential.StateDict();
        var children = state.GetStateDicts("_schedulers");
        children[0].GetInt64("last_epoch").Should().Be(3);
        children[1].GetInt64("last_epoch").Should().Be(2);

        using var other = SchedulerFixtures.Sgd();
        var fresh = new SequentialLR(other, new LRScheduler[] { new LinearLR(other, 0.1, total_iters: 4), new ExponentialLR(other, 0.9) }, new[] { 4 });
        var before = fresh.StateDict().ToString();
        var bad = state.With("_schedulers", new[] { children[0], children[1].With("gamma", double.NaN) });
        var load = () => fresh.LoadStateDict(bad);
        load.Should().Throw<ArgumentException>().WithMessage("*scheduler 1*gamma*");
        fresh.StateDict().ToString().Should().Be(before, "the first child must not have been loaded either");
        fresh.LoadStateDict(state);
        fresh.StateDict().ToString().Should().Be(state.ToString());
    }

    [Fact]
    public void SWALR_resumes_through_its_step_count()
    {
        using var optimizer = SchedulerFixtures.Sgd();
        var swa = new SWALR(optimizer, swa_lr: 0.05, anneal_epochs: 6);
        for (var i = 0; i < 3; i++) swa.step();
        swa.StateDict().GetInt64("_step_count").Should().Be(4);
    }

    [Fact]
    public void OneCycleLR_resumes_through_last_epoch_on_a_fresh_optimizer_with_momentum_cycling()
    {
        // TorchSharp 0.107's OneCycleLR(last_epoch: n) throws KeyNotFoundException when it cycles momentum.
        using var reference = SchedulerFixtures.Adam();
        var uninterrupted = new OneCycleLR(reference, max_lr: 0.01, total_steps: 30);
        for (var i = 0; i < 12; i++) uninterrupted.step();

        using var fresh = SchedulerFixtures.Adam();
        fresh.LoadStateDict(reference.StateDict());
        var resumed = new OneCycleLR(fresh, max_lr: 0.01, total_steps: 30, last_epoch: 11);
        for (var i = 12; i < 29; i++)
        {
            uninterrupted.step();
            resumed.step();
            Bits(SchedulerFixtures.Lrs(fresh)).Should().Equal(Bits(SchedulerFixtures.Lrs(reference)));
            Bits(SchedulerFixtures.Momenta(fresh, "beta1")).Should().Equal(Bits(SchedulerFixtures.Momenta(reference, "beta1")));
        }

        var past = () => resumed.step();
        resumed.step();   // step 29 = total_steps - 1... and one more is total_steps, which PyTorch still allows
        past.Should().Throw<InvalidOperationException>().WithMessage("Tried to step 31 times. The specified number of total steps is 30");
        resumed.last_epoch.Should().Be(30, "the refused step changed nothing");
    }

    private static long[] Bits(IEnumerable<double> values) => values.Select(BitConverter.DoubleToInt64Bits).ToArray();
}
