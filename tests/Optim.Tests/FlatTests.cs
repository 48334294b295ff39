using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using Optim.Kernels;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// Flat mode (<see cref="Optimizer{TOptions}.Flat"/>): the same numbers as the same path without flat buffers, and no
/// way to train wrong silently when gradients or parameters stop being views of the buffers.
/// </summary>
public partial class FlatTests
{
    public static TheoryData<string, string> Cases() => GoldenFile.Cases(GoldenFile.Direct);

    // How many group steps ran over whole buffers (not per parameter).
    private static int FlatSteps(Optimizer opt) =>
        (int)opt.GetType().GetProperty("FlatStepCount", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(opt)!;

    // How many slices the sliced flat steps ran over.
    private static int FlatSlices(Optimizer opt) =>
        (int)opt.GetType().GetProperty("FlatSliceCount", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(opt)!;

    // Cuts the optimizer's CPU buffers into slices of this many elements on the for-loop and foreach paths (the
    // default cuts only buffers far larger than any test's).
    internal static void SliceFlatBuffers(Optimizer opt, long elements) =>
        opt.GetType().GetProperty("FlatSliceElements", BindingFlags.NonPublic | BindingFlags.Instance)!.SetValue(opt, elements);

    // Every golden case (gradients assigned by the test each step, some missing), on every path: flat gives the bits of
    // the same path without flat buffers; the fused kernels over one long tensor round their vector tails as they
    // round a short tensor's, so they are compared within the fused tolerance of PathParityTests. The for-loop and
    // foreach paths step the buffers in slices of 4 elements (the cases' 18 elements: slices that cut across parameters,
    // and a shorter last one), as they step large buffers by default.
    [Theory]
    [MemberData(nameof(Cases))]
    public void Flat_matches_the_same_path_on_every_golden_case(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        foreach (var impl in Algorithms.Paths(c.Info))
        {
            var options = c.Hyperparameters().Append(new KeyValuePair<string, object?>("implementation", impl)).ToList();
            var flatParams = c.MakeParameters();
            using var flat = c.Info.Create(flatParams, options, flat: true);
            SliceFlatBuffers(flat, 4);
            var actual = c.Run(flatParams, flat);
            if (impl != Implementation.Fused && FlatSteps(flat) > 0) FlatSlices(flat).Should().BeGreaterThan(FlatSteps(flat), "the buffers were stepped in slices");
            var plainParams = c.MakeParameters();
            using var plain = c.Info.Create(plainParams, options);
            var expected = c.Run(plainParams, plain);
            if (impl == Implementation.Fused)
                Trajectories.ShouldBeClose(actual, expected, c.Dtype == ScalarType.Float32 ? 2e-6 : 1e-14, c.Dtype == ScalarType.Float32 ? 2e-5 : 1e-13, $"{impl}");
            else
                Trajectories.ShouldBeBitwise(actual, expected, $"{impl}");
            StatesShouldMatch(flat, flatParams, plain, plainParams, bitwise: impl != Implementation.Fused);
        }
    }

    // A model trained by backward(): the gradients accumulate into the buffer's views, and every step after the first
    // runs over whole buffers; the parameters and state are those of the same optimizer without flat buffers, whose
    // zero_grad zeroes in place as flat mode's does. Bit for bit but on the fused path, whose kernel rounds the
    // elements of a vector's tail differently from the others, and a parameter's tail lies elsewhere in a buffer.
    public static TheoryData<string, Implementation> DenseAlgorithmsAndPaths() =>
        Algorithms.AlgorithmsAndPaths(a => a.RequiresSparseGradients, "SparseAdam has no flat mode (Sparse_gradient_algorithms_refuse_flat_mode)");

    [Theory]
    [MemberData(nameof(DenseAlgorithmsAndPaths))]
    public void Training_by_backward_matches_the_same_path(string algorithm, Implementation impl) =>
        TrainingByBackwardMatchesTheSamePath(algorithm, impl, device: null);

    // The model on `device` (the CPU when null) before the optimizers are made.
    private static void TrainingByBackwardMatchesTheSamePath(string algorithm, Implementation impl, Device? device)
    {
        // Whole buffers, then slices of 5 elements (the model's 23: slices across parameters, a shorter last one).
        foreach (var slice in new long?[] { null, 5 }) TrainsAsTheSamePath(Algorithms.Get(algorithm), impl, slice, device);
    }

    private static void TrainsAsTheSamePath(AlgorithmInfo info, Implementation impl, long? slice, Device? device)
    {
        (TwoLayers Model, List<Parameter> Parameters) Make()
        {
            // Muon takes matrices only: its model has no biases.
            var (model, ps) = Model(seed: 7, bias: !info.RequiresMatrices);
            if (device is null) return (model, ps);
            model.to(device);
            return (model, model.parameters().ToList());
        }
        var (flatModel, flatParams) = Make();
        using var flat = Algorithms.Create(info, flatParams, impl, flat: true);
        if (slice is { } elements) SliceFlatBuffers(flat, elements);
        var (plainModel, plainParams) = Make();
        using var plain = Algorithms.Create(info, plainParams, impl, flat: false);
        var deviceType = device?.type ?? DeviceType.CPU;
        flatParams.Should().OnlyContain(p => p.device_type == deviceType);

        for (var s = 0; s < 6; s++)
        {
            Train(flatModel, flat, s, zero: () => flat.zero_grad(), device);
            Train(plainModel, plain, s, zero: () => plain.zero_grad(false), device);
        }

        ParametersShouldMatch(flatParams, plainParams, bitwise: impl != Implementation.Fused);
        StatesShouldMatch(flat, flatParams, plain, plainParams, bitwise: impl != Implementation.Fused);
        if (info.RequiresClosure || info.Name is "Adafactor" or "Muon") FlatSteps(flat).Should().Be(0, "its update is not element-wise");
        else FlatSteps(flat).Should().Be(6);
        // Only the CPU's op-by-op paths slice.
        var sliced = slice is not null && impl != Implementation.Fused && deviceType == DeviceType.CPU;
        FlatSlices(flat).Should().Be(sliced ? FlatSteps(flat) * 5 : 0, "the 23 elements in slices of 5");
    }

    // TorchSharp's Module.zero_grad() sets every gradient to null: backward then makes new gradients, which the step
    // copies into the buffer (and re-aliases) before stepping; and a parameter that the loss does not use has no gradient
    // and is skipped, as without flat buffers.
    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Fused)]
    public void Gradients_that_are_not_views_are_adopted_and_missing_ones_skipped(Implementation impl)
    {
        var (flatModel, flatParams) = Model(seed: 3);
        using var flat = new Adam(flatParams, lr: 0.01, weight_decay: 0.1, implementation: impl, flat: true);
        var (plainModel, plainParams) = Model(seed: 3);
        using var plain = new Adam(plainParams, lr: 0.01, weight_decay: 0.1, implementation: impl);

        // Module.zero_grad(): new gradients from backward.
        for (var s = 0; s < 3; s++)
        {
            Train(flatModel, flat, s, zero: () => flatModel.zero_grad());
            Train(plainModel, plain, s, zero: () => plainModel.zero_grad());
        }
        FlatSteps(flat).Should().Be(3);
        foreach (var p in flatParams) IsViewOfBuffer(flat, p).Should().BeTrue("the step re-aliased the gradient");

        // A gradient the user assigns.
        using (var g = randn_like(flatParams[0])) { flatParams[0].grad = g.clone(); plainParams[0].grad = g.clone(); }
        flat.step();
        plain.step();

        // Module.zero_grad(), then a loss that uses the first layer only: the second layer's parameters have no gradient.
        flatModel.zero_grad();
        plainModel.zero_grad();
        foreach (var (model, opt) in new[] { (flatModel, (Optimizer)flat), (plainModel, plain) })
        {
            using var scope = NewDisposeScope();
            using var x = Inputs(5);
            model.first.forward(x).pow(2).sum().backward();
            opt.step();
        }
        flatParams[2].grad.Should().BeNull("the optimizer does not invent gradients");
        ParametersShouldMatch(flatParams, plainParams, bitwise: impl != Implementation.Fused);
        StatesShouldMatch(flat, flatParams, plain, plainParams, bitwise: impl != Implementation.Fused);

        // The skipped parameters' step counts now differ from the others: the buffer keeps stepping per parameter, correctly.
        for (var s = 10; s < 12; s++)
        {
            Train(flatModel, flat, s, zero: () => flat.zero_grad());
            Train(plainModel, plain, s, zero: () => plain.zero_grad(false));
        }
        ParametersShouldMatch(flatParams, plainParams, bitwise: impl != Implementation.Fused);
        StatesShouldMatch(flat, flatParams, plain, plainParams, bitwise: impl != Implementation.Fused);
    }

    // The default slice size: a buffer of 400,000 elements steps in two slices (262,144 and the rest) on the for-loop
    // and foreach paths, with the bits and state of the same path without flat buffers; NAdam's scalar state
    // (step, mu_product) advances once per step, not once per slice.
    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Foreach)]
    public void A_large_buffer_steps_in_slices_with_the_same_bits(Implementation impl)
    {
        Parameter[] Parameters()
        {
            manual_seed(11);
            return new[] { new Parameter(randn(250_000)), new Parameter(randn(300, 500)) };
        }
        var flatParams = Parameters();
        var plainParams = Parameters();
        using var flat = new NAdam(flatParams, weight_decay: 0.01, implementation: impl, flat: true);
        using var plain = new NAdam(plainParams, weight_decay: 0.01, implementation: impl);
        for (var s = 0; s < 3; s++)
        {
            manual_seed(20 + s);
            foreach (var (f, p) in flatParams.Zip(plainParams))
            {
                using var g = randn_like(p);
                using (var fg = f.grad) fg!.copy_(g);
                p.grad = g.clone();
            }
            flat.step();
            plain.step();
        }
        FlatSlices(flat).Should().Be(2 * FlatSteps(flat)).And.BeGreaterThan(0);
        ParametersShouldMatch(flatParams, plainParams, bitwise: true);
        StatesShouldMatch(flat, flatParams, plain, plainParams, bitwise: true);
        StateTensors.Value(flat.State[flatParams[0]][StateKeys.Step]).Should().Be(3);
    }

    // Slices step their own copies of the scalar state, which an element-wise update advances alike; an update whose
    // scalar depends on the data is caught, not averaged away or taken from the first slice.
    [Fact]
    public void Slices_whose_scalars_disagree_after_a_step_are_an_error()
    {
        var ps = new[] { new Parameter(randn(10)), new Parameter(randn(3)) };
        using var opt = new ScalarFromData(ps);
        SliceFlatBuffers(opt, 4);
        var step = () => opt.step();
        step.Should().Throw<InvalidOperationException>().WithMessage("*slices of a flat buffer disagree on state 'step'*");
    }

    // Claims an element-wise update but sets its step count to the number of elements it was given.
    private sealed class ScalarFromData : Optimizer<RMSpropOptions>
    {
        public ScalarFromData(IEnumerable<Parameter> parameters) : base(Groups.Single<RMSpropOptions>(parameters), new RMSpropOptions()) =>
            UseFlatParameters(true);

        protected override StateSchema StateSchema { get; } = new StateSchema().Step(StateKeys.Step);

        protected override void InitializeState(RMSpropOptions options, Parameter parameter, ParameterState state) =>
            state.Set(StateKeys.Step, StateTensors.NewStep());

        protected override void SingleTensorStep(RMSpropOptions options, StepBatch batch)
        {
            for (var i = 0; i < batch.Count; i++) batch.States[i][StateKeys.Step].fill_(batch.Params[i].numel());
        }

        protected override void MultiTensorStep(RMSpropOptions options, StepBatch bucket) => SingleTensorStep(options, bucket);
    }

    [Fact]
    public void Zero_grad_zeroes_the_buffer_and_keeps_every_gradient_a_view()
    {
        var (model, ps) = Model(seed: 1);
        using var opt = new SGD(ps, lr: 0.1, momentum: 0.9, flat: true);
        Train(model, opt, 0, zero: () => opt.zero_grad());
        // TorchSharp's Module.zero_grad() (every gradient null), then a loss that reaches the first layer only: the
        // step adopts the new gradients and skips the second layer's parameters, which have none.
        model.zero_grad();
        using (var x = Inputs(1)) model.first.forward(x).sum().backward();
        opt.step();
        opt.zero_grad(set_to_none: true);
        foreach (var p in ps)
        {
            using var grad = p.grad;
            grad.Should().NotBeNull("flat mode zeroes instead of releasing");
            grad!.count_nonzero().item<long>().Should().Be(0);
            IsViewOfBuffer(opt, p).Should().BeTrue();
        }
    }

    // Every way a gradient stops being the buffer's view between steps, read both ways (directly, and through a new
    // handle per gradient, the fallback where the direct reads are unavailable): the flat optimizer finds each and gives
    // the bits of the same optimizer without flat buffers, whose zero_grad zeroes in place as flat mode's does. Had a
    // step trusted the views, it would have stepped with the buffer's stale values.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Every_gradient_that_is_not_the_buffers_view_is_found(bool direct)
    {
        var (flatModel, flatParams) = Model(seed: 8);
        using var flat = new Adam(flatParams, lr: 0.01, flat: true);
        SetDirectGradientReads(flat, direct);
        var (plainModel, plainParams) = Model(seed: 8);
        using var plain = new Adam(plainParams, lr: 0.01);
        void Both(Action<TwoLayers, Optimizer, List<Parameter>> act)
        {
            act(flatModel, flat, flatParams);
            act(plainModel, plain, plainParams);
        }
        void Zero(Optimizer opt) => opt.zero_grad(set_to_none: false);
        void Backward(TwoLayers model, int step, bool createGraph)
        {
            using var scope = NewDisposeScope();
            model.forward(Inputs(step)).pow(2).mean().backward(create_graph: createGraph);
        }
        void ShouldMatch(string because)
        {
            using var scope = new FluentAssertions.Execution.AssertionScope(because);
            ParametersShouldMatch(flatParams, plainParams, bitwise: true);
            StatesShouldMatch(flat, flatParams, plain, plainParams, bitwise: true);
            foreach (var p in flatParams) IsViewOfBuffer(flat, p).Should().BeTrue(because);
        }

        Both((m, o, _) => { Zero(o); Backward(m, 0, createGraph: false); o.step(); });
        ShouldMatch("an ordinary step");

        // backward(create_graph: true) replaces every existing gradient by a new tensor (old + new, with a graph).
        Both((m, o, _) => { Zero(o); Backward(m, 1, createGraph: true); o.step(); });
        ShouldMatch("create_graph replaced the gradients");

        // A gradient assigned after a step and before zero_grad: zero_grad must zero what the parameter now holds.
        Both((m, o, ps) =>
        {
            ps[1].grad = full_like(ps[1], 3.0f);
            Zero(o);
            Backward(m, 2, createGraph: false);
            o.step();
        });
        ShouldMatch("zero_grad replaced the assigned gradient");

        FlatSteps(flat).Should().Be(3);

        // set_ moves a gradient to other memory in place: the same tensor, so only its address tells. Read through
        // handles, that is another tensor, adopted (zero_grad compared addresses too); read directly, the view may have
        // moved before the last zero_grad, which then did not zero it: the step refuses before changing anything.
        Both((m, o, ps) =>
        {
            Zero(o);
            Backward(m, 3, createGraph: false);
            using var grad = ps[0].grad!;
            using var moved = grad * 2;
            grad.set_(moved.clone());
        });
        if (direct)
        {
            var before = flatParams.Select(p => p.detach().clone()).ToList();
            var act = () => flat.step();
            act.Should().Throw<InvalidOperationException>().WithMessage("the gradient of parameter '*' was moved in place*");
            for (var i = 0; i < flatParams.Count; i++) Trajectories.BitwiseEqual(flatParams[i], before[i]).Should().BeTrue();
            return;
        }
        flat.step();
        plain.step();
        ShouldMatch("set_ moved a gradient");
    }

    // A gradient that did not fit the buffer when the optimizer was made (another dtype here) was left in place for the
    // step to refuse; zero_grad must still replace it by the buffer's zeroed view, as it does every other gradient.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Zero_grad_replaces_a_gradient_that_did_not_fit_when_the_optimizer_was_made(bool direct)
    {
        var ps = new[] { new Parameter(randn(4)), new Parameter(randn(2, 3)) };
        ps[0].grad = ones(4);
        ps[1].grad = ones(2, 3, dtype: ScalarType.Float64);
        using var opt = new SGD(ps, lr: 0.1, flat: true);
        SetDirectGradientReads(opt, direct);
        opt.zero_grad();
        foreach (var p in ps)
        {
            using var grad = p.grad!;
            grad.dtype.Should().Be(ScalarType.Float32);
            grad.count_nonzero().item<long>().Should().Be(0);
            IsViewOfBuffer(opt, p).Should().BeTrue();
        }
    }

    [Fact]
    public void Disposing_a_parameter_after_flattening_is_an_error()
    {
        var ps = new[] { new Parameter(randn(4)), new Parameter(randn(2, 2)) };
        using var opt = new SGD(ps.Select((p, i) => ($"w{i}", p)), lr: 0.1, flat: true);
        ps[1].Dispose();
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("parameter 'w1' has been disposed*");
    }

    // The direct reads are what the benchmarks measure on Linux x64: their self-test must pass there.
    [Fact]
    public void Direct_gradient_reads_hold_on_linux_x64()
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64) return;
        TensorMemory.DirectGradientReads.Should().BeTrue();
    }

    // A step first reads every parameter's and gradient's fields in place, prefetched a few parameters ahead, and only
    // where something differs goes through them one by one. Each change it must notice is made here at a parameter deep
    // into a long list (past the prefetch ring's wrap) and at the first and last; had the quick read missed one, the step
    // would have run on the buffer as it was.
    [Theory]
    [InlineData(0)]
    [InlineData(77)]
    [InlineData(99)]
    public void The_quick_check_notices_every_change_at_any_parameter(int at)
    {
        if (!TensorMemory.DirectGradientReads) return;
        var changes = new (string What, Action<List<Parameter>> Change)[]
        {
            ("a gradient assigned", ps => ps[at].grad = ones_like(ps[at])),
            ("a gradient released", ps => ps[at].grad = null),
            ("the parameter set_ to another tensor", ps => { using (no_grad()) ps[at].set_(randn(ps[at].shape)); }),
            ("the parameter set_ to another parameter's memory in the buffer", ps => { using (no_grad()) ps[at].set_(ps[(at + 1) % ps.Count]); }),
            ("the gradient view set_ to other memory", ps => { using var g = ps[at].grad!; g.set_(zeros(g.shape)); }),
            ("the gradient view set_ to another gradient's memory in the buffer", ps => { using var g = ps[at].grad!; using var other = ps[(at + 1) % ps.Count].grad!; g.set_(other); }),
            ("the gradient view set_ to an empty view at its own address", ps => { using var g = ps[at].grad!; using var empty = g.flatten().narrow(0, 0, 0); g.set_(empty); }),
            ("the parameter set_ to an empty view at its own address", ps => { using (no_grad()) { using var empty = ps[at].flatten().narrow(0, 0, 0); ps[at].set_(empty); } }),
            ("the parameter disposed", ps => ps[at].Dispose()),
        };
        foreach (var (what, change) in changes)
        {
            var ps = Enumerable.Range(0, 100).Select(i => new Parameter(randn(3 + i % 5))).ToList();
            using var opt = new SGD(ps, lr: 0.1, flat: true);
            var buffer = BuffersOf(opt).Single();
            buffer.AllInPlace().Should().BeTrue($"nothing changed yet ({what})");
            opt.step();
            buffer.AllInPlace().Should().BeTrue($"a step changes nothing it checks ({what})");
            change(ps);
            buffer.AllInPlace().Should().BeFalse(what);
            foreach (var p in ps.Where(p => !p.IsInvalid)) p.Dispose();
        }
        // A disposed buffer forgets the views it freed: nothing reads them afterwards.
        var last = Enumerable.Range(0, 40).Select(_ => new Parameter(randn(3))).ToList();
        var disposed = new SGD(last, lr: 0.1, flat: true);
        var lastBuffer = BuffersOf(disposed).Single();
        disposed.Dispose();
        lastBuffer.AllInPlace().Should().BeFalse("the buffer was disposed");
        foreach (var p in last) p.Dispose();
    }

    // A gradient view or a parameter emptied in place keeps its first address: the step must still refuse it, as
    // libtorch's data_ptr() (null for an empty tensor) made it do, and leave the parameters as they were.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Emptying_a_gradient_view_or_a_parameter_in_place_is_an_error(bool direct)
    {
        foreach (var gradient in new[] { true, false })
        {
            var ps = new[] { new Parameter(randn(4)), new Parameter(randn(2, 3)) };
            using var opt = new SGD(ps, lr: 0.1, flat: true);
            SetDirectGradientReads(opt, direct);
            foreach (var p in ps) p.grad = ones_like(p);
            opt.step();
            var before = ps.Select(p => p.detach().clone()).ToList();
            if (gradient)
            {
                using var g = ps[1].grad!;
                using var empty = g.flatten().narrow(0, 0, 0);
                g.set_(empty);
            }
            else
            {
                using var _ = no_grad();
                using var empty = ps[1].flatten().narrow(0, 0, 0);
                ps[1].set_(empty);
            }
            var act = () => opt.step();
            if (gradient && !direct)
            {
                // Read through handles, the emptied view shows as another tensor, which does not fit: refused as such.
                act.Should().Throw<InvalidOperationException>().WithMessage("*gradient*");
            }
            else
            {
                act.Should().Throw<InvalidOperationException>().WithMessage(gradient ? "*was moved in place*" : "*no longer lies in the optimizer's flat buffer*");
            }
            Trajectories.BitwiseEqual(ps[0], before[0]).Should().BeTrue(gradient ? "the gradient view was emptied" : "the parameter was emptied");
            foreach (var p in ps) p.Dispose();
        }
    }

    [Fact]
    public void A_gradient_that_does_not_fit_is_refused_before_anything_changes()
    {
        var (_, ps) = Model(seed: 2);
        using var opt = new Adam(ps, lr: 0.1, flat: true);
        foreach (var p in ps) p.grad = ones_like(p);
        opt.step();
        var before = ps.Select(p => p.detach().clone()).ToList();
        ps[1].grad = ones(3, dtype: ScalarType.Float64);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*gradient of parameter*");
        for (var i = 0; i < ps.Count; i++) Trajectories.BitwiseEqual(ps[i], before[i]).Should().BeTrue();
    }

    [Fact]
    public void A_non_finite_gradient_is_named_when_checked()
    {
        var ps = new[] { new Parameter(randn(4)), new Parameter(randn(2, 2)) };
        using var opt = new SGD(ps.Select((p, i) => ($"w{i}", p)), lr: 0.1, flat: true) { CheckFiniteGradients = true };
        opt.Flat.Should().BeTrue();
        foreach (var p in ps) p.grad = ones_like(p);
        using (var grad = ps[1].grad!) grad[1, 0] = tensor(float.NaN);
        var before = ps.Select(p => p.detach().clone()).ToList();
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("the gradient of parameter 'w1' contains NaN or infinity");
        for (var i = 0; i < ps.Length; i++) Trajectories.BitwiseEqual(ps[i], before[i]).Should().BeTrue();
    }

    // module.to(...) after flattening converts the parameters to new memory (or replaces them): the next step must say
    // so, not keep updating the buffer the model no longer reads.
    [Fact]
    public void Moving_or_converting_the_module_after_flattening_is_an_error()
    {
        var (model, ps) = Model(seed: 4);
        using var opt = new SGD(ps, lr: 0.1, flat: true);
        model.to(ScalarType.Float64);
        foreach (var p in ps.Where(p => !p.IsInvalid)) p.grad = ones_like(p);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*parameter*");
    }

    [Fact]
    public void Set_on_a_parameter_after_flattening_is_an_error()
    {
        var ps = new[] { new Parameter(randn(4)), new Parameter(randn(2, 2)) };
        using var opt = new SGD(ps, lr: 0.1, flat: true);
        using (no_grad()) ps[1].set_(randn(2, 2));
        foreach (var p in ps) p.grad = ones_like(p);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*no longer lies in the optimizer's flat buffer*");
    }

    [Fact]
    public void Disposing_the_optimizer_leaves_the_parameters_and_gradients_valid()
    {
        var (model, ps) = Model(seed: 5);
        var opt = new Adam(ps, lr: 0.01, flat: true);
        Train(model, opt, 0, zero: () => opt.zero_grad());
        var values = ps.Select(p => p.detach().clone()).ToList();
        opt.Dispose();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        for (var i = 0; i < ps.Count; i++) Trajectories.BitwiseEqual(ps[i], values[i]).Should().BeTrue();
        using var x = Inputs(0);
        using var loss = model.forward(x).sum();
        loss.backward();
        using var again = new Adam(ps, lr: 0.01);
        again.step();
    }

    // A flat optimizer's checkpoint loads into one without flat buffers and back, and both resume bit for bit.
    public static TheoryData<string, Implementation> SteppedByGradients() =>
        Algorithms.AlgorithmsAndPaths(a => a.RequiresClosure || a.RequiresSparseGradients || a.RequiresMatrices,
            "the cases step dense vectors without a closure (Muon: Muon_steps_per_matrix_in_flat_mode; SparseAdam: Sparse_gradient_algorithms_refuse_flat_mode)");

    [Theory]
    [MemberData(nameof(SteppedByGradients))]
    public void Checkpoints_move_between_flat_and_plain_bit_for_bit(string algorithm, Implementation impl)
    {
        var info = Algorithms.Get(algorithm);
        foreach (var (fromFlat, toFlat) in new[] { (true, false), (false, true) })
        {
            var c = RandomCases.Make(ScalarType.Float32, seed: 99, steps: 8);
            var straightParams = c.MakeParameters();
            using var straight = Algorithms.Create(info, straightParams, impl, flat: toFlat);
            var expected = c.Run(straightParams, straight);

            var firstParams = c.MakeParameters();
            using var first = Algorithms.Create(info, firstParams, impl, flat: fromFlat);
            var trajectory = c.Run(firstParams, first, 0, 4);
            using var stream = new MemoryStream();
            first.Save(stream);
            var resumedParams = firstParams.Select(p => new Parameter(p.detach().clone())).ToList();
            using var resumed = Algorithms.Create(info, resumedParams, impl, flat: toFlat);
            stream.Position = 0;
            resumed.Load(stream);
            trajectory.AddRange(c.Run(resumedParams, resumed, 4, 8));

            var because = $"{(fromFlat ? "flat" : "plain")} to {(toFlat ? "flat" : "plain")}";
            if (impl == Implementation.Fused) Trajectories.ShouldBeClose(trajectory, expected, 2e-6, 2e-5, because);
            else Trajectories.ShouldBeBitwise(trajectory, expected, because);
            StatesShouldMatch(resumed, resumedParams, straight, straightParams, bitwise: impl != Implementation.Fused);
        }
    }

    // A flat optimizer that has stepped holds its state as views of flat tensors. A checkpoint loaded into it, or a state
    // tensor replaced through ParameterState.Set, must be what its next step uses: the optimizer without flat buffers,
    // given the same load and the same Set, gives the bits to match. (Had the flat step kept its flat tensors, it would
    // have stepped from the state before the load.)
    [Theory]
    [MemberData(nameof(SteppedByGradients))]
    public void A_load_or_a_state_set_after_flat_steps_is_what_the_next_step_uses(string algorithm, Implementation impl)
    {
        var info = Algorithms.Get(algorithm);
        var c = RandomCases.Make(ScalarType.Float32, seed: 41, steps: 9);
        using var checkpoint = new MemoryStream();
        var sourceParams = c.MakeParameters();
        using (var source = Algorithms.Create(info, sourceParams, impl, flat: false))
        {
            c.Run(sourceParams, source, 0, 3);
            source.Save(checkpoint);
        }
        var runs = new List<List<double[][]>>();
        var states = new List<(Optimizer, List<Parameter>)>();
        foreach (var flat in new[] { false, true })
        {
            var ps = c.MakeParameters();
            var opt = Algorithms.Create(info, ps, impl, flat: flat);
            var trajectory = c.Run(ps, opt, 0, 2);
            checkpoint.Position = 0;
            opt.Load(checkpoint);
            trajectory.AddRange(c.Run(ps, opt, 3, 6));
            // Every tensor state of the first parameter replaced by the same new values.
            var state = opt.State[ps[0]];
            foreach (var key in state.Keys.ToList())
            {
                var old = state[key];
                if (old.ndim == 0) continue;
                using var generator = new Generator(5);
                state.Set(key, rand(old.shape, dtype: old.dtype, generator: generator).add_(0.5));
            }
            trajectory.AddRange(c.Run(ps, opt, 6, 9));
            runs.Add(trajectory);
            states.Add((opt, ps));
        }
        try
        {
            if (impl == Implementation.Fused) Trajectories.ShouldBeClose(runs[1], runs[0], 2e-6, 2e-5, "flat after a load and a Set");
            else Trajectories.ShouldBeBitwise(runs[1], runs[0], "flat after a load and a Set");
            StatesShouldMatch(states[1].Item1, states[1].Item2, states[0].Item1, states[0].Item2, bitwise: impl != Implementation.Fused);
            if (info.Name != "Adafactor") FlatSteps(states[1].Item1).Should().BeGreaterThan(0, "the flat path was taken");
        }
        finally
        {
            foreach (var (opt, ps) in states)
            {
                opt.Dispose();
                foreach (var p in ps) p.Dispose();
            }
        }
    }

    // Groups with their own options, a group added later, float32 and float64 parameters in one group (one buffer each)
    // and a scheduler changing the learning rate.
    [Fact]
    public void Groups_mixed_dtypes_added_groups_and_schedulers_work()
    {
        List<Parameter> Make() => new()
        {
            new Parameter(arange(6, dtype: ScalarType.Float32).reshape(2, 3) / 7), new Parameter(linspace(-1, 1, 5, dtype: ScalarType.Float64)),
            new Parameter(full(4, 0.25f)), new Parameter(arange(3, dtype: ScalarType.Float64) - 1),
        };
        List<double[][]> Run(bool flat, out Optimizer opt, out List<Parameter> ps)
        {
            ps = Make();
            var rmsprop = new RMSprop(new[]
            {
                new ParamGroupSpec<RMSpropOptions>(ps.Take(2)),
                new ParamGroupSpec<RMSpropOptions>(ps.Skip(2).Take(1), o => o with { Lr = 0.05, Momentum = 0.5 }),
            }, lr: 0.01, centered: true, flat: flat);
            var scheduler = new Optim.Schedulers.StepLR(rmsprop, step_size: 2, gamma: 0.5);
            var trajectory = new List<double[][]>();
            var last = ps;
            for (var s = 0; s < 7; s++)
            {
                if (s == 3) rmsprop.AddParamGroup(new ParamGroupSpec<RMSpropOptions>(new[] { last[3] }, o => o with { Lr = 0.02 }));
                var active = s < 3 ? 3 : 4;
                for (var i = 0; i < active; i++) last[i].grad = sin(last[i].detach() * (s + 1)) + 0.1 * (i + 1);
                rmsprop.step();
                scheduler.step();
                trajectory.Add(last.Select(GoldenCase.Values).ToArray());
            }
            opt = rmsprop;
            return trajectory;
        }
        var actual = Run(true, out var flatOpt, out var flatParams);
        var expected = Run(false, out var plainOpt, out var plainParams);
        Trajectories.ShouldBeBitwise(actual, expected);
        FlatSteps(flatOpt).Should().BeGreaterThan(10);
        ((RMSprop)flatOpt).FlatBuffersOf(0)!.Count.Should().Be(2, "float32 and float64 get one buffer each");
        StatesShouldMatch(flatOpt, flatParams, plainOpt, plainParams, bitwise: true);
        flatOpt.Dispose();
        plainOpt.Dispose();
    }

    // A gradient scaler's overflow flag reaches the fused kernel over the buffer: the step is skipped and no count moves.
    [Theory]
    [MemberData(nameof(Algorithms.FusedNameData), MemberType = typeof(Algorithms))]
    public void Found_inf_skips_the_fused_flat_step(string algorithm)
    {
        var info = Algorithms.Get(algorithm);
        var (model, ps) = Model(seed: 6);
        using var opt = Algorithms.Create(info, ps, Implementation.Fused, flat: true);
        Train(model, opt, 0, zero: () => opt.zero_grad());
        var snapshot = StateSnapshot.Of(opt, ps);
        var values = ps.Select(p => p.detach().clone()).ToList();
        using var scale = tensor(4.0f);
        using var found = tensor(1.0f);
        opt.GradScale = scale;
        opt.FoundInf = found;
        Train(model, opt, 1, zero: () => opt.zero_grad());
        for (var i = 0; i < ps.Count; i++) Trajectories.BitwiseEqual(ps[i], values[i]).Should().BeTrue();
        StateSnapshot.Of(opt, ps).Should().BeEquivalentTo(snapshot, o => o.WithStrictOrdering());
        FlatSteps(opt).Should().Be(2);
    }

    // A sparse gradient cannot be a view of a dense buffer: asking for flat mode is refused when the optimizer is made,
    // before any parameter has moved.
    [Fact]
    public void Sparse_gradient_algorithms_refuse_flat_mode()
    {
        var ps = new[] { new Parameter(randn(4, 3)) };
        var before = ps[0].detach().clone();
        var pointer = TensorMemory.DataPointer(ps[0]);
        // SparseAdam's constructors have no flat argument; the catalog's factory takes one for every algorithm.
        var act = () => Algorithms.Get("SparseAdam").Create(ps, Array.Empty<KeyValuePair<string, object?>>(), flat: true);
        act.Should().Throw<ArgumentException>().WithMessage("*SparseAdam has no flat mode*").Which.ParamName.Should().Be("flat");
        Trajectories.BitwiseEqual(ps[0], before).Should().BeTrue();
        TensorMemory.DataPointer(ps[0]).Should().Be(pointer, "the parameter was not moved into a buffer");
    }

    // Muon orthogonalizes whole matrices, so in flat mode its parameters, gradients and state live in buffers but each
    // matrix steps on its own: the same numbers as without flat buffers, and checkpoints that move between the two.
    [Fact]
    public void Muon_steps_per_matrix_in_flat_mode()
    {
        List<Parameter> Matrices() { manual_seed(3); return new List<Parameter> { new(randn(4, 3)), new(randn(2, 5)), new(randn(3, 3)) }; }
        var flatParams = Matrices();
        var plainParams = Matrices();
        using var flat = new Muon(flatParams, lr: 0.02, flat: true);
        using var plain = new Muon(plainParams, lr: 0.02);
        flat.Flat.Should().BeTrue();
        void Step(Optimizer opt, IReadOnlyList<Parameter> ps, int s)
        {
            for (var i = 0; i < ps.Count; i++)
            {
                using var generator = new Generator((ulong)(10 * s + i));
                using var g = randn(ps[i].shape, generator: generator);
                if (ps[i].grad is { } existing) existing.copy_(g); else ps[i].grad = g.clone();
            }
            opt.step();
        }
        for (var s = 0; s < 4; s++) { Step(flat, flatParams, s); Step(plain, plainParams, s); }
        ParametersShouldMatch(flatParams, plainParams, bitwise: true);
        StatesShouldMatch(flat, flatParams, plain, plainParams, bitwise: true);
        FlatSteps(flat).Should().Be(0, "Newton-Schulz works on whole matrices");

        using var stream = new MemoryStream();
        flat.Save(stream);
        stream.Position = 0;
        var resumedParams = flatParams.Select(p => new Parameter(p.detach().clone())).ToList();
        using var resumed = new Muon(resumedParams, lr: 0.02);
        resumed.Load(stream);
        for (var s = 4; s < 7; s++) { Step(resumed, resumedParams, s); Step(plain, plainParams, s); }
        ParametersShouldMatch(resumedParams, plainParams, bitwise: true);
    }

    private static void ParametersShouldMatch(IReadOnlyList<Parameter> actual, IReadOnlyList<Parameter> expected, bool bitwise)
    {
        if (bitwise)
        {
            for (var i = 0; i < expected.Count; i++) Trajectories.BitwiseEqual(actual[i], expected[i]).Should().BeTrue($"parameter {i}");
            return;
        }
        Trajectories.ShouldBeClose(new List<double[][]> { actual.Select(GoldenCase.Values).ToArray() },
            new List<double[][]> { expected.Select(GoldenCase.Values).ToArray() }, 2e-6, 2e-5);
    }

    // The same state (and groups, parameters and optimizer-wide state): bit for bit, or for the fused kernels within
    // their tolerance, with the same keys and step counts.
    private static void StatesShouldMatch(Optimizer actual, IReadOnlyList<Parameter> actualParams, Optimizer expected,
        IReadOnlyList<Parameter> expectedParams, bool bitwise)
    {
        if (bitwise)
        {
            StateSnapshot.Of(actual, actualParams).Should().Equal(StateSnapshot.Of(expected, expectedParams));
            return;
        }
        for (var i = 0; i < expectedParams.Count; i++)
        {
            expected.State.TryGetValue(expectedParams[i], out var e);
            actual.State.TryGetValue(actualParams[i], out var a);
            (a is null).Should().Be(e is null, $"param {i} has state in both or neither");
            if (e is null) continue;
            a!.Keys.Should().Equal(e.Keys, $"param {i}");
            foreach (var key in e.Keys)
            {
                var ev = GoldenCase.Values(e[key]);
                var av = GoldenCase.Values(a[key]);
                av.Length.Should().Be(ev.Length);
                for (var j = 0; j < ev.Length; j++) av[j].Should().BeApproximately(ev[j], 2e-6 + 2e-5 * Math.Abs(ev[j]), $"state '{key}' of param {i}");
            }
        }
    }

    private static IReadOnlyList<FlatBuffer> BuffersOf(Optimizer opt) => opt.FlatBuffersOf(0)!;

    private static void SetDirectGradientReads(Optimizer opt, bool direct)
    {
        foreach (var buffer in BuffersOf(opt))
        {
            buffer.DirectGradientReads = direct;
            buffer.DirectGradientReads.Should().Be(direct && TensorMemory.DirectGradientReads);
        }
    }

    private static bool IsViewOfBuffer(Optimizer opt, Parameter p)
    {
        using var grad = p.grad;
        if (grad is null) return false;
        var buffers = BuffersOf(opt);
        var data = (long)TensorMemory.DataPointer(grad);
        return buffers.Any(b => data >= (long)TensorMemory.DataPointer(b.Grads) && data < (long)TensorMemory.DataPointer(b.Grads) + b.Numel * b.Grads.ElementSize);
    }

    private sealed class TwoLayers : nn.Module<Tensor, Tensor>
    {
        public readonly Linear first;
        public readonly Linear second;

        public TwoLayers(bool bias) : base(nameof(TwoLayers))
        {
            first = nn.Linear(4, 3, hasBias: bias);
            second = nn.Linear(3, 2, hasBias: bias);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var h = first.forward(x);
            using var a = h.tanh();
            return second.forward(a);
        }
    }

    // The weights come from the seed's own generator, not the global one, which tests running alongside also draw
    // from (a flat model and its plain twin must start equal).
    private static (TwoLayers Model, List<Parameter> Parameters) Model(int seed, bool bias = true)
    {
        var model = new TwoLayers(bias);
        using var generator = new Generator((ulong)seed);
        using (no_grad())
        {
            foreach (var p in model.parameters())
            {
                using var values = rand(p.shape, generator: generator).sub_(0.5);
                p.copy_(values);
            }
        }
        return (model, model.parameters().ToList());
    }

    private static Tensor Inputs(int step)
    {
        using var generator = new Generator((ulong)(100 + step));
        return randn(new long[] { 8, 4 }, generator: generator);
    }

    // One training step: zero the gradients as given, backward a loss, step (through a closure for LBFGS); the inputs on
    // the model's device.
    private static void Train(TwoLayers model, Optimizer opt, int step, Action zero, Device? device = null)
    {
        using var scope = NewDisposeScope();
        var x = device is null ? Inputs(step) : Inputs(step).to(device);
        Tensor Loss()
        {
            zero();
            var loss = model.forward(x).pow(2).mean();
            loss.backward();
            return loss;
        }
        if (AlgorithmCatalog.Of(opt) is { RequiresClosure: true }) opt.step(Loss);
        else
        {
            Loss();
            opt.step();
        }
    }
}

// Tensor.TotalCount counts every thread's tensors: the count runs in the collection that runs alone.
[Collection(nameof(LeakTests))]
public class FlatLeakTests
{
    // The first flat optimizer of a process runs the direct reads' self-test: it must leave no tensor behind (it used to
    // leave two, the wrappers TorchSharp's Parameter constructor takes its tensors from).
    [Fact]
    public void The_direct_reads_self_test_leaves_no_tensor()
    {
        var before = Tensor.TotalCount;
        TensorMemory.SelfTest().Should().Be(TensorMemory.DirectGradientReads);
        (Tensor.TotalCount - before).Should().Be(0);
    }

    [Theory]
    [MemberData(nameof(FlatTests.DenseAlgorithmsAndPaths), MemberType = typeof(FlatTests))]
    public void A_flat_step_keeps_the_native_tensor_count_flat(string algorithm, Implementation impl)
    {
        var info = Algorithms.Get(algorithm);
        // Whole buffers, then slices of 7 elements.
        foreach (var slice in new long?[] { null, 7 })
        {
            var ps = new[] { new Parameter(randn(Algorithms.Shape(info, 10))), new Parameter(randn(3, 3)), new Parameter(randn(Algorithms.Shape(info))) };
            using var opt = Algorithms.Create(info, ps, impl, flat: true);
            if (slice is { } elements) FlatTests.SliceFlatBuffers(opt, elements);
            LeakTests.LiveTensorsAfter(opt, ps, 200).Should().Be(0, $"slices of {slice?.ToString() ?? "the whole buffer"}");
        }
    }

    // Disposing a flat optimizer frees every tensor it made (buffers, views, state), as disposing the same optimizer
    // without flat buffers does. One wrapper per buffer is TorchSharp's, measured here: its Parameter constructor moves
    // the native tensor out of the one it is given, whose wrapper then never counts as disposed.
    [Fact]
    public void Disposing_a_flat_optimizer_frees_every_tensor_it_made()
    {
        var start = Tensor.TotalCount;
        using (var source = empty(3))
        using (new Parameter(source, requires_grad: false))
        {
        }
        var perBuffer = Tensor.TotalCount - start;
        // Whole, then in 6 slices of at most 7 of the 40 elements (each slice's parameter is a Parameter too).
        foreach (var (slice, parameters) in new (long?, int)[] { (null, 1), (7, 7) })
        {
            var ps = new[] { new Parameter(randn(20)), new Parameter(randn(4, 5)) };
            foreach (var p in ps) p.grad = randn_like(p);
            var before = Tensor.TotalCount;
            var opt = new RMSprop(ps, momentum: 0.9, centered: true, implementation: Implementation.ForLoop, flat: true);
            if (slice is { } elements) FlatTests.SliceFlatBuffers(opt, elements);
            opt.step();
            opt.step();
            opt.Dispose();
            (Tensor.TotalCount - before).Should().Be(perBuffer * parameters, $"slices of {slice?.ToString() ?? "the whole buffer"}");
            foreach (var p in ps) p.Dispose();
        }
    }
}
