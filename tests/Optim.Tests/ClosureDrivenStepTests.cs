using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// The base's support for algorithms whose step re-evaluates the model (what LBFGS needs), through a small test-only
/// algorithm: gradient descent with a backtracking line search, keeping optimizer-wide state (a counter, a double, the
/// last direction as a list of tensors). It must be able to call the closure several times per step, carry its state
/// through state dicts and checkpoints, and leave everything as it was when anything throws mid-step.
/// </summary>
public class ClosureDrivenStepTests
{
    /// <summary>Options: the learning rate, the backtracking factor and how many halvings to try.</summary>
    private sealed record BacktrackingOptions : OptimizerOptions
    {
        public static OptionSchema<BacktrackingOptions> Schema { get; } = new OptionSchema<BacktrackingOptions>()
            .Lr()
            .Double("shrink", o => o.Shrink, (o, v) => o with { Shrink = v },
                new Rule<double>(v => v > 0 && v < 1, v => $"Invalid shrink value: {v}", "in (0, 1)"))
            .Int("max_tries", o => o.MaxTries, (o, v) => o with { MaxTries = v }, Rules.AtLeast(1, "Invalid max_tries value"))
            .Implementation();

        public BacktrackingOptions() => Lr = 1.0;

        public double Shrink { get; init; } = 0.5;

        public int MaxTries { get; init; } = 8;

        public override OptionSchema GetSchema() => Schema;
    }

    private sealed class BacktrackingDescent(IEnumerable<Parameter> ps, double lr = 1.0, int max_tries = 8)
        : Optimizer<BacktrackingOptions>(new[] { new ParamGroupSpec<BacktrackingOptions>(ps) }, new BacktrackingOptions { Lr = lr, MaxTries = max_tries })
    {
        private static readonly StateSchema NoState = new();

        protected override StateSchema StateSchema => NoState;

        protected override bool RequiresClosure => true;

        protected override void InitializeState(BacktrackingOptions options, Parameter parameter, ParameterState state) { }

        protected override void SingleTensorStep(BacktrackingOptions options, StepBatch batch) => throw new NotSupportedException();

        protected override void MultiTensorStep(BacktrackingOptions options, StepBatch bucket) => throw new NotSupportedException();

        protected override void ValidateGlobalState(IReadOnlyDictionary<string, object> global)
        {
            foreach (var (key, value) in global)
            {
                var fits = key switch
                {
                    "func_evals" => value is long,
                    "last_t" => value is double,
                    "direction" => value is IReadOnlyList<Tensor> list && list.Count == ParamGroups[0].Parameters.Count,
                    _ => false,
                };
                if (!fits) throw new ArgumentException($"optimizer-wide state '{key}' does not fit", nameof(global));
            }
        }

        protected override Tensor ClosureStep(Func<Tensor> evaluate)
        {
            var o = ParamGroups[0].Options;
            var ps = ParamGroups[0].Parameters;
            var first = evaluate();
            var start = first.item<double>();
            var origin = ps.Select(p => p.detach().clone()).ToList();
            var direction = ps.Select(p => p.grad!.neg()).ToList();
            var evals = 1L;
            var t = o.Lr;
            for (var k = 0; k < o.MaxTries; k++)
            {
                for (var i = 0; i < ps.Count; i++) ps[i].copy_(origin[i].add(direction[i], t));
                evals++;
                if (evaluate().item<double>() < start) break;
                t *= o.Shrink;
            }
            GlobalState.Set("func_evals", GlobalState.Get("func_evals", 0L) + evals);
            GlobalState.Set("last_t", t);
            GlobalState.Set("direction", direction);
            return first;
        }
    }

    private static (BacktrackingDescent Opt, Parameter P) Make()
    {
        var p = new Parameter(torch.tensor(new[] { 0.0, 10.0, -4.0 }));
        return (new BacktrackingDescent(new[] { p }, lr: 4.0), p);
    }

    // f(x) = sum((x - 3)^2), counting its evaluations; throws on the given evaluation (0: never).
    private static Func<Tensor> Closure(Optimizer opt, Parameter p, List<int> calls, int throwOn = 0) => () =>
    {
        calls.Add(calls.Count + 1);
        if (calls.Count == throwOn) throw new InvalidOperationException("the closure failed");
        opt.zero_grad();
        var loss = (p - 3).pow(2).sum();
        loss.backward();
        return loss;
    };

    [Fact]
    public void A_step_may_call_the_closure_several_times_and_keeps_optimizer_wide_state()
    {
        var (opt, p) = Make();
        using var _ = opt;
        var calls = new List<int>();
        var first = opt.step(Closure(opt, p, calls))!;
        first.item<double>().Should().Be(9 + 49 + 49, "step returns the first evaluation's loss");
        calls.Count.Should().BeGreaterThan(2, "a line search evaluates the model more than once");
        ((long)opt.GlobalState["func_evals"]).Should().Be(calls.Count);
        opt.GlobalState["direction"].Should().BeAssignableTo<IReadOnlyList<Tensor>>();
        (p - 3).pow(2).sum().item<double>().Should().BeLessThan(107);
        opt.StateDict().Global.Keys.Should().Equal("func_evals", "last_t", "direction");
    }

    [Fact]
    public void Without_a_closure_the_step_says_it_needs_one()
    {
        var (opt, _) = Make();
        using var __ = opt;
        var act = () => opt.step();
        act.Should().Throw<ArgumentNullException>().WithParameterName("closure").WithMessage("*requires a closure*");
    }

    [Fact]
    public void A_closure_that_throws_mid_step_leaves_parameters_and_all_state_as_they_were()
    {
        var (opt, p) = Make();
        using var _ = opt;
        opt.step(Closure(opt, p, new List<int>()));
        var before = StateSnapshot.Of(opt, new[] { p });
        var globalBefore = opt.GlobalState.Select(e => $"{e.Key}={Describe(e.Value)}").ToList();
        var act = () => opt.step(Closure(opt, p, new List<int>(), throwOn: 3));
        act.Should().Throw<InvalidOperationException>().WithMessage("the closure failed");
        StateSnapshot.Of(opt, new[] { p }).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
        opt.GlobalState.Select(e => $"{e.Key}={Describe(e.Value)}").Should().Equal(globalBefore);
    }

    [Fact]
    public void Optimizer_wide_state_survives_a_checkpoint_and_the_resumed_run_continues_bit_for_bit()
    {
        var (straight, ps) = Make();
        using var __ = straight;
        for (var s = 0; s < 4; s++) straight.step(Closure(straight, ps, new List<int>()));

        var (first, pf) = Make();
        using var ___ = first;
        for (var s = 0; s < 2; s++) first.step(Closure(first, pf, new List<int>()));
        using var memory = new MemoryStream();
        first.Save(memory);
        var resumedParam = new Parameter(pf.detach().clone());
        using var resumed = new BacktrackingDescent(new[] { resumedParam }, lr: 4.0);
        memory.Position = 0;
        resumed.Load(memory);
        ((long)resumed.GlobalState["func_evals"]).Should().Be((long)first.GlobalState["func_evals"]);
        for (var s = 0; s < 2; s++) resumed.step(Closure(resumed, resumedParam, new List<int>()));

        resumedParam.detach().data<double>().ToArray().Should().Equal(ps.detach().data<double>().ToArray());
        ((long)resumed.GlobalState["func_evals"]).Should().Be((long)straight.GlobalState["func_evals"]);
        ((double)resumed.GlobalState["last_t"]).Should().Be((double)straight.GlobalState["last_t"]);
    }

    [Fact]
    public void Optimizer_wide_state_an_algorithm_does_not_keep_is_refused_on_load()
    {
        var (opt, p) = Make();
        using var _ = opt;
        opt.step(Closure(opt, p, new List<int>()));
        using var sgd = new SGD(new[] { new Parameter(torch.zeros(3)) }, 0.1);
        var sd = sgd.StateDict() with { Global = new Dictionary<string, object> { ["func_evals"] = 3L } };
        var act = () => sgd.LoadStateDict(sd);
        act.Should().Throw<ArgumentException>().WithMessage("*optimizer-wide state 'func_evals'*SGD*");

        var bad = opt.StateDict() with { Global = new Dictionary<string, object> { ["func_evals"] = "three" } };
        var before = opt.GlobalState.Select(e => $"{e.Key}={Describe(e.Value)}").ToList();
        ((Action)(() => opt.LoadStateDict(bad))).Should().Throw<ArgumentException>();
        opt.GlobalState.Select(e => $"{e.Key}={Describe(e.Value)}").Should().Equal(before);
    }

    private static string Describe(object value) => value switch
    {
        Tensor t => Convert.ToBase64String(t.bytes),
        IReadOnlyList<Tensor> list => string.Join(";", list.Select(t => Convert.ToBase64String(t.bytes))),
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
