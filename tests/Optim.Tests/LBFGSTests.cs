using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Optim.Schedulers;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// LBFGS against tools/golden/lbfgs.py (PyTorch 2.x's lbfgs.py transcribed and run with Debian's PyTorch 1.13: the
/// newest gives the line search the step's remaining evaluation budget), its state in state dicts and checkpoints, its
/// errors, and schedulers driving its learning rate.
/// </summary>
/// <remarks>
/// Tolerances: the goldens' dot products come from 1.13's reference BLAS, ours from MKL (libtorch 2.10), which differ in
/// the last bit for some vectors; L-BFGS feeds every dot back into the next direction, so the difference grows over a
/// run. float64: 1e-9 relative and absolute after the whole run (measured worst in the test output); float32 (no line
/// search, whose branches could flip on an ulp): 2e-5. The closure-evaluation counts, <c>func_evals</c> and
/// <c>n_iter</c> are compared exactly.
/// </remarks>
public class LBFGSTests(ITestOutputHelper output)
{
    // Found by golden discovery, as a closure-driven file (see The_golden_file_is_discovered_as_closure_driven).
    private static readonly JsonElement Goldens = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Goldens",
            GoldenFile.ClosureDrivenFiles.Single(f => f.Algorithm == LBFGS.Info.Name).File)))
        .RootElement.GetProperty("lbfgs_cases");

    public static TheoryData<string> Cases() => new(Goldens.EnumerateArray().Select(c => c.GetProperty("name").GetString()!));

    private static JsonElement Case(string name) => Goldens.EnumerateArray().First(c => c.GetProperty("name").GetString() == name);

    private static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    // The golden's problem: parameters at its start and a closure computing its loss with PyTorch's ops.
    internal sealed class Problem
    {
        public required Parameter[] Parameters { get; init; }
        public required Func<Parameter[], Tensor> Loss { get; init; }
        public int Calls { get; set; }

        public Func<Tensor> Closure(torch.optim.Optimizer opt) => () =>
        {
            Calls++;
            opt.zero_grad();
            var loss = Loss(Parameters);
            loss.backward();
            return loss;
        };
    }

    internal static Problem MakeProblem(JsonElement c)
    {
        var dtype = c.GetProperty("dtype").GetString() == "float64" ? ScalarType.Float64 : ScalarType.Float32;
        var shapes = c.GetProperty("shapes").EnumerateArray().Select(s => s.EnumerateArray().Select(d => d.GetInt64()).ToArray()).ToList();
        var initial = c.GetProperty("initial").EnumerateArray().Select(Doubles).ToList();
        var ps = shapes.Select((s, i) => new Parameter(torch.tensor(initial[i], ScalarType.Float64).to(dtype).reshape(s))).ToArray();
        if (c.GetProperty("problem").GetString()!.StartsWith("rosenbrock", StringComparison.Ordinal))
        {
            return new Problem
            {
                Parameters = ps,
                Loss = p =>
                {
                    var x = torch.cat(p.Select(t => t.reshape(-1)).ToList(), 0);
                    var n = x.shape[0];
                    var head = x.narrow(0, 0, n - 1);
                    var tail = x.narrow(0, 1, n - 1);
                    return (tail - head.pow(2)).pow(2).mul(100).add(head.neg().add(1).pow(2)).sum();
                },
            };
        }
        var data = c.GetProperty("data");
        var rows = data.GetProperty("A").EnumerateArray().Select(Doubles).ToList();
        var a = torch.tensor(rows.SelectMany(r => r).ToArray(), ScalarType.Float64).reshape(rows.Count, rows[0].Length).to(dtype);
        var b = torch.tensor(Doubles(data.GetProperty("b")), ScalarType.Float64).to(dtype);
        return new Problem
        {
            Parameters = ps,
            Loss = p =>
            {
                var r = (a * p[0]).sum(1).add(p[1]).sub(b);
                return (r * r).sum().mul(0.5);
            },
        };
    }

    internal static LBFGS Create(JsonElement c, IEnumerable<Parameter> ps)
    {
        var o = c.GetProperty("options");
        double Get(string key, double fallback) => o.TryGetProperty(key, out var v) ? v.GetDouble() : fallback;
        long? GetLong(string key) => o.TryGetProperty(key, out var v) ? v.GetInt64() : null;
        return new LBFGS(ps, lr: Get("lr", 1), max_iter: GetLong("max_iter") ?? 20, max_eval: GetLong("max_eval"),
            tolerance_grad: Get("tolerance_grad", 1e-7), tolerance_change: Get("tolerance_change", 1e-9),
            history_size: GetLong("history_size") ?? 100,
            line_search_fn: o.TryGetProperty("line_search_fn", out var ls) ? ls.GetString() : null);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_PyTorch(string name)
    {
        var c = Case(name);
        var problem = MakeProblem(c);
        using var opt = Create(c, problem.Parameters);
        var fp32 = c.GetProperty("dtype").GetString() == "float32";
        var tol = fp32 ? 2e-5 : 1e-9;
        var worst = 0.0;
        var stepIndex = 0;
        foreach (var expected in c.GetProperty("steps").EnumerateArray())
        {
            problem.Calls = 0;
            var loss = opt.step(problem.Closure(opt))!;
            problem.Calls.Should().Be(expected.GetProperty("closure_calls").GetInt32(), $"closure calls of step {stepIndex}");
            opt.GlobalState["func_evals"].Should().Be(expected.GetProperty("func_evals").GetInt64(), $"func_evals after step {stepIndex}");
            opt.GlobalState["n_iter"].Should().Be(expected.GetProperty("n_iter").GetInt64(), $"n_iter after step {stepIndex}");
            worst = Math.Max(worst, Check(loss.to(ScalarType.Float64).item<double>(), expected.GetProperty("loss").GetDouble(), tol, $"loss of step {stepIndex}"));
            var paramsExpected = expected.GetProperty("params").EnumerateArray().Select(Doubles).ToList();
            for (var i = 0; i < paramsExpected.Count; i++)
            {
                var actual = problem.Parameters[i].detach().reshape(-1).to(ScalarType.Float64).data<double>().ToArray();
                for (var j = 0; j < actual.Length; j++)
                    worst = Math.Max(worst, Check(actual[j], paramsExpected[i][j], tol, $"parameter {i}[{j}] after step {stepIndex}"));
            }
            output.WriteLine($"  after step {stepIndex}: max error so far {worst:E2}");
            stepIndex++;
        }
        output.WriteLine($"{name}: max error {worst:E2}{(worst == 0 ? " (bit for bit)" : "")}");
    }

    private static double Check(double actual, double expected, double tol, string what)
    {
        var error = Math.Abs(actual - expected);
        error.Should().BeLessThanOrEqualTo(tol * (1 + Math.Abs(expected)), what);
        return error;
    }

    [Theory]
    [InlineData("rosenbrock6_wolfe_hist3_eval12", 3)]
    [InlineData("rosenbrock4_nols_lr05_hist2_iter7", 1)]
    [InlineData("lsq_nols_hist2_eval3_float32", 2)]
    public void Resumed_from_a_checkpoint_continues_bit_for_bit(string name, int interruptAfter)
    {
        var c = Case(name);
        var steps = c.GetProperty("steps").GetArrayLength();

        var straight = MakeProblem(c);
        using (var opt = Create(c, straight.Parameters))
            for (var s = 0; s < steps; s++) opt.step(straight.Closure(opt));

        var first = MakeProblem(c);
        using var stream = new MemoryStream();
        using (var opt = Create(c, first.Parameters))
        {
            for (var s = 0; s < interruptAfter; s++) opt.step(first.Closure(opt));
            opt.Save(stream);
        }
        stream.Position = 0;
        var resumed = MakeProblem(c);
        for (var i = 0; i < resumed.Parameters.Length; i++)
            using (no_grad()) resumed.Parameters[i].copy_(first.Parameters[i]);
        using (var opt = Create(c, resumed.Parameters))
        {
            opt.Load(stream);
            opt.GlobalState.Keys.Should().Contain(new[] { "func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss", "al" });
            for (var s = interruptAfter; s < steps; s++) opt.step(resumed.Closure(opt));
        }
        for (var i = 0; i < straight.Parameters.Length; i++)
            Support.Trajectories.BitwiseEqual(resumed.Parameters[i], straight.Parameters[i]).Should().BeTrue($"parameter {i} resumes bit for bit");
    }

    [Fact]
    public void The_golden_file_is_discovered_as_closure_driven()
    {
        // Golden discovery lists lbfgs.json as LBFGS's closure-driven file, keeps it out of the gradient-sequence files
        // the generic golden tests read, and refuses to read it as one.
        var file = GoldenFile.All.Should().ContainSingle(f => f.Algorithm == "LBFGS").Which;
        file.Should().Be(new GoldenFile("lbfgs.json", "LBFGS", IsReplay: true, ClosureDriven: true));
        GoldenFile.Stepwise.Should().NotContain(file);
        GoldenFile.InPyTorch2Order.Should().NotContain(file);
        var read = () => GoldenFile.Cases(new[] { file });
        read.Should().Throw<ArgumentException>().WithMessage("lbfgs.json holds closure-driven cases*");
    }

    [Fact]
    public void The_catalog_describes_it_as_closure_driven_single_group_and_without_implementations()
    {
        var info = AlgorithmCatalog.Get("LBFGS");
        info.Should().BeSameAs(LBFGS.Info);
        (info.RequiresClosure, info.SingleGroupOnly, info.HasImplementations, info.HasForeach, info.HasFusedKernel, info.TorchSharpLayout)
            .Should().Be((true, true, false, false, false, (ITorchSharpLayout?)null));
        using var opt = info.Create(new[] { new Parameter(torch.ones(2)) });
        AlgorithmCatalog.Of(opt).Should().BeSameAs(info);
    }

    [Fact]
    public void State_dict_carries_PyTorch_keys_and_a_fresh_optimizer_continues_from_it()
    {
        var c = Case("rosenbrock4_wolfe");
        var a = MakeProblem(c);
        using var opt = Create(c, a.Parameters);
        opt.step(a.Closure(opt));
        var sd = opt.StateDict();
        sd.Global.Keys.Should().Equal("func_evals", "n_iter", "al", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss");
        sd.ParamGroups.Single().Hyperparameters.Select(h => h.Key).Should().Equal("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn");

        var b = MakeProblem(c);
        for (var i = 0; i < b.Parameters.Length; i++) using (no_grad()) b.Parameters[i].copy_(a.Parameters[i]);
        using var other = Create(c, b.Parameters);
        other.LoadStateDict(sd);
        opt.step(a.Closure(opt));
        other.step(b.Closure(other));
        for (var i = 0; i < a.Parameters.Length; i++) Support.Trajectories.BitwiseEqual(a.Parameters[i], b.Parameters[i]).Should().BeTrue();
        opt.GlobalState["func_evals"].Should().Be(other.GlobalState["func_evals"]);
    }

    [Fact]
    public void Refuses_a_state_dict_whose_vectors_do_not_fit()
    {
        var c = Case("rosenbrock4_wolfe");
        var a = MakeProblem(c);
        using var opt = Create(c, a.Parameters);
        opt.step(a.Closure(opt));
        var sd = opt.StateDict();
        using var small = new Parameter(torch.zeros(3, ScalarType.Float64));
        using var other = new LBFGS(new[] { small, new Parameter(torch.zeros(2, ScalarType.Float64)) });
        var act = () => other.LoadStateDict(sd);
        act.Should().Throw<ArgumentException>().WithMessage("*'d' must be a vector of 5 elements*");
        other.GlobalState.Count.Should().Be(0, "a failed load changes nothing");
    }

    [Fact]
    public void Step_requires_a_closure()
    {
        using var p = new Parameter(torch.ones(2));
        using var opt = new LBFGS(new[] { p });
        var act = () => opt.step();
        act.Should().Throw<ArgumentNullException>().WithMessage("LBFGS requires a closure*");
    }

    [Fact]
    public void Refuses_a_second_parameter_group_with_PyTorchs_message()
    {
        using var p = new Parameter(torch.ones(2));
        using var q = new Parameter(torch.ones(2));
        var act = () => new LBFGS(new[] { new ParamGroupSpec<LBFGSOptions>(new[] { p }), new ParamGroupSpec<LBFGSOptions>(new[] { q }) });
        act.Should().Throw<ArgumentException>().WithMessage("LBFGS doesn't support per-parameter options (parameter groups)*");
        using var opt = new LBFGS(new[] { p });
        var add = () => opt.AddParamGroup(new ParamGroupSpec<LBFGSOptions>(new[] { q }));
        add.Should().Throw<ArgumentException>().WithMessage("LBFGS doesn't support per-parameter options*");
        opt.ParamGroups.Should().HaveCount(1);
    }

    [Fact]
    public void Defaults_are_PyTorchs_and_max_eval_follows_max_iter()
    {
        using var p = new Parameter(torch.ones(2));
        using var opt = new LBFGS(new[] { p });
        opt.Defaults.Lr.Should().Be(1);
        opt.Defaults.MaxIter.Should().Be(20);
        opt.Defaults.MaxEval.Should().Be(25);
        opt.Defaults.ToleranceGrad.Should().Be(1e-7);
        opt.Defaults.HistorySize.Should().Be(100);
        using var seven = new LBFGS(new[] { p }, max_iter: 7);
        seven.Defaults.MaxEval.Should().Be(8); // 7 * 5 // 4
        var bad = () => new LBFGS(new[] { p }, line_search_fn: "backtracking");
        bad.Should().Throw<ArgumentException>().WithMessage("only 'strong_wolfe' is supported*");
    }

    [Fact]
    public void A_closure_that_throws_leaves_parameters_and_state_unchanged()
    {
        var c = Case("rosenbrock4_wolfe");
        var a = MakeProblem(c);
        using var opt = Create(c, a.Parameters);
        opt.step(a.Closure(opt));
        var before = a.Parameters.Select(p => p.detach().clone()).ToList();
        var evals = opt.GlobalState["func_evals"];
        var inner = a.Closure(opt);
        var calls = 0;
        var act = () => opt.step(() => ++calls == 3 ? throw new InvalidOperationException("boom") : inner());
        act.Should().Throw<InvalidOperationException>().WithMessage("boom");
        for (var i = 0; i < before.Count; i++) Support.Trajectories.BitwiseEqual(a.Parameters[i], before[i]).Should().BeTrue();
        opt.GlobalState["func_evals"].Should().Be(evals);
    }

    [Fact]
    public void Schedulers_drive_its_learning_rate()
    {
        using var p = new Parameter(torch.ones(2));
        using var opt = new LBFGS(new[] { p }, lr: 0.8);
        var scheduler = new StepLR(opt, step_size: 1, gamma: 0.5);
        opt.ParamGroups[0].LearningRate.Should().Be(0.8);
        var closure = () => { opt.zero_grad(); var l = (p * p).sum(); l.backward(); return l; };
        opt.step(closure);
        scheduler.step();
        opt.ParamGroups[0].LearningRate.Should().Be(0.4);
        var ts = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5);
        ts.step();
        opt.ParamGroups[0].LearningRate.Should().Be(0.2);
    }

    [Fact]
    public void Returns_the_first_loss_and_stops_at_once_when_already_optimal()
    {
        using var p = new Parameter(torch.zeros(3, ScalarType.Float64));
        using var opt = new LBFGS(new[] { p });
        var calls = 0;
        var loss = opt.step(() => { calls++; opt.zero_grad(); var l = (p * p).sum().add(2); l.backward(); return l; })!;
        loss.item<double>().Should().Be(2);
        calls.Should().Be(1);
        opt.GlobalState.Keys.Should().Equal("func_evals", "n_iter");
    }
}
