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
/// PyTorch 2.x's optimizer hooks (<c>torch/optim/optimizer.py</c>): step pre/post hooks (global ones first before the step
/// and last after it), state-dict and load-state-dict pre/post hooks with <c>prepend</c>, replacement results, and
/// handles that remove them; and how they meet the all-or-nothing guarantees of step and load.
/// </summary>
public class HookTests
{
    private static (List<Parameter> Ps, SGD Opt, GoldenCase Case) Make(double momentum = 0.9)
    {
        var c = RandomCases.Make(ScalarType.Float32, seed: 11, steps: 4);
        var ps = c.MakeParameters();
        return (ps, new SGD(ps, lr: 0.1, momentum: momentum), c);
    }

    [Fact]
    public void Step_hooks_run_in_PyTorchs_order_global_pre_first_and_global_post_last()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        var log = new List<string>();
        // Global hooks see every optimizer of the process (tests run in parallel): log only this one's steps.
        using var globalPre = Optimizer.RegisterOptimizerStepPreHook((o, a) => { if (o == opt) log.Add("global pre"); return null; });
        using var globalPost = Optimizer.RegisterOptimizerStepPostHook((o, a) => { if (o == opt) log.Add("global post"); });
        using var pre1 = opt.RegisterStepPreHook((o, a) => { log.Add("pre 1"); return null; });
        using var pre2 = opt.RegisterStepPreHook((o, a) => { log.Add("pre 2"); return null; });
        using var post1 = opt.RegisterStepPostHook((o, a) => log.Add("post 1"));
        using var post2 = opt.RegisterStepPostHook((o, a) => log.Add("post 2"));
        c.SetGradients(ps, 0);
        opt.step(() => { log.Add("closure"); return torch.tensor(1f); })!.Dispose();
        log.Should().Equal("global pre", "pre 1", "pre 2", "closure", "post 1", "post 2", "global post");
    }

    [Fact]
    public void A_pre_hook_may_replace_the_closure_and_later_hooks_and_the_post_hooks_see_the_replacement()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        Func<Tensor> replacement = () => torch.tensor(7f);
        StepArguments? seenBySecond = null, seenByPost = null;
        using var first = opt.RegisterStepPreHook((o, a) => a with { Closure = replacement });
        using var second = opt.RegisterStepPreHook((o, a) => { seenBySecond = a; return null; });
        using var post = opt.RegisterStepPostHook((o, a) => seenByPost = a);
        c.SetGradients(ps, 0);
        using var loss = opt.step(() => torch.tensor(1f));
        loss!.item<float>().Should().Be(7f);
        seenBySecond!.Closure.Should().BeSameAs(replacement);
        seenByPost!.Closure.Should().BeSameAs(replacement);
    }

    [Fact]
    public void A_pre_hook_can_wrap_LBFGS_closure_and_counts_its_evaluations()
    {
        using var x = new Parameter(torch.tensor(new double[] { 1.5, -0.5 }));
        using var lbfgs = new LBFGS(new[] { x }, lr: 1, max_iter: 5);
        var evaluations = 0;
        using var hook = lbfgs.RegisterStepPreHook((o, a) =>
        {
            var inner = a.Closure!;
            return a with { Closure = () => { evaluations++; return inner(); } };
        });
        lbfgs.step(() =>
        {
            lbfgs.zero_grad();
            var loss = (x * x).sum();
            loss.backward();
            return loss;
        });
        evaluations.Should().BeGreaterThan(1, "LBFGS evaluates its closure several times per step, each through the wrapper");
    }

    [Fact]
    public void A_pre_hook_that_throws_leaves_parameters_and_state_as_they_were_and_runs_no_post_hook()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 1);
        var before = StateSnapshot.Of(opt, ps);
        var posts = 0;
        using (opt.RegisterStepPreHook((o, a) => throw new InvalidOperationException("refused")))
        using (opt.RegisterStepPostHook((o, a) => posts++))
        {
            c.SetGradients(ps, 1);
            FluentActions.Invoking(() => opt.step()).Should().Throw<InvalidOperationException>().WithMessage("refused");
        }
        StateSnapshot.Of(opt, ps).Should().Equal(before);
        posts.Should().Be(0);
        opt.step(); // the handles removed both hooks
        posts.Should().Be(0);
    }

    [Fact]
    public void A_step_that_throws_runs_no_post_hook()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        var posts = 0;
        using var post = opt.RegisterStepPostHook((o, a) => posts++);
        c.SetGradients(ps, 0);
        ps[1].grad = torch.zeros(3); // wrong shape: the step refuses before changing anything
        FluentActions.Invoking(() => opt.step()).Should().Throw<InvalidOperationException>();
        posts.Should().Be(0);
    }

    [Fact]
    public void Handles_remove_their_hook_once_and_a_hook_may_remove_itself_while_running()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        var calls = new List<string>();
        RemovableHandle? self = null;
        self = opt.RegisterStepPreHook((o, a) => { calls.Add("once"); self!.Remove(); return null; });
        using var always = opt.RegisterStepPreHook((o, a) => { calls.Add("always"); return null; });
        var removed = opt.RegisterStepPostHook((o, a) => calls.Add("removed"));
        removed.Remove();
        removed.Remove();
        removed.Dispose();
        c.Run(ps, opt, 0, 2);
        calls.Should().Equal("once", "always", "always");
    }

    [Fact]
    public void State_dict_hooks_run_in_order_with_prepend_and_a_post_hook_may_replace_the_dict()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 1);
        var log = new List<string>();
        using var pre1 = opt.RegisterStateDictPreHook(o => log.Add("pre 1"));
        using var pre0 = opt.RegisterStateDictPreHook(o => log.Add("pre 0"), prepend: true);
        using var post1 = opt.RegisterStateDictPostHook((o, sd) => { log.Add("post 1"); return null; });
        // Replaces the dict: later hooks and the caller get the one it returns.
        using var post2 = opt.RegisterStateDictPostHook((o, sd) =>
        {
            log.Add("post 2");
            return sd with { ParamGroups = [sd.ParamGroups[0] with { InitialLr = 0.5 }] };
        });
        double seenByLast = 0;
        using var post3 = opt.RegisterStateDictPostHook((o, sd) => { seenByLast = sd.ParamGroups[0].InitialLr; return null; });
        var dict = opt.StateDict();
        log.Should().Equal("pre 0", "pre 1", "post 1", "post 2");
        seenByLast.Should().Be(0.5);
        dict.ParamGroups[0].InitialLr.Should().Be(0.5);
        opt.ParamGroups[0].InitialLearningRate.Should().Be(0.1, "the hook changed the dict, not the optimizer");
    }

    [Fact]
    public void A_checkpoint_saves_what_the_state_dict_hooks_return()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 1);
        using var hook = opt.RegisterStateDictPostHook((o, sd) => sd with { ParamGroups = [sd.ParamGroups[0] with { InitialLr = 0.25 }] });
        using var stream = new MemoryStream();
        opt.Save(stream);
        stream.Position = 0;
        var (ps2, other, _) = Make();
        using var __ = other;
        other.Load(stream);
        other.ParamGroups[0].InitialLearningRate.Should().Be(0.25);
    }

    [Fact]
    public void A_load_pre_hook_may_replace_the_dict_such_as_renaming_state_keys_of_an_older_version()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 2);
        var saved = opt.StateDict().DeepCopy();
        // A dict as another version might have written it: "momentum" where SGD keeps "momentum_buffer".
        var old = saved with
        {
            State = saved.State.ToDictionary(s => s.Key,
                s => (IReadOnlyDictionary<string, Tensor>)s.Value.ToDictionary(e => e.Key == "momentum_buffer" ? "momentum" : e.Key, e => e.Value)),
        };
        var (ps2, fresh, _) = Make();
        using var __ = fresh;
        FluentActions.Invoking(() => fresh.LoadStateDict(old)).Should().Throw<ArgumentException>().WithMessage("*'momentum'*");

        using var rename = fresh.RegisterLoadStateDictPreHook((o, sd) => sd with
        {
            State = sd.State.ToDictionary(s => s.Key,
                s => (IReadOnlyDictionary<string, Tensor>)s.Value.ToDictionary(e => e.Key == "momentum" ? "momentum_buffer" : e.Key, e => e.Value)),
        });
        fresh.LoadStateDict(old);
        for (var i = 0; i < ps.Count; i++)
            Trajectories.BitwiseEqual(fresh.State[ps2[i]]["momentum_buffer"], opt.State[ps[i]]["momentum_buffer"]).Should().BeTrue();
        saved.DisposeTensors();
    }

    [Fact]
    public void Load_hooks_run_in_order_and_the_post_hooks_see_the_loaded_state()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 1);
        var dict = opt.StateDict();
        var (ps2, other, _) = Make();
        using var __ = other;
        var log = new List<string>();
        using var pre1 = other.RegisterLoadStateDictPreHook((o, sd) => { log.Add("pre 1"); return null; });
        using var pre0 = other.RegisterLoadStateDictPreHook((o, sd) => { log.Add("pre 0"); return null; }, prepend: true);
        using var post1 = other.RegisterLoadStateDictPostHook(o => log.Add($"post 1 ({((Optimizer)o).State.Count} states)"));
        using var post0 = other.RegisterLoadStateDictPostHook(o => log.Add("post 0"), prepend: true);
        other.LoadStateDict(dict);
        log.Should().Equal("pre 0", "pre 1", "post 0", "post 1 (3 states)");
    }

    [Fact]
    public void A_load_that_fails_after_the_pre_hooks_changes_nothing_and_runs_no_post_hook()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 2);
        var dict = opt.StateDict().DeepCopy();
        var (ps2, other, _) = Make();
        using var __ = other;
        c.Run(ps2, other, 0, 1);
        var before = StateSnapshot.Of(other, ps2);
        var posts = 0;
        using var post = other.RegisterLoadStateDictPostHook(o => posts++);

        // A replacement that does not fit (another optimizer's type) is refused like any dict.
        using (other.RegisterLoadStateDictPreHook((o, sd) => sd with { OptimizerType = "Adam" }))
            FluentActions.Invoking(() => other.LoadStateDict(dict)).Should().Throw<ArgumentException>().WithMessage("*'Adam'*");
        // A hook that throws stops the load before anything changed.
        using (other.RegisterLoadStateDictPreHook((o, sd) => throw new InvalidOperationException("refused")))
            FluentActions.Invoking(() => other.LoadStateDict(dict)).Should().Throw<InvalidOperationException>();
        // So does a checkpoint file the hook rejects.
        var path = Path.Combine(Path.GetTempPath(), $"optim-hooks-{Guid.NewGuid():N}.ckpt");
        try
        {
            opt.Save(path);
            using (other.RegisterLoadStateDictPreHook((o, sd) => sd with { ParamGroups = [] }))
                FluentActions.Invoking(() => other.Load(path)).Should().Throw<ArgumentException>();
        }
        finally
        {
            File.Delete(path);
        }

        StateSnapshot.Of(other, ps2).Should().Equal(before);
        posts.Should().Be(0);
        other.LoadStateDict(dict);
        posts.Should().Be(1);
        dict.DisposeTensors();
    }

    [Fact]
    public void A_load_pre_hook_replacing_a_checkpoints_dict_gets_copies_and_the_files_tensors_are_freed()
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 2);
        var path = Path.Combine(Path.GetTempPath(), $"optim-hooks-{Guid.NewGuid():N}.ckpt");
        try
        {
            opt.Save(path);
            var (ps2, other, _) = Make();
            using var __ = other;
            OptimizerStateDict? given = null;
            using var hook = other.RegisterLoadStateDictPreHook((o, sd) => (given = sd) with { });
            other.Load(path);
            // The reader's tensors were disposed after the load; the optimizer's state is its own.
            given!.State.Values.SelectMany(s => s.Values).Should().OnlyContain(t => t.IsInvalid);
            for (var i = 0; i < ps.Count; i++)
                Trajectories.BitwiseEqual(other.State[ps2[i]]["momentum_buffer"], opt.State[ps[i]]["momentum_buffer"]).Should().BeTrue();
        }
        finally
        {
            File.Delete(path);
        }
    }

    // Optim's training checkpoints and PyTorch's (torch.save of a dict) load through the same staging.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_training_checkpoint_load_runs_the_optimizers_load_hooks(bool pyTorchFormat)
    {
        var (ps, opt, c) = Make();
        using var _ = opt;
        c.Run(ps, opt, 0, 1);
        var model = torch.nn.Linear(2, 1);
        var path = Path.Combine(Path.GetTempPath(), $"optim-hooks-{Guid.NewGuid():N}.ckpt");
        try
        {
            if (pyTorchFormat) Formats.PyTorch.PyTorchTrainingCheckpoint.Save(path, model, opt);
            else Formats.TrainingCheckpoint.Save(path, model, opt);
            var log = new List<string>();
            using var pre = opt.RegisterLoadStateDictPreHook((o, sd) => { log.Add("pre"); return null; });
            using var post = opt.RegisterLoadStateDictPostHook(o => log.Add("post"));
            if (pyTorchFormat) Formats.PyTorch.PyTorchTrainingCheckpoint.Load(path, model, opt);
            else Formats.TrainingCheckpoint.Load(path, model, opt);
            log.Should().Equal("pre", "post");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_handle_still_removes_its_hook_after_the_optimizer_was_disposed()
    {
        var (_, opt, _) = Make();
        var handle = opt.RegisterStateDictPostHook((o, sd) => null);
        opt.Dispose();
        FluentActions.Invoking(handle.Remove).Should().NotThrow();
    }

    [Fact]
    public void Registering_a_null_hook_is_an_argument_error()
    {
        var (_, opt, _) = Make();
        using var __ = opt;
        FluentActions.Invoking(() => opt.RegisterStepPreHook(null!)).Should().Throw<ArgumentNullException>().Where(e => e.ParamName == "hook");
        FluentActions.Invoking(() => opt.RegisterLoadStateDictPostHook(null!)).Should().Throw<ArgumentNullException>();
    }
}
