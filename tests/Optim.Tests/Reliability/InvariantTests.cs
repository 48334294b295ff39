using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Reliability;

/// <summary>
/// The state invariant, one repro at a time: whatever happens to a parameter or its state through the public API, a
/// step or a load either works or throws before anything changes; no kernel ever sees state that does not fit.
/// </summary>
public class InvariantTests
{
    public static TheoryData<string, Implementation> AlgorithmsAndPaths()
    {
        var data = new TheoryData<string, Implementation>();
        foreach (var info in AlgorithmCatalog.All)
            foreach (var path in Tamper.Paths(info)) data.Add(info.Name, path);
        return data;
    }

    [Theory]
    [MemberData(nameof(AlgorithmsAndPaths))]
    public void A_parameter_resized_after_its_state_exists_is_refused_before_anything_changes(string algorithm, Implementation path)
    {
        foreach (var size in new[] { 200_000, 2 })
        {
            var (opt, ps) = Tamper.Trained(AlgorithmCatalog.Get(algorithm), path, seed: 3);
            using var _ = opt;
            var hasState = opt.State.TryGetValue(ps[1], out var state) && state.Count > 0;
            var hasGlobalState = opt.StateDict().Global.Count > 0;
            using (no_grad()) ps[1].set_(torch.zeros(size));
            foreach (var p in ps) p.grad = Algorithms.Gradient(opt, torch.ones_like(p));
            var before = Tamper.Snapshot(opt, ps);
            var act = () => Tamper.Step(opt, ps);
            if (hasGlobalState)
            {
                // LBFGS: its optimizer-wide vectors span every parameter's elements; they no longer fit the total.
                act.Should().Throw<InvalidOperationException>().WithMessage("*must be a vector of * elements, the parameters' count*");
                Tamper.Snapshot(opt, ps).Should().Equal(before);
                continue;
            }
            if (!hasState)
            {
                act.Should().NotThrow("without state (plain SGD) nothing depends on the old size");
                continue;
            }
            act.Should().Throw<InvalidOperationException>().WithMessage("*parameter '0.1'*");
            Tamper.Snapshot(opt, ps).Should().Equal(before);
        }
    }

    [Theory]
    [MemberData(nameof(AlgorithmsAndPaths))]
    public void A_state_tensor_of_the_wrong_size_set_through_the_public_api_is_refused_at_the_next_step(string algorithm, Implementation path)
    {
        var (opt, ps) = Tamper.Trained(AlgorithmCatalog.Get(algorithm), path, seed: 4);
        using var _ = opt;
        if (opt is LBFGS lbfgs)
        {
            // Optimizer-wide state (see Tamper.Step): its public API takes a vector of the wrong size; the step refuses it.
            lbfgs.GlobalState.Set("d", torch.zeros(200_000, dtype: ps[0].dtype));
            foreach (var p in ps) p.grad = Algorithms.Gradient(opt, torch.ones_like(p));
            var beforeGlobal = Tamper.Snapshot(opt, ps);
            var refused = () => Tamper.Step(opt, ps);
            refused.Should().Throw<InvalidOperationException>().WithMessage("LBFGS state 'd' must be a vector of 20 elements*");
            Tamper.Snapshot(opt, ps).Should().Equal(beforeGlobal);
            return;
        }
        var state = opt.State[ps[0]];
        if (state.Count == 0) return; // plain SGD keeps no state
        var key = state.Keys.First(k => k != "step");
        state.Set(key, torch.zeros(200_000));
        foreach (var p in ps) p.grad = Algorithms.Gradient(opt, torch.ones_like(p));
        var before = Tamper.Snapshot(opt, ps);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage($"*'{key}' of parameter '0.0'*shape*");
        Tamper.Snapshot(opt, ps).Should().Equal(before);
    }

    private static (Adam Opt, List<Parameter> Params) TrainedAdam(Implementation path = Implementation.Auto)
    {
        var (opt, ps) = Tamper.Trained(Adam.Info, path, seed: 5);
        return ((Adam)opt, ps);
    }

    public static TheoryData<string> BadLoads() => new()
    {
        "step of shape [3]", "step of shape [2, 2]", "bool step", "meta step", "missing exp_avg_sq", "missing step",
        "empty entry", "sparse exp_avg", "meta exp_avg", "unknown key", "disposed exp_avg",
    };

    [Theory]
    [MemberData(nameof(BadLoads))]
    public void A_state_dict_that_would_break_the_next_step_is_refused_by_the_load(string bad)
    {
        var (source, _) = TrainedAdam();
        using var __ = source;
        var (target, ps) = TrainedAdam();
        using var _ = target;
        var sd = source.StateDict().DeepCopy();
        var state = sd.State.ToDictionary(e => e.Key, e => e.Value.ToDictionary(kv => kv.Key, kv => kv.Value));
        var entry = state[1];
        switch (bad)
        {
            case "step of shape [3]": entry["step"] = torch.ones(3); break;
            case "step of shape [2, 2]": entry["step"] = torch.ones(2, 2); break;
            case "bool step": entry["step"] = torch.tensor(true); break;
            case "meta step": entry["step"] = torch.zeros(Array.Empty<long>(), device: torch.META); break;
            case "missing exp_avg_sq": entry.Remove("exp_avg_sq"); break;
            case "missing step": entry.Remove("step"); break;
            case "empty entry": entry.Clear(); break;
            case "sparse exp_avg": entry["exp_avg"] = torch.zeros(3, 5).to_sparse(); break;
            case "meta exp_avg": entry["exp_avg"] = torch.zeros(new long[] { 3, 5 }, device: torch.META); break;
            case "unknown key": entry["momentum_buffer"] = torch.zeros(3, 5); break;
            default: entry["exp_avg"].Dispose(); break;
        }
        var tampered = sd with { State = state.ToDictionary(e => e.Key, e => (IReadOnlyDictionary<string, Tensor>)e.Value) };
        var before = Tamper.Snapshot(target, ps);
        var act = () => target.LoadStateDict(tampered);
        if (bad == "disposed exp_avg") act.Should().Throw<ObjectDisposedException>();
        else act.Should().Throw<ArgumentException>().WithMessage("*id 1*");
        Tamper.Snapshot(target, ps).Should().Equal(before);
    }

    [Fact]
    public void A_non_contiguous_state_tensor_is_loaded_as_a_contiguous_copy_and_steps_as_the_original()
    {
        var (source, _) = TrainedAdam();
        using var __ = source;
        var sd = source.StateDict().DeepCopy();
        var state = sd.State.ToDictionary(e => e.Key, e => e.Value.ToDictionary(kv => kv.Key, kv => kv.Value));
        var original = state[1]["exp_avg"];
        state[1]["exp_avg"] = original.t().contiguous().t(); // same values, transposed strides
        state[1]["exp_avg"].is_contiguous().Should().BeFalse();
        var (a, psA) = TrainedAdam();
        var (b, psB) = TrainedAdam();
        using var _a = a;
        using var _b = b;
        a.LoadStateDict(sd);
        b.LoadStateDict(sd with { State = state.ToDictionary(e => e.Key, e => (IReadOnlyDictionary<string, Tensor>)e.Value) });
        b.State[psB[1]]["exp_avg"].is_contiguous().Should().BeTrue();
        for (var step = 0; step < 3; step++)
        {
            foreach (var (p, q) in psA.Zip(psB))
            {
                p.grad = torch.full_like(p, 0.5);
                q.grad = torch.full_like(q, 0.5);
            }
            a.step();
            b.step();
        }
        Tamper.Snapshot(b, psB).Should().Equal(Tamper.Snapshot(a, psA));
    }

    [Fact]
    public void A_state_dict_taken_before_dispose_is_refused_rather_than_written_or_loaded_empty()
    {
        var ps = new[] { new Parameter(torch.ones(3)) };
        var opt = new SGD(ps, 0.1, momentum: 0.9);
        ps[0].grad = torch.ones(3);
        opt.step();
        var sd = opt.StateDict();
        opt.Dispose();
        using var target = new SGD(new[] { new Parameter(torch.ones(3)) }, 0.1, momentum: 0.9);
        ((Action)(() => sd.DeepCopy())).Should().Throw<ObjectDisposedException>().WithMessage("*momentum_buffer*");
        ((Action)(() => target.LoadStateDict(sd))).Should().Throw<ObjectDisposedException>();
        using var memory = new MemoryStream();
        ((Action)(() => Optim.Formats.OptimizerCheckpoint.Write(memory, sd))).Should().Throw<ObjectDisposedException>();
        memory.Length.Should().Be(0, "nothing is written");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_fused_first_step_skipped_by_found_inf_leaves_no_uninitialized_buffer(bool nesterov)
    {
        var ps = new[] { new Parameter(torch.randn(4096)) };
        var reference = new[] { new Parameter(ps[0].detach().clone()) };
        using var opt = new SGD(ps, 0.1, momentum: 0.9, nesterov: nesterov, implementation: Implementation.Fused);
        using var fresh = new SGD(reference, 0.1, momentum: 0.9, nesterov: nesterov, implementation: Implementation.Fused);
        ps[0].grad = torch.randn(4096);
        opt.FoundInf = torch.ones(1);
        opt.step();
        opt.FoundInf = null;
        opt.State.TryGetValue(ps[0], out var skipped).Should().BeTrue();
        skipped!.ContainsKey("momentum_buffer").Should().BeFalse("a skipped first step takes its fresh buffer back");
        Same(ps[0], reference[0]).Should().BeTrue("a skipped step changes no parameter");

        var grad = torch.randn(4096);
        ps[0].grad = grad;
        reference[0].grad = grad.clone();
        opt.step();
        fresh.step();
        Same(ps[0], reference[0]).Should().BeTrue("the next real step is a first step, as if the skipped one never ran");
        ps[0].isnan().any().item<bool>().Should().BeFalse();
    }

    private static bool Same(Tensor a, Tensor b) => a.bytes.SequenceEqual(b.bytes);

    [Fact]
    public void Fused_decoupled_decay_changes_no_parameter_when_found_inf_skips_the_step()
    {
        var ps = new[] { new Parameter(torch.randn(64)) };
        var before = ps[0].detach().clone();
        using var opt = new SGDMomentumNesterov(ps, 0.1, weight_decay: 0.5, decoupled_weight_decay: true, implementation: Implementation.Fused);
        ps[0].grad = torch.randn(64);
        opt.FoundInf = torch.ones(1);
        opt.step();
        Same(ps[0], before).Should().BeTrue();
        opt.FoundInf = torch.zeros(1);
        opt.step();
        Same(ps[0], before).Should().BeFalse("a step that found no inf decays and updates");
    }

    [Fact]
    public void A_parameter_that_is_a_view_of_another_is_refused_at_construction_and_in_add_param_group()
    {
        var a = new Parameter(torch.randn(3, 4));
        var view = new Parameter(a.detach()[0]);
        var construct = () => new SGD(new[] { a, view }, 0.1);
        construct.Should().Throw<ArgumentException>().WithMessage("*'0.0' and '0.1' share memory*");

        using var opt = new Adam(new[] { a }, 0.1);
        var add = () => opt.AddParamGroup(new ParamGroupSpec<AdamOptions>(new[] { view }));
        add.Should().Throw<ArgumentException>().WithMessage("*share memory*");
        opt.ParamGroups.Should().HaveCount(1);

        // Separate tensors, and disjoint slices of one storage, are fine.
        var flat = torch.zeros(10);
        using var ok = new SGD(new[] { new Parameter(flat.narrow(0, 0, 5)), new Parameter(flat.narrow(0, 5, 5)), new Parameter(torch.zeros(3)) }, 0.1);
    }

    [Fact]
    public void TorchSharps_add_param_group_keeps_every_option_the_group_sets()
    {
        var ps = new[] { new Parameter(torch.ones(2)) };
        using var opt = new Adam(ps, 0.01);
        var extra = new[] { new Parameter(torch.ones(3)) };
        opt.add_param_group(new TorchSharp.Modules.Adam.ParamGroup(extra, lr: 0.1, beta1: 0.5, weight_decay: 0.5, amsgrad: true));
        var o = opt.ParamGroups[1].Options;
        (o.Lr, o.Beta1, o.WeightDecay, o.Amsgrad).Should().Be((0.1, 0.5, 0.5, true));

        using var sgd = new SGD(ps.Select(p => new Parameter(p.detach().clone())), 0.01);
        var wrong = () => sgd.add_param_group(new TorchSharp.Modules.Adam.ParamGroup(extra, lr: 0.1));
        wrong.Should().Throw<ArgumentException>().WithMessage("*'beta1'*SGDOptions*");
        sgd.ParamGroups.Should().HaveCount(1);
    }
}
