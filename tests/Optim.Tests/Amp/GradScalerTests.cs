using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Optim.Amp;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static Optim.Tests.Amp.ScalerScript;
using static TorchSharp.torch;

namespace Optim.Tests.Amp;

/// <summary>
/// <see cref="GradScaler"/> against PyTorch's rules, step by step, on scripted sequences of clean and non-finite
/// gradients: skipped steps change no parameter and no state, the scale backs off at once and grows after
/// growth_interval clean iterations, on every path and in float16 and bfloat16.
/// </summary>
public class GradScalerTests
{
    // Clean x2, Inf (backoff), clean x3 (growth at the third with interval 3), NaN, clean x4 (growth), Inf, clean.
    private static readonly Grad[] Script =
    {
        Grad.Clean, Grad.Clean, Grad.Inf, Grad.Clean, Grad.Clean, Grad.Clean, Grad.NaN,
        Grad.Clean, Grad.Clean, Grad.Clean, Grad.Clean, Grad.Inf, Grad.Clean,
    };

    public static TheoryData<string, Implementation, ScalarType> Cases()
    {
        var data = new TheoryData<string, Implementation, ScalarType>();
        foreach (var dtype in new[] { ScalarType.Float16, ScalarType.BFloat16, ScalarType.Float32 })
        {
            // A closure-driven algorithm (LBFGS) is refused by the scaler, as in PyTorch: see
            // Closure_driven_algorithms_of_the_catalog_are_refused_with_PyTorchs_message.
            foreach (var name in Algorithms.NamesExcept(a => a.RequiresClosure || a.RequiresSparseGradients,
                "GradScaler refuses closure-driven steps, and sparse gradients (it cannot unscale them), as SparseAdam needs"))
            {
                foreach (var impl in new[] { Implementation.ForLoop, Implementation.Foreach, Implementation.Fused })
                {
                    if (impl == Implementation.Fused && !Algorithms.Get(name).HasFusedKernel) continue;
                    // A C# fused kernel takes float32 and float64 only: its script runs in float32, every other in the half types.
                    if (dtype == ScalarType.Float32 != (impl == Implementation.Fused && Algorithms.Get(name).FusedKernelIsCSharp)) continue;
                    data.Add(name, impl, dtype);
                }
            }
        }
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void A_scripted_run_skips_overflowing_steps_and_follows_PyTorchs_scale_rule(string algorithm, Implementation impl, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(dtype);
        var twinPs = Clone(ps);
        using var optimizer = Algorithms.Create(algorithm, ps, impl);
        using var twin = Algorithms.Create(algorithm, twinPs, impl);
        using var scaler = new GradScaler(init_scale: 1024, growth_interval: 3);
        var model = new ScaleModel(1024, 2, 0.5, 3);
        optimizer.StepSupportsAmpScaling.Should().Be(impl == Implementation.Fused);

        for (var s = 0; s < Script.Length; s++)
        {
            using var stepScope = NewDisposeScope();
            var because = $"iteration {s} ({Script[s]})";
            scaler.scale(torch.ones(1, dtype)).to(ScalarType.Float32).item<float>().Should().Be((float)model.Scale, because);
            var before = Snapshot(ps);
            SetScaledGrads(ps, s, Script[s], model.Scale);
            var loss = scaler.step(optimizer);
            loss.Should().BeNull();
            scaler.update();
            model.Update(Script[s] != Grad.Clean);

            if (Script[s] == Grad.Clean)
            {
                SetTrueGrads(twinPs, s);
                twin.step();
            }
            else
            {
                for (var i = 0; i < ps.Count; i++) Trajectories.BitwiseEqual(ps[i], before[i]).Should().BeTrue($"a skipped step leaves parameter {i}: {because}");
            }
            ParametersShouldBeBitwise(ps, twinPs, because);
            StatesShouldBeBitwise(optimizer, twin, because);
            (scaler.get_scale(), scaler.GrowthTracker).Should().Be((model.Scale, model.Tracker), because);
            optimizer.GradScale.Should().BeNull();
            optimizer.FoundInf.Should().BeNull();
        }
        scaler.get_scale().Should().Be(512, "backoff, growth, backoff, growth, backoff: 1024 -> 512 -> 1024 -> 512 -> 1024 -> 512");
    }

    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Foreach)]
    public void A_skipped_first_step_creates_no_state(Implementation impl)
    {
        using var scope = NewDisposeScope();
        // Adagrad creates its state at construction; GradScaler refuses closure-driven algorithms (LBFGS), see below.
        foreach (var name in Algorithms.NamesExcept(a => a.Name == "Adagrad" || a.RequiresClosure || a.RequiresSparseGradients,
            "state at construction, or no scaled step (closure-driven, or sparse gradients, which GradScaler refuses)"))
        {
            var ps = MakeParameters(ScalarType.BFloat16);
            using var optimizer = Algorithms.Create(name, ps, impl);
            using var scaler = new GradScaler();
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, 0, Grad.Inf, scaler.get_scale());
            scaler.step(optimizer);
            optimizer.StateDict().State.Should().BeEmpty(name);
        }
    }

    public static TheoryData<string> ClosureDriven() => Algorithms.NameData(a => !a.RequiresClosure, "only closure-driven algorithms are refused");

    [Theory]
    [MemberData(nameof(ClosureDriven))]
    public void Closure_driven_algorithms_of_the_catalog_are_refused_with_PyTorchs_message(string algorithm)
    {
        // PyTorch's GradScaler.step raises for a closure; a closure-driven optimizer (LBFGS) cannot step without one.
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float32);
        using var optimizer = Algorithms.Create(algorithm, ps, Implementation.Auto);
        using var scaler = new GradScaler();
        scaler.scale(torch.ones(1));
        SetScaledGrads(ps, 0, Grad.Clean, scaler.get_scale());
        var before = StateSnapshot.Of(optimizer, ps);
        var act = () => scaler.step(optimizer);
        act.Should().Throw<InvalidOperationException>().WithMessage("Closure use is not currently supported if GradScaler is enabled.");
        var withClosure = () => scaler.step(optimizer, () => torch.zeros(1));
        withClosure.Should().Throw<InvalidOperationException>().WithMessage("Closure use is not currently supported if GradScaler is enabled.");
        StateSnapshot.Of(optimizer, ps).Should().Equal(before);
    }

    [Fact]
    public void A_skipped_first_fused_Adam_step_leaves_fresh_state_that_changes_nothing_later()
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float16);
        var twinPs = Clone(ps);
        using var optimizer = new Adam(ps, 0.01, implementation: Implementation.Fused);
        using var twin = new Adam(twinPs, 0.01, implementation: Implementation.Fused);
        using var scaler = new GradScaler(init_scale: 256);
        scaler.scale(torch.ones(1));
        SetScaledGrads(ps, 0, Grad.Inf, 256);
        scaler.step(optimizer);
        scaler.update();
        // PyTorch's fused route creates the state before the kernel skips: step 0 and zero moments, as fresh state.
        foreach (var p in ps)
        {
            optimizer.State[p]["step"].item<float>().Should().Be(0);
            optimizer.State[p]["exp_avg"].count_nonzero().item<long>().Should().Be(0);
        }
        for (var s = 1; s < 4; s++)
        {
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, s, Grad.Clean, scaler.get_scale());
            scaler.step(optimizer);
            scaler.update();
            SetTrueGrads(twinPs, s);
            twin.step();
        }
        ParametersShouldBeBitwise(ps, twinPs, "after a skipped first step");
        StatesShouldBeBitwise(optimizer, twin, "after a skipped first step");
    }

    [Fact]
    public void A_skipped_first_fused_SGD_momentum_step_leaves_no_garbage_buffer()
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float32);
        var twinPs = Clone(ps);
        using var optimizer = new SGD(ps, 0.01, momentum: 0.9, implementation: Implementation.Fused);
        using var twin = new SGD(twinPs, 0.01, momentum: 0.9, implementation: Implementation.Fused);
        using var scaler = new GradScaler(init_scale: 256);
        scaler.scale(torch.ones(1));
        SetScaledGrads(ps, 0, Grad.Inf, 256);
        scaler.step(optimizer);
        scaler.update();
        for (var s = 1; s < 4; s++)
        {
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, s, Grad.Clean, scaler.get_scale());
            scaler.step(optimizer);
            scaler.update();
            SetTrueGrads(twinPs, s);
            twin.step();
        }
        ParametersShouldBeBitwise(ps, twinPs, "after a skipped first step");
    }

    [Theory]
    [InlineData(Implementation.Foreach)]
    [InlineData(Implementation.Fused)]
    public void Unscale_before_clipping_then_step_matches_the_twin(Implementation impl)
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.BFloat16);
        var twinPs = Clone(ps);
        using var optimizer = new AdamW(ps, 0.01, implementation: impl);
        using var twin = new AdamW(twinPs, 0.01, implementation: impl);
        using var scaler = new GradScaler(init_scale: 4096, growth_interval: 2);
        for (var s = 0; s < 6; s++)
        {
            var kind = s == 2 ? Grad.NaN : Grad.Clean;
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, s, kind, scaler.get_scale());
            scaler.unscale_(optimizer);
            if (kind == Grad.Clean)
            {
                for (var i = 0; i < ps.Count; i++)
                    Trajectories.BitwiseEqual(ps[i].grad!, TrueGrads(s, ScalarType.BFloat16)[i]).Should().BeTrue("unscale_ leaves the true gradients");
            }
            Optim.Utils.ClipGrad.clip_grad_norm_(ps, 1.0);
            scaler.step(optimizer);
            scaler.update();
            if (kind == Grad.Clean)
            {
                SetTrueGrads(twinPs, s);
                Optim.Utils.ClipGrad.clip_grad_norm_(twinPs, 1.0);
                twin.step();
            }
            ParametersShouldBeBitwise(ps, twinPs, $"iteration {s}");
            StatesShouldBeBitwise(optimizer, twin, $"iteration {s}");
        }
    }

    [Fact]
    public void The_fused_route_unscales_in_the_kernel_without_unscale_()
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float32);
        using var optimizer = new SGD(ps, 0.1, implementation: Implementation.Fused);
        using var scaler = new GradScaler(init_scale: 8);
        scaler.scale(torch.ones(1));
        SetScaledGrads(ps, 0, Grad.Clean, 8);
        scaler.step(optimizer);
        // The kernel divides the gradients by grad_scale in place, as PyTorch's fused kernels do.
        for (var i = 0; i < ps.Count; i++)
            Trajectories.BitwiseEqual(ps[i].grad!, TrueGrads(0, ScalarType.Float32)[i]).Should().BeTrue();
        optimizer.GradScale.Should().BeNull();
        optimizer.FoundInf.Should().BeNull();
    }

    [Fact]
    public void Groups_that_mix_Fused_and_Auto_take_the_generic_route()
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float32);
        using var optimizer = new Adam(new[]
        {
            new ParamGroupSpec<AdamOptions>(ps.Take(2), o => o with { Implementation = Implementation.Fused }),
            new ParamGroupSpec<AdamOptions>(ps.Skip(2)),
        }, 0.01);
        optimizer.StepSupportsAmpScaling.Should().BeFalse();
        using var scaler = new GradScaler();
        for (var s = 0; s < 3; s++)
        {
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, s, s == 1 ? Grad.Inf : Grad.Clean, scaler.get_scale());
            scaler.step(optimizer);
            scaler.update();
        }
        optimizer.State[ps[0]]["step"].item<float>().Should().Be(2);
    }

    [Theory]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void TorchSharps_own_optimizers_take_the_generic_route(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(dtype);
        var twinPs = Clone(ps);
        using var optimizer = torch.optim.Adam(ps, 0.01);
        using var twin = torch.optim.Adam(twinPs, 0.01);
        using var scaler = new GradScaler(init_scale: 512, growth_interval: 2);
        for (var s = 0; s < 6; s++)
        {
            var kind = s is 1 or 4 ? Grad.Inf : Grad.Clean;
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, s, kind, scaler.get_scale());
            scaler.step(optimizer);
            scaler.update();
            if (kind == Grad.Clean)
            {
                SetTrueGrads(twinPs, s);
                twin.step();
            }
            ParametersShouldBeBitwise(ps, twinPs, $"iteration {s}");
        }
    }

    [Fact]
    public void Two_optimizers_each_skip_on_their_own_overflow_and_the_scale_backs_off_once()
    {
        using var scope = NewDisposeScope();
        var a = MakeParameters(ScalarType.Float32, 1);
        var b = MakeParameters(ScalarType.Float32, 2);
        var aBefore = Snapshot(a);
        var bBefore = Snapshot(b);
        using var optA = new SGD(a, 0.1, implementation: Implementation.ForLoop);
        using var optB = new Adam(b, 0.1, implementation: Implementation.Fused);
        using var scaler = new GradScaler(init_scale: 64);
        scaler.scale(new[] { torch.ones(1), torch.ones(2) }).Select(t => t.sum().item<float>()).Should().Equal(64f, 128f);
        SetScaledGrads(a, 0, Grad.Inf, 64);
        SetScaledGrads(b, 0, Grad.Clean, 64);
        scaler.step(optA);
        scaler.step(optB);
        scaler.update();
        scaler.get_scale().Should().Be(32);
        ParametersShouldBeBitwise(a, aBefore.Select(t => new Parameter(t)).ToList(), "A overflowed");
        Trajectories.BitwiseEqual(b[0], bBefore[0]).Should().BeFalse("B's gradients were finite");
    }

    // ---- misuse: PyTorch's messages

    [Fact]
    public void Misuse_gets_PyTorchs_errors()
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float32);
        using var optimizer = new SGD(ps, 0.1);
        using var scaler = new GradScaler();

        FluentActions.Invoking(() => scaler.step(optimizer)).Should().Throw<InvalidOperationException>()
            .WithMessage("Attempted step but _scale is None.  This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration.");
        FluentActions.Invoking(() => scaler.update()).Should().Throw<InvalidOperationException>().WithMessage("Attempted update but _scale is None.*");
        FluentActions.Invoking(() => scaler.unscale_(optimizer)).Should().Throw<InvalidOperationException>().WithMessage("Attempted unscale_ but _scale is None.*");

        scaler.scale(torch.ones(1));
        FluentActions.Invoking(() => scaler.step(optimizer)).Should().Throw<InvalidOperationException>().WithMessage("No inf checks were recorded for this optimizer.");
        scaler.update(65536.0); // a new scale clears the records of this iteration, like update() does
        FluentActions.Invoking(() => scaler.update()).Should().Throw<InvalidOperationException>().WithMessage("No inf checks were recorded prior to update.");

        SetScaledGrads(ps, 0, Grad.Clean, scaler.get_scale());
        scaler.unscale_(optimizer);
        FluentActions.Invoking(() => scaler.unscale_(optimizer)).Should().Throw<InvalidOperationException>()
            .WithMessage("unscale_() has already been called on this optimizer since the last update().");
        scaler.step(optimizer);
        FluentActions.Invoking(() => scaler.unscale_(optimizer)).Should().Throw<InvalidOperationException>().WithMessage("unscale_() is being called after step().");
        FluentActions.Invoking(() => scaler.step(optimizer)).Should().Throw<InvalidOperationException>().WithMessage("step() has already been called since the last update().");
        scaler.update();

        FluentActions.Invoking(() => scaler.step(optimizer, () => torch.ones(1))).Should().Throw<InvalidOperationException>()
            .WithMessage("Closure use is not currently supported if GradScaler is enabled.");
        using var lbfgs = torch.optim.LBFGS(ps);
        FluentActions.Invoking(() => scaler.step(lbfgs)).Should().Throw<InvalidOperationException>()
            .WithMessage("Closure use is not currently supported if GradScaler is enabled.");
    }

    [Theory]
    [InlineData(1.0, 0.5, 2000, "The growth factor must be > 1.0.*")]
    [InlineData(double.NaN, 0.5, 2000, "The growth factor must be > 1.0.*")]
    [InlineData(2.0, 1.0, 2000, "The backoff factor must be < 1.0*")]
    [InlineData(2.0, 0.0, 2000, "The backoff factor must be < 1.0*")]
    [InlineData(2.0, 0.5, 0, "The growth interval must be at least 1.*")]
    public void Bad_hyperparameters_are_rejected_when_enabled(double growth, double backoff, int interval, string message)
    {
        FluentActions.Invoking(() => new GradScaler(growth_factor: growth, backoff_factor: backoff, growth_interval: interval))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage(message);
        using var disabled = new GradScaler(growth_factor: growth, backoff_factor: backoff, growth_interval: interval, enabled: false);
    }

    [Fact]
    public void A_disabled_scaler_passes_everything_through()
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float32);
        using var optimizer = new SGD(ps, 0.1);
        using var scaler = new GradScaler(enabled: false);
        var loss = torch.ones(1);
        scaler.scale(loss).Should().BeSameAs(loss);
        scaler.is_enabled().Should().BeFalse();
        scaler.get_scale().Should().Be(1.0);
        scaler.StateDict().Should().BeNull();
        SetScaledGrads(ps, 0, Grad.Inf, 1);
        scaler.unscale_(optimizer);
        var closureRan = false;
        scaler.step(optimizer, () => { closureRan = true; return torch.ones(1); });
        closureRan.Should().BeTrue();
        scaler.update();
        scaler.LoadStateDict(null);
    }

    [Fact]
    public void Update_with_a_new_scale_sets_it()
    {
        using var scope = NewDisposeScope();
        using var scaler = new GradScaler();
        scaler.get_scale().Should().Be(65536, "the initial scale before the first scale()");
        scaler.scale(torch.ones(1));
        scaler.update(3.0);
        scaler.get_scale().Should().Be(3);
        scaler.update(torch.tensor(5.0f));
        scaler.get_scale().Should().Be(5);
        FluentActions.Invoking(() => scaler.update(torch.ones(2))).Should().Throw<ArgumentException>();
    }

    // ---- state dicts and resume

    [Fact]
    public void The_state_dict_has_PyTorchs_keys_and_round_trips_through_JSON()
    {
        using var scope = NewDisposeScope();
        var ps = MakeParameters(ScalarType.Float32);
        using var optimizer = new SGD(ps, 0.1);
        using var scaler = new GradScaler(init_scale: 1024, growth_factor: 4, backoff_factor: 0.25, growth_interval: 5);
        for (var s = 0; s < 3; s++)
        {
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, s, s == 0 ? Grad.Inf : Grad.Clean, scaler.get_scale());
            scaler.step(optimizer);
            scaler.update();
        }
        var state = scaler.StateDict()!;
        state.Should().Be(new GradScalerState(256, 4, 0.25, 5, 2));
        state.ToDictionary().Select(e => e.Key).Should().Equal("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker");
        var json = JsonSerializer.Serialize(state);
        json.Should().Be("{\"scale\":256,\"growth_factor\":4,\"backoff_factor\":0.25,\"growth_interval\":5,\"_growth_tracker\":2}");
        JsonSerializer.Deserialize<GradScalerState>(json).Should().Be(state);
        GradScalerState.FromDictionary(state.ToDictionary().ToDictionary(e => e.Key, e => e.Value)).Should().Be(state);
    }

    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Fused)]
    public void An_interrupted_run_resumes_bit_for_bit(Implementation impl)
    {
        using var scope = NewDisposeScope();
        var grads = new[] { Grad.Clean, Grad.Inf, Grad.Clean, Grad.Clean, Grad.Clean, Grad.NaN, Grad.Clean, Grad.Clean, Grad.Clean, Grad.Clean };

        void Run(IReadOnlyList<Parameter> ps, Optimizer optimizer, GradScaler scaler, int from, int to)
        {
            for (var s = from; s < to; s++)
            {
                using var stepScope = NewDisposeScope();
                scaler.scale(torch.ones(1));
                SetScaledGrads(ps, s, grads[s], scaler.get_scale());
                scaler.step(optimizer);
                scaler.update();
            }
        }

        var straightPs = MakeParameters(ScalarType.BFloat16);
        using var straight = new Adam(straightPs, 0.01, implementation: impl);
        using var straightScaler = new GradScaler(init_scale: 128, growth_interval: 2);
        Run(straightPs, straight, straightScaler, 0, grads.Length);

        var firstPs = MakeParameters(ScalarType.BFloat16);
        using var first = new Adam(firstPs, 0.01, implementation: impl);
        using var firstScaler = new GradScaler(init_scale: 128, growth_interval: 2);
        Run(firstPs, first, firstScaler, 0, 4);
        using var optimizerFile = new MemoryStream();
        first.Save(optimizerFile);
        var scalerJson = JsonSerializer.Serialize(firstScaler.StateDict());

        var resumedPs = firstPs.Select(p => new Parameter(p.detach().clone(), requires_grad: true)).ToList();
        using var resumed = new Adam(resumedPs, 0.01, implementation: impl);
        optimizerFile.Position = 0;
        resumed.Load(optimizerFile);
        using var resumedScaler = new GradScaler();
        resumedScaler.LoadStateDict(JsonSerializer.Deserialize<GradScalerState>(scalerJson));
        Run(resumedPs, resumed, resumedScaler, 4, grads.Length);

        ParametersShouldBeBitwise(resumedPs, straightPs, "resumed");
        StatesShouldBeBitwise(resumed, straight, "resumed");
        resumedScaler.StateDict().Should().Be(straightScaler.StateDict());
    }

    [Fact]
    public void LoadStateDict_checks_everything_before_changing_anything()
    {
        using var scope = NewDisposeScope();
        using var scaler = new GradScaler(init_scale: 8, growth_interval: 4);
        scaler.scale(torch.ones(1));
        var before = scaler.StateDict();
        foreach (var bad in new[]
        {
            new GradScalerState(double.PositiveInfinity, 2, 0.5, 4, 0),
            new GradScalerState(-1, 2, 0.5, 4, 0),
            new GradScalerState(16, 1, 0.5, 4, 0),
            new GradScalerState(16, 2, 1.5, 4, 0),
            new GradScalerState(16, 2, 0.5, 0, 0),
            new GradScalerState(16, 2, 0.5, 4, 4),
            new GradScalerState(16, 2, 0.5, 4, -1),
        })
        {
            FluentActions.Invoking(() => scaler.LoadStateDict(bad)).Should().Throw<ArgumentException>(bad.ToString());
            scaler.StateDict().Should().Be(before);
        }
        FluentActions.Invoking(() => scaler.LoadStateDict(null)).Should().Throw<ArgumentException>()
            .WithMessage("The source state dict is empty, possibly because it was saved from a disabled instance of GradScaler.*");
        scaler.LoadStateDict(new GradScalerState(16, 3, 0.25, 6, 5));
        scaler.StateDict().Should().Be(new GradScalerState(16, 3, 0.25, 6, 5));
    }

    [Fact]
    public void A_loaded_state_before_the_first_scale_becomes_the_initial_scale()
    {
        using var scope = NewDisposeScope();
        using var scaler = new GradScaler();
        scaler.LoadStateDict(new GradScalerState(32, 2, 0.5, 10, 9));
        scaler.get_scale().Should().Be(32);
        scaler.scale(torch.ones(1)).item<float>().Should().Be(32);
        scaler.GrowthTracker.Should().Be(9);
    }

    [Fact]
    public void The_scale_survives_the_callers_dispose_scopes()
    {
        using var scaler = new GradScaler(init_scale: 4);
        var ps = MakeParameters(ScalarType.Float32);
        using var optimizer = new SGD(ps, 0.1);
        for (var s = 0; s < 3; s++)
        {
            using var scope = NewDisposeScope();
            scaler.scale(torch.ones(1));
            SetScaledGrads(ps, s, Grad.Clean, scaler.get_scale());
            scaler.step(optimizer);
            scaler.update();
        }
        scaler.get_scale().Should().Be(4);
        scaler.GrowthTracker.Should().Be(3);
    }
}
