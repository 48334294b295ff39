using System;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// A bad gradient is an error before anything changes: with three parameters of which only the last has a bad
/// gradient, no parameter, no state tensor, no step count and no option moves, on every algorithm and every path.
/// </summary>
public class GradientValidationTests
{
    public static TheoryData<string, Implementation, string> Cases()
    {
        var data = new TheoryData<string, Implementation, string>();
        foreach (var (algorithm, impl) in Algorithms.AlgorithmsAndPaths().Select(r => ((string)r[0], (Implementation)r[1])))
            foreach (var kind in new[] { "sparse", "shape", "dtype", "device", "non-finite (checked)" })
                data.Add(algorithm, impl, kind);
        return data;
    }

    private static Parameter[] ThreeParameters(AlgorithmInfo? algorithm = null) =>
        new[] { new Parameter(torch.randn(algorithm is null ? new long[] { 5 } : Algorithms.Shape(algorithm, 5))), new Parameter(torch.randn(2, 3)), new Parameter(torch.randn(3, 4)) };

    // For an algorithm that requires sparse gradients (SparseAdam), "sparse" is a dense gradient (the other layout) and
    // the other kinds are sparse.
    private static Tensor BadGradient(AlgorithmInfo algorithm, string kind) => (kind, algorithm.RequiresSparseGradients) switch
    {
        ("sparse", true) => torch.randn(3, 4),
        // ATen cannot make a meta tensor sparse; it can build a sparse one from meta indices and values.
        ("device", true) => torch.sparse_coo_tensor(torch.empty(new long[] { 1, 2 }, ScalarType.Int64, torch.META),
            torch.empty(new long[] { 2, 4 }, device: torch.META), new long[] { 3, 4 }),
        _ => Algorithms.Gradient(algorithm, BadGradient(kind)),
    };

    private static Tensor BadGradient(string kind) => kind switch
    {
        "sparse" => torch.randn(3, 4).to_sparse(),
        "shape" => torch.randn(4, 3),
        "dtype" => torch.randn(3, 4, dtype: ScalarType.Float64),
        "device" => torch.empty(new long[] { 3, 4 }, device: torch.META),
        _ => torch.full(new long[] { 3, 4 }, float.NaN),
    };

    private static string ExpectedMessage(string algorithm, string kind) => kind switch
    {
        // PyTorch's text where it has one; PyTorch's SGD and Adagrad do take sparse gradients, ours refuse them.
        "sparse" when Algorithms.Get(algorithm).RequiresSparseGradients => $"{algorithm} does not support dense gradients, please consider Adam instead",
        "sparse" => Algorithms.Profile(Algorithms.Get(algorithm)).SparseGradientMessage ?? $"{algorithm} does not support sparse gradients",
        "shape" => "the gradient of parameter '0.2' is Float32 [4, 3] on cpu, but the parameter is Float32 [3, 4] on cpu",
        "dtype" => "the gradient of parameter '0.2' is Float64 [3, 4] on cpu, but the parameter is Float32 [3, 4] on cpu",
        "device" => "the gradient of parameter '0.2' is Float32 [3, 4] on meta, but the parameter is Float32 [3, 4] on cpu",
        _ => "the gradient of parameter '0.2' contains NaN or infinity",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_bad_third_gradient_changes_no_parameter_and_no_state(string algorithm, Implementation impl, string kind)
    {
        var info = Algorithms.Get(algorithm);
        var ps = ThreeParameters(info);
        using var opt = Algorithms.Create(algorithm, ps, impl);
        opt.CheckFiniteGradients = kind.StartsWith("non-finite", StringComparison.Ordinal);
        // Two good steps first, so there are step counts and buffers to disturb.
        for (var i = 0; i < 2; i++)
        {
            foreach (var p in ps) p.grad = Algorithms.Gradient(info, torch.randn_like(p));
            Algorithms.Step(opt);
        }
        foreach (var p in ps) p.grad = Algorithms.Gradient(info, torch.randn_like(p));
        ps[2].grad = BadGradient(info, kind);
        var goodGradients = ps.Take(2).Select(p => p.grad!.clone()).ToList();
        var before = StateSnapshot.Of(opt, ps);

        // LBFGS checks the gradients at every evaluation of its closure, and restores everything when one is bad.
        var act = () => Algorithms.Step(opt);
        var thrown = kind == "sparse"
            ? act.Should().Throw<NotSupportedException>().Which as Exception
            : act.Should().Throw<InvalidOperationException>().Which;
        thrown.Message.Should().Be(ExpectedMessage(algorithm, kind));

        StateSnapshot.Of(opt, ps).Should().Equal(before);
        for (var i = 0; i < 2; i++) Trajectories.BitwiseEqual(ps[i].grad!, goodGradients[i]).Should().BeTrue("gradients are never modified");
    }

    [Fact]
    public void A_malformed_grad_scale_is_an_error_before_any_group_gets_state()
    {
        // Checked before the first group runs, not when the first fused bucket asks for it.
        var ps = ThreeParameters();
        using var opt = new Adam(new[]
        {
            new ParamGroupSpec<AdamOptions>(ps.Take(2)),
            new ParamGroupSpec<AdamOptions>(ps.Skip(2), o => o with { Lr = 0.5 }),
        }, implementation: Implementation.Fused) { GradScale = torch.ones(2) };
        foreach (var p in ps) p.grad = torch.randn_like(p);
        var before = StateSnapshot.Of(opt, ps);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("GradScale must hold one element, not 2.");
        opt.State.Should().BeEmpty();
        StateSnapshot.Of(opt, ps).Should().Equal(before);
    }

    [Fact]
    public void State_that_cannot_be_created_for_a_later_group_fails_the_step_before_any_update_and_creates_no_state()
    {
        // Adagrad creates its state eagerly, but a state dict may lack some parameters' state; it is then created on
        // their next step, from the group's initial_accumulator_value, which may no longer fit the dtype.
        var a = new Parameter(torch.ones(2));
        var c = new Parameter(torch.ones(3));
        var b = new Parameter(torch.ones(2, dtype: ScalarType.Float16));
        using var opt = new Adagrad(new[]
        {
            new ParamGroupSpec<AdagradOptions>(new[] { a, c }),
            new ParamGroupSpec<AdagradOptions>(new[] { b }),
        }, lr: 0.1);
        var saved = opt.StateDict();
        opt.LoadStateDict(saved with { State = saved.State.Where(s => s.Key == 0).ToDictionary(s => s.Key, s => s.Value) });
        opt.ParamGroups[1].Options = opt.ParamGroups[1].Options with { InitialAccumulatorValue = 1e5 }; // overflows float16
        foreach (var p in new[] { a, c, b }) p.grad = torch.ones_like(p);
        var before = StateSnapshot.Of(opt, new[] { a, c, b });

        var act = () => opt.step();
        act.Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "initial_accumulator_value");
        opt.State.Keys.Should().Equal(a);
        StateSnapshot.Of(opt, new[] { a, c, b }).Should().Equal(before);
    }

    public static TheoryData<string, Implementation> ElementwiseAlgorithmsAndPaths() => Algorithms.AlgorithmsAndPaths(a => a.RequiresClosure || a.RequiresMatrices,
        "LBFGS's direction mixes every element through dot products (its two-loop recursion and line search), and Muon's " +
        "Newton–Schulz iteration through matrix products, so one non-finite gradient element reaches every parameter " +
        "element, in PyTorch too: 'only that element' is not their property");

    [Theory]
    [MemberData(nameof(ElementwiseAlgorithmsAndPaths))]
    public void Without_the_opt_in_check_NaN_and_infinity_propagate_as_in_PyTorch(string algorithm, Implementation impl)
    {
        // PyTorch checks nothing: a non-finite gradient element makes that parameter element non-finite, and only it.
        var p = new Parameter(torch.ones(4));
        using var opt = Algorithms.Create(algorithm, new[] { p }, impl);
        p.grad = Algorithms.Gradient(opt, torch.tensor(new[] { float.NaN, float.PositiveInfinity, 1f, -1f }));
        opt.step();
        var values = p.data<float>().ToArray();
        if (algorithm == "Rprop")
        {
            // Rprop moves by the gradient's sign only, and ATen's sign(NaN) is 0: in PyTorch the NaN element stays put,
            // the infinite one takes an ordinary step (maximizing: +lr), and only `prev` holds the non-finite values.
            values.Should().Equal(1f, 1.01f, 1.01f, 0.99f);
            return;
        }
        float.IsNaN(values[0]).Should().BeTrue();
        float.IsFinite(values[1]).Should().BeFalse();
        values.Skip(2).Should().OnlyContain(v => float.IsFinite(v));
    }

    [Theory]
    [MemberData(nameof(Algorithms.AlgorithmsAndPaths), MemberType = typeof(Algorithms))]
    public void A_bad_gradient_on_the_first_step_creates_no_state(string algorithm, Implementation impl)
    {
        var info = Algorithms.Get(algorithm);
        var ps = ThreeParameters(info);
        using var opt = Algorithms.Create(algorithm, ps, impl);
        var before = StateSnapshot.Of(opt, ps); // Adagrad's state exists from construction; the others' does not
        var stateBefore = opt.StateDict().State.Count;
        for (var i = 0; i < 2; i++) ps[i].grad = Algorithms.Gradient(info, torch.randn_like(ps[i]));
        ps[2].grad = BadGradient(info, "sparse");
        var act = () => Algorithms.Step(opt);
        act.Should().Throw<NotSupportedException>();
        opt.StateDict().State.Count.Should().Be(stateBefore);
        StateSnapshot.Of(opt, ps).Should().Equal(before);
    }
}
