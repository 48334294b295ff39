using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Optim.Kernels;
using Optim.Tests.Support;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests.Kernels;

/// <summary>
/// The TorchScript bridge: every foreach op gives the bits of the per-tensor op with the same double Scalar (on CPU
/// ATen's foreach kernels fall back to exactly those ops), the fused kernels follow PyTorch's formulas, and the bridge
/// compiles once, leaks nothing and can be called from many threads.
/// </summary>
public class AtenTests
{
    private readonly ITestOutputHelper _output;

    public AtenTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<ScalarType> FloatTypes => new() { ScalarType.Float32, ScalarType.Float64 };

    // 0-dim, a vector shorter than one SIMD register, and shapes whose sizes leave vector tails.
    private static readonly long[][] Shapes = { Array.Empty<long>(), new long[] { 3 }, new long[] { 4, 5 }, new long[] { 2, 3, 7 } };

    // Scalars that are not representable in float32, so a float-rounded Scalar would show in the float64 bits.
    private const double A = 0.1;
    private const double B = 1 - 0.999;
    private static readonly double[] PerTensor = { -(1e-3 / (1 - Math.Pow(0.9, 3))), Math.Sqrt(1 - Math.Pow(0.999, 7)), 1.0 / 3, 0.7 + 1e-12 };

    internal static List<Tensor> Make(ScalarType dtype, int seed, bool positive = false)
    {
        var gen = new Generator((ulong)seed);
        return Shapes.Select(s =>
        {
            var t = torch.randn(s, dtype, generator: gen);
            return positive ? t.abs_().add_(0.25) : t;
        }).ToList();
    }

    private static List<Tensor> Clone(IEnumerable<Tensor> ts) => ts.Select(t => t.clone()).ToList();

    private static void ShouldBeBitwise(IReadOnlyList<Tensor> actual, IReadOnlyList<Tensor> expected)
    {
        actual.Should().HaveSameCount(expected);
        for (var i = 0; i < expected.Count; i++)
            Trajectories.BitwiseEqual(actual[i], expected[i]).Should().BeTrue($"tensor {i} (shape [{string.Join(",", expected[i].shape)}]) must match bit for bit");
    }

    /// <summary>Runs <paramref name="foreach"/> on one copy and <paramref name="perTensor"/> on another, then compares.</summary>
    private static void InPlaceMatches(ScalarType dtype, Action<List<Tensor>> @foreach, Action<Tensor, int> perTensor, bool positive = false)
    {
        using var scope = NewDisposeScope();
        var self = Make(dtype, 1, positive);
        var expected = Clone(self);
        @foreach(self);
        for (var i = 0; i < expected.Count; i++) perTensor(expected[i], i);
        ShouldBeBitwise(self, expected);
    }

    private static void OutOfPlaceMatches(ScalarType dtype, Func<List<Tensor>, Tensor[]> @foreach, Func<Tensor, int, Tensor> perTensor, bool positive = false)
    {
        using var scope = NewDisposeScope();
        var self = Make(dtype, 1, positive);
        var before = Clone(self);
        var actual = @foreach(self);
        ShouldBeBitwise(actual, self.Select(perTensor).ToList());
        ShouldBeBitwise(self, before); // out of place: inputs untouched
    }

    // ---- foreach, bit for bit against the per-tensor op

    [Theory, MemberData(nameof(FloatTypes))]
    public void Add_scalar(ScalarType dt)
    {
        InPlaceMatches(dt, s => Aten.ForeachAdd_(s, A), (t, _) => t.add_(A));
        OutOfPlaceMatches(dt, s => Aten.ForeachAdd(s, B), (t, _) => t.add(B));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Add_list_with_alpha(ScalarType dt)
    {
        var other = Make(dt, 2);
        InPlaceMatches(dt, s => Aten.ForeachAdd_(s, other, B), (t, i) => t.add_(other[i], B));
        OutOfPlaceMatches(dt, s => Aten.ForeachAdd(s, other, A), (t, i) => t.add(other[i], A));
        InPlaceMatches(dt, s => Aten.ForeachAdd_(s, other), (t, i) => t.add_(other[i]));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Sub_list(ScalarType dt)
    {
        var other = Make(dt, 2);
        // TorchSharp's sub_ has no alpha; ATen's sub is add with -alpha, so this is the same kernel call.
        InPlaceMatches(dt, s => Aten.ForeachSub_(s, other, A), (t, i) => t.add_(other[i], -A));
        InPlaceMatches(dt, s => Aten.ForeachSub_(s, other), (t, i) => t.sub_(other[i]));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Mul_scalar_scalar_list_and_list(ScalarType dt)
    {
        var other = Make(dt, 3);
        InPlaceMatches(dt, s => Aten.ForeachMul_(s, B), (t, _) => t.mul_(B));
        InPlaceMatches(dt, s => Aten.ForeachMul_(s, PerTensor), (t, i) => t.mul_(PerTensor[i]));
        OutOfPlaceMatches(dt, s => Aten.ForeachMul(s, PerTensor), (t, i) => t.mul(PerTensor[i]));
        InPlaceMatches(dt, s => Aten.ForeachMul_(s, other), (t, i) => t.mul_(other[i]));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Div_scalar_and_scalar_list(ScalarType dt)
    {
        InPlaceMatches(dt, s => Aten.ForeachDiv_(s, A), (t, _) => t.div_(A));
        InPlaceMatches(dt, s => Aten.ForeachDiv_(s, PerTensor), (t, i) => t.div_(PerTensor[i]));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Neg(ScalarType dt)
    {
        OutOfPlaceMatches(dt, s => Aten.ForeachNeg(s), (t, _) => t.neg());
        InPlaceMatches(dt, s => Aten.ForeachNeg_(s), (t, _) => t.neg_());
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Lerp_scalar_weight(ScalarType dt)
    {
        var end = Make(dt, 4);
        InPlaceMatches(dt, s => Aten.ForeachLerp_(s, end, B), (t, i) => Aten.Lerp_(t, end[i], B));
        InPlaceMatches(dt, s => Aten.ForeachLerp_(s, end, 0.9), (t, i) => Aten.Lerp_(t, end[i], 0.9)); // weight >= 0.5 takes the other lerp formula
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Addcmul(ScalarType dt)
    {
        var t1 = Make(dt, 5);
        var t2 = Make(dt, 6);
        InPlaceMatches(dt, s => Aten.ForeachAddcmul_(s, t1, t2, B), (t, i) => t.addcmul_(t1[i], t2[i], B));
        InPlaceMatches(dt, s => Aten.ForeachAddcmul_(s, t1, t1), (t, i) => t.addcmul_(t1[i], t1[i], 1));
        OutOfPlaceMatches(dt, s => Aten.ForeachAddcmul(s, t1, t2, -1), (t, i) => t.addcmul(t1[i], t2[i], -1));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Addcdiv_scalar_and_scalar_list(ScalarType dt)
    {
        var t1 = Make(dt, 7);
        var t2 = Make(dt, 8, positive: true);
        InPlaceMatches(dt, s => Aten.ForeachAddcdiv_(s, t1, t2, -A), (t, i) => t.addcdiv_(t1[i], t2[i], -A));
        InPlaceMatches(dt, s => Aten.ForeachAddcdiv_(s, t1, t2), (t, i) => t.addcdiv_(t1[i], t2[i], 1));
        InPlaceMatches(dt, s => Aten.ForeachAddcdiv_(s, t1, t2, PerTensor), (t, i) => t.addcdiv_(t1[i], t2[i], PerTensor[i]));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Sqrt(ScalarType dt)
    {
        OutOfPlaceMatches(dt, s => Aten.ForeachSqrt(s), (t, _) => t.sqrt(), positive: true);
        InPlaceMatches(dt, s => Aten.ForeachSqrt_(s), (t, _) => t.sqrt_(), positive: true);
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Maximum_zero_and_copy(ScalarType dt)
    {
        var other = Make(dt, 9);
        InPlaceMatches(dt, s => Aten.ForeachMaximum_(s, other), (t, i) => t.copy_(torch.maximum(t, other[i])));
        InPlaceMatches(dt, s => Aten.ForeachZero_(s), (t, _) => t.zero_());
        InPlaceMatches(dt, s => Aten.ForeachCopy_(s, other), (t, i) => t.copy_(other[i]));
    }

    // ---- Adadelta/Adamax/ASGD

    [Theory, MemberData(nameof(FloatTypes))]
    public void Div_list(ScalarType dt)
    {
        var other = Make(dt, 10, positive: true);
        InPlaceMatches(dt, s => Aten.ForeachDiv_(s, other), (t, i) => t.div_(other[i]));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Sub_list_out_of_place(ScalarType dt)
    {
        var other = Make(dt, 11);
        OutOfPlaceMatches(dt, s => Aten.ForeachSub(s, other), (t, i) => t.sub(other[i]));
        OutOfPlaceMatches(dt, s => Aten.ForeachSub(s, other, A), (t, i) => t.add(other[i], -A));
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Abs(ScalarType dt)
    {
        OutOfPlaceMatches(dt, s => Aten.ForeachAbs(s), (t, _) => t.abs());
        InPlaceMatches(dt, s => Aten.ForeachAbs_(s), (t, _) => t.abs_());
    }

    [Theory, MemberData(nameof(FloatTypes))]
    public void Addcmul_with_0_dim_float32_tensors_broadcasts_as_ASGD_needs(ScalarType dt)
    {
        // _multi_tensor_asgd: _foreach_addcmul_(params, intermediate, etas, value=-1) with 0-dim float32 etas.
        var t1 = Make(dt, 12);
        var etas = PerTensor.Select(v => torch.tensor(v, ScalarType.Float32)).ToList();
        InPlaceMatches(dt, s => Aten.ForeachAddcmul_(s, t1, etas, -1), (t, i) => t.addcmul_(t1[i], etas[i], -1));
        InPlaceMatches(dt, s => Aten.ForeachAddcmul_(s, t1, etas), (t, i) => t.addcmul_(t1[i], etas[i], 1));
    }

    // ---- NAdam/RAdam/Rprop ----

    [Theory, MemberData(nameof(FloatTypes))]
    public void Add_scalar_list_mul_list_reciprocal_and_sign(ScalarType dt)
    {
        var other = Make(dt, 10);
        InPlaceMatches(dt, s => Aten.ForeachAdd_(s, PerTensor), (t, i) => t.add_(PerTensor[i]));
        OutOfPlaceMatches(dt, s => Aten.ForeachMul(s, other), (t, i) => t.mul(other[i]));
        InPlaceMatches(dt, s => Aten.ForeachReciprocal_(s), (t, _) => t.reciprocal_());
        InPlaceMatches(dt, s => Aten.ForeachSign_(s), (t, _) => t.sign_());
    }

    [Fact]
    public void Sign_and_reciprocal_keep_zeros_and_infinities_as_ATen_does()
    {
        // RAdam's foreach path divides by -0.0 on unrectified steps and takes the reciprocal of -inf; Rprop's signs meet zeros.
        using var scope = NewDisposeScope();
        var t = new List<Tensor> { torch.tensor(new[] { 0.0f, -0.0f, 2.0f, -3.0f, float.NegativeInfinity }) };
        var expected = t[0].sign();
        Aten.ForeachSign_(t);
        Trajectories.BitwiseEqual(t[0], expected).Should().BeTrue();
        var r = new List<Tensor> { torch.tensor(new[] { float.NegativeInfinity, float.PositiveInfinity, 4.0f }) };
        Aten.ForeachReciprocal_(r);
        r[0].data<float>().ToArray().Select(BitConverter.SingleToInt32Bits)
            .Should().Equal(new[] { -0.0f, 0.0f, 0.25f }.Select(BitConverter.SingleToInt32Bits));
        var lengths = () => Aten.ForeachAdd_(t, new[] { 1.0, 2.0 });
        lengths.Should().Throw<ArgumentException>().WithParameterName("scalars");
    }

    [Fact]
    public void Scalar_lists_reach_ATen_as_exact_doubles()
    {
        // A float64 tensor times a per-tensor double that float32 cannot hold: any rounding on the way would show.
        using var scope = NewDisposeScope();
        var t = new List<Tensor> { torch.ones(1, ScalarType.Float64), torch.ones(1, ScalarType.Float64) };
        var values = new[] { 0.1 + 1e-15, Math.PI };
        Aten.ForeachMul_(t, values);
        t[0].item<double>().Should().Be(values[0]);
        t[1].item<double>().Should().Be(values[1]);
    }

    [Fact]
    public void Empty_lists_are_a_no_op_and_mismatched_lengths_are_rejected()
    {
        using var scope = NewDisposeScope();
        Aten.ForeachAdd_(Array.Empty<Tensor>(), 1.0);
        Aten.ForeachSqrt(Array.Empty<Tensor>()).Should().BeEmpty();
        var two = Make(ScalarType.Float32, 1).Take(2).ToList();
        var act = () => Aten.ForeachAdd_(two, two.Take(1).ToList());
        act.Should().Throw<ArgumentException>().WithParameterName("other");
        var scalars = () => Aten.ForeachDiv_(two, new[] { 1.0 });
        scalars.Should().Throw<ArgumentException>().WithParameterName("scalars");
    }

    [Fact]
    public void Null_lists_and_null_elements_are_argument_errors_naming_the_list()
    {
        using var scope = NewDisposeScope();
        var two = Make(ScalarType.Float32, 1).Take(2).ToList();
        FluentActions.Invoking(() => Aten.ForeachAdd_(null!, 1.0)).Should().Throw<ArgumentNullException>().WithParameterName("self");
        FluentActions.Invoking(() => Aten.ForeachAdd_(two, (IReadOnlyList<Tensor>)null!)).Should().Throw<ArgumentNullException>().WithParameterName("other");
        FluentActions.Invoking(() => Aten.ForeachMul_(two, (IReadOnlyList<double>)null!)).Should().Throw<ArgumentNullException>().WithParameterName("scalars");
        FluentActions.Invoking(() => Aten.ForeachLerp_(two, new[] { two[0], null! }, 0.5)).Should().Throw<ArgumentNullException>()
            .WithParameterName("end").WithMessage("end[1] is null.*");
        FluentActions.Invoking(() => Aten.Lerp_(two[0], null!, 0.5)).Should().Throw<ArgumentNullException>().WithParameterName("end");
    }

    [Fact]
    public void The_out_of_place_scalar_multiply_gives_the_per_tensor_ops_bits_and_leaves_its_input()
    {
        using var scope = NewDisposeScope();
        var tensors = Make(ScalarType.Float32, 3);
        var before = tensors.Select(t => t.clone()).ToList();
        var products = Aten.ForeachMul(tensors, 0.9);
        for (var i = 0; i < tensors.Count; i++)
        {
            products[i].Should().NotBeSameAs(tensors[i]);
            Trajectories.BitwiseEqual(products[i], tensors[i].mul(0.9)).Should().BeTrue();
            Trajectories.BitwiseEqual(tensors[i], before[i]).Should().BeTrue();
        }
    }

    [Fact]
    public void Runs_without_recording_autograd_history_even_when_grad_is_enabled()
    {
        using var scope = NewDisposeScope();
        var leaf = torch.ones(3, requires_grad: true);
        var result = Aten.ForeachAdd(new[] { leaf }, new[] { leaf }, 2.0);
        result[0].requires_grad.Should().BeFalse();
        Aten.ForeachAdd_(new[] { leaf }, 1.0); // in-place on a leaf that requires grad: allowed under no_grad only
        leaf.data<float>().ToArray().Should().Equal(2f, 2f, 2f);
    }

    // ---- ownership of out-of-place results

    [Fact]
    public void Out_of_place_results_belong_to_the_current_dispose_scope()
    {
        var self = Make(ScalarType.Float32, 1);
        Tensor[] result;
        using (NewDisposeScope())
        {
            result = Aten.ForeachSqrt(self.Select(t => t.abs()).ToList());
            result.Should().HaveCount(self.Count).And.AllSatisfy(t => t.IsInvalid.Should().BeFalse());
        }
        result.Should().AllSatisfy(t => t.IsInvalid.Should().BeTrue("the scope disposed them"));
        foreach (var t in self) t.Dispose();
    }

    // ---- compile once, from any thread

    [Fact]
    public async Task Concurrent_first_calls_compile_the_unit_once()
    {
        const int threads = 8;
        using var barrier = new Barrier(threads);
        var tasks = Enumerable.Range(0, threads).Select(_ => Task.Factory.StartNew(() =>
        {
            using var scope = NewDisposeScope();
            var t = new[] { torch.zeros(4) };
            barrier.SignalAndWait();
            for (var k = 0; k < 50; k++) Aten.ForeachAdd_(t, 1.0);
            return t[0].data<float>().ToArray();
        }, TaskCreationOptions.LongRunning)).ToArray();
        var results = await Task.WhenAll(tasks);
        results.Should().AllSatisfy(r => r.Should().Equal(50f, 50f, 50f, 50f));
        Aten.Compilations.Should().Be(1, "the unit is compiled once per process, however many threads race to it");
    }

    // ---- fused kernels against PyTorch's per-tensor formulas

    // The fused CPU kernels compute each element in one pass: exp_avg as m*b1 + g*(1-b1) instead of lerp, the param
    // update as p - step_size*m/denom instead of addcdiv, with the double hyperparameters cast to the tensor dtype
    // inside the vector loop. Each step therefore differs from the op-by-op formula by a few ulp, and the differences
    // feed into later steps. Tolerances are relative to the value and ~100x the per-step rounding (fp32 eps 1.2e-7,
    // fp64 eps 2.2e-16) over 5 steps; the measured maxima are printed by the test.
    private static double Rtol(ScalarType dt) => dt == ScalarType.Float32 ? 2e-5 : 1e-13;

    private static readonly long[][] FusedShapes = { Array.Empty<long>(), new long[] { 3 }, new long[] { 37 }, new long[] { 8, 9 } };

    private static List<Tensor> FusedMake(ScalarType dtype, Generator gen, bool positive = false) =>
        FusedShapes.Select(s =>
        {
            var t = torch.randn(s, ScalarType.Float64, generator: gen);
            if (positive) t.abs_().add_(0.1);
            return t.to(dtype);
        }).ToList();

    private double ShouldBeCloseRelative(IReadOnlyList<Tensor> actual, IReadOnlyList<Tensor> expected, double rtol, string what)
    {
        var worst = 0.0;
        for (var i = 0; i < expected.Count; i++)
        {
            var a = actual[i].to(ScalarType.Float64).flatten().data<double>().ToArray();
            var e = expected[i].to(ScalarType.Float64).flatten().data<double>().ToArray();
            for (var k = 0; k < e.Length; k++)
            {
                var rel = Math.Abs(a[k] - e[k]) / Math.Max(Math.Abs(e[k]), 1e-3);
                worst = Math.Max(worst, rel);
                rel.Should().BeLessThanOrEqualTo(rtol, $"{what}[{i}][{k}]: fused {a[k]:R} vs reference {e[k]:R}");
            }
        }
        _output.WriteLine($"{what}: max relative error {worst:E2} (tolerance {rtol:E0})");
        return worst;
    }

    private sealed record AdamCase(double Lr, double Beta1, double Beta2, double WeightDecay, double Eps, bool Amsgrad, bool Maximize);

    public static TheoryData<ScalarType, bool, bool, bool> AdamCases => new()
    {
        { ScalarType.Float32, false, false, false },
        { ScalarType.Float32, true, true, true },
        { ScalarType.Float64, false, false, false },
        { ScalarType.Float64, true, true, true },
    };

    [Theory, MemberData(nameof(AdamCases))]
    public void Fused_Adam_and_AdamW_follow_PyTorchs_formula(ScalarType dt, bool amsgrad, bool maximize, bool withDecay)
    {
        foreach (var decoupled in new[] { false, true })
        {
            using var scope = NewDisposeScope();
            var c = new AdamCase(1e-2, 0.9, 0.999, withDecay ? 0.05 : 0, 1e-8, amsgrad, maximize);
            var gen = new Generator(11);
            var p = FusedMake(dt, gen);
            var pRef = Clone(p);
            var m = p.Select(t => torch.zeros_like(t)).ToList();
            var v = p.Select(t => torch.zeros_like(t)).ToList();
            var vmax = p.Select(t => torch.zeros_like(t)).ToList();
            var mRef = Clone(m);
            var vRef = Clone(v);
            var vmaxRef = Clone(vmax);
            var steps = p.Select(_ => torch.tensor(0f)).ToList();
            for (var step = 1; step <= 5; step++)
            {
                var g = FusedMake(dt, gen);
                var gBefore = Clone(g);
                Aten.ForeachAdd_(steps, 1.0);
                if (decoupled) Aten.FusedAdamW_(p, g, m, v, vmax, steps, c.Lr, c.Beta1, c.Beta2, c.WeightDecay, c.Eps, c.Amsgrad, c.Maximize);
                else Aten.FusedAdam_(p, g, m, v, vmax, steps, c.Lr, c.Beta1, c.Beta2, c.WeightDecay, c.Eps, c.Amsgrad, c.Maximize);
                ShouldBeBitwise(g, gBefore); // without grad_scale the gradients are only read
                for (var i = 0; i < p.Count; i++) AdamReference(pRef[i], g[i], mRef[i], vRef[i], vmaxRef[i], step, c, decoupled);
            }
            steps.Should().AllSatisfy(s => s.item<float>().Should().Be(5f));
            var name = $"{(decoupled ? "AdamW" : "Adam")} {dt} amsgrad={amsgrad} maximize={maximize} wd={c.WeightDecay}";
            ShouldBeCloseRelative(p, pRef, Rtol(dt), name + " params");
            ShouldBeCloseRelative(m, mRef, Rtol(dt), name + " exp_avg");
            ShouldBeCloseRelative(v, vRef, Rtol(dt), name + " exp_avg_sq");
            if (amsgrad) ShouldBeCloseRelative(vmax, vmaxRef, Rtol(dt), name + " max_exp_avg_sq");
            else vmax.Should().AllSatisfy(t => t.count_nonzero().item<long>().Should().Be(0));
        }
    }

    /// <summary>PyTorch 2.x's <c>_single_tensor_adam</c> for one tensor, op by op.</summary>
    private static void AdamReference(Tensor p, Tensor g, Tensor m, Tensor v, Tensor vmax, int step, AdamCase c, bool decoupled)
    {
        using var scope = NewDisposeScope();
        var grad = c.Maximize ? g.neg() : g;
        if (c.WeightDecay != 0)
        {
            if (decoupled) p.mul_(1 - c.Lr * c.WeightDecay);
            else grad = grad.add(p, c.WeightDecay);
        }
        Aten.Lerp_(m, grad, 1 - c.Beta1);
        v.mul_(c.Beta2).addcmul_(grad, grad, 1 - c.Beta2);
        var bc1 = 1 - Math.Pow(c.Beta1, step);
        var bc2 = 1 - Math.Pow(c.Beta2, step);
        var stepSize = c.Lr / bc1;
        var bc2Sqrt = Math.Sqrt(bc2);
        Tensor denom;
        if (c.Amsgrad)
        {
            vmax.copy_(torch.maximum(vmax, v));
            denom = (vmax.sqrt() / bc2Sqrt).add_(c.Eps);
        }
        else
        {
            denom = (v.sqrt() / bc2Sqrt).add_(c.Eps);
        }
        p.addcdiv_(m, denom, -stepSize);
    }

    public static TheoryData<ScalarType, double, double, bool, bool, double> SgdCases => new()
    {
        { ScalarType.Float32, 0, 0, false, false, 0 },
        { ScalarType.Float32, 0.9, 0.1, false, true, 0.01 },
        { ScalarType.Float32, 0.9, 0, true, false, 0.01 },
        { ScalarType.Float64, 0, 0, false, true, 0.01 },
        { ScalarType.Float64, 0.9, 0.1, false, false, 0 },
        { ScalarType.Float64, 0.9, 0, true, true, 0.01 },
    };

    [Theory, MemberData(nameof(SgdCases))]
    public void Fused_SGD_follows_PyTorchs_formula(ScalarType dt, double momentum, double dampening, bool nesterov, bool maximize, double wd)
    {
        using var scope = NewDisposeScope();
        const double lr = 0.05;
        var gen = new Generator(12);
        var p = FusedMake(dt, gen);
        var pRef = Clone(p);
        List<Tensor>? bufs = null;
        var bufsRef = new Tensor?[p.Count];
        for (var step = 1; step <= 5; step++)
        {
            var g = FusedMake(dt, gen);
            var first = bufs is null && momentum != 0;
            if (first) bufs = p.Select(t => torch.empty_like(t)).ToList();
            Aten.FusedSgd_(p, g, bufs ?? new List<Tensor>(), wd, momentum, lr, dampening, nesterov, maximize, isFirstStep: first);
            for (var i = 0; i < p.Count; i++)
            {
                using var inner = NewDisposeScope();
                var grad = maximize ? g[i].neg() : g[i];
                if (wd != 0) grad = grad.add(pRef[i], wd);
                if (momentum != 0)
                {
                    if (bufsRef[i] is null) bufsRef[i] = grad.detach().clone().MoveToOuterDisposeScope();
                    else bufsRef[i]!.mul_(momentum).add_(grad, 1 - dampening);
                    grad = nesterov ? grad.add(bufsRef[i]!, momentum) : bufsRef[i]!;
                }
                pRef[i].add_(grad, -lr);
            }
        }
        var name = $"SGD {dt} momentum={momentum} dampening={dampening} nesterov={nesterov} maximize={maximize} wd={wd}";
        ShouldBeCloseRelative(p, pRef, Rtol(dt), name + " params");
        if (momentum != 0) ShouldBeCloseRelative(bufs!, bufsRef!, Rtol(dt), name + " momentum_buffer");
    }

    public static TheoryData<ScalarType, double, double, bool> AdagradCases => new()
    {
        { ScalarType.Float32, 0, 0, false },
        { ScalarType.Float32, 0.01, 0.05, true },
        { ScalarType.Float64, 0, 0, false },
        { ScalarType.Float64, 0.01, 0.05, true },
    };

    [Theory, MemberData(nameof(AdagradCases))]
    public void Fused_Adagrad_follows_PyTorchs_formula(ScalarType dt, double lrDecay, double wd, bool maximize)
    {
        using var scope = NewDisposeScope();
        const double lr = 0.05, eps = 1e-10, initial = 0.1;
        var gen = new Generator(13);
        var p = FusedMake(dt, gen);
        var pRef = Clone(p);
        var sums = p.Select(t => torch.full_like(t, initial)).ToList();
        var sumsRef = Clone(sums);
        var steps = p.Select(_ => torch.tensor(0f)).ToList();
        for (var step = 1; step <= 5; step++)
        {
            var g = FusedMake(dt, gen);
            Aten.ForeachAdd_(steps, 1.0);
            Aten.FusedAdagrad_(p, g, sums, steps, lr, lrDecay, wd, eps, maximize);
            for (var i = 0; i < p.Count; i++)
            {
                using var inner = NewDisposeScope();
                var grad = maximize ? g[i].neg() : g[i];
                if (wd != 0) grad = grad.add(pRef[i], wd);
                var clr = lr / (1 + (step - 1) * lrDecay);
                sumsRef[i].addcmul_(grad, grad, 1);
                var std = sumsRef[i].sqrt().add_(eps);
                pRef[i].addcdiv_(grad, std, -clr);
            }
        }
        var name = $"Adagrad {dt} lr_decay={lrDecay} wd={wd} maximize={maximize}";
        ShouldBeCloseRelative(p, pRef, Rtol(dt), name + " params");
        ShouldBeCloseRelative(sums, sumsRef, Rtol(dt), name + " state_sum");
    }

    [Fact]
    public void Fused_Adam_runs_on_bfloat16_and_moves_params_against_the_gradient()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(14);
        var p = FusedMake(ScalarType.BFloat16, gen);
        var before = Clone(p);
        var g = FusedMake(ScalarType.BFloat16, gen, positive: true);
        var m = p.Select(t => torch.zeros_like(t)).ToList();
        var v = p.Select(t => torch.zeros_like(t)).ToList();
        var steps = p.Select(_ => torch.tensor(1f)).ToList();
        Aten.FusedAdam_(p, g, m, v, Array.Empty<Tensor>(), steps, 0.1, 0.9, 0.999, 0, 1e-8, amsgrad: false, maximize: false);
        for (var i = 0; i < p.Count; i++)
        {
            p[i].dtype.Should().Be(ScalarType.BFloat16);
            // First Adam step: the update is about lr * sign(grad), far above bf16's spacing at these magnitudes.
            (p[i] - before[i]).to(ScalarType.Float32).lt(0).all().item<bool>().Should().BeTrue($"param {i} should decrease");
        }
    }

    [Fact]
    public void Fused_Adam_with_found_inf_leaves_everything_untouched_and_the_caller_undoes_the_step()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(15);
        var p = FusedMake(ScalarType.Float32, gen);
        var m = FusedMake(ScalarType.Float32, gen);
        var v = FusedMake(ScalarType.Float32, gen, positive: true);
        var g = FusedMake(ScalarType.Float32, gen);
        var (p0, m0, v0, g0) = (Clone(p), Clone(m), Clone(v), Clone(g));
        var steps = p.Select(_ => torch.tensor(3f)).ToList();
        var foundInf = torch.tensor(1f);

        Aten.ForeachAdd_(steps, 1.0); // what PyTorch's _fused_adam does first
        Aten.FusedAdam_(p, g, m, v, Array.Empty<Tensor>(), steps, 1e-2, 0.9, 0.999, 0.01, 1e-8, amsgrad: false, maximize: false,
            gradScale: torch.tensor(4f), foundInf: foundInf);
        ShouldBeBitwise(p, p0);
        ShouldBeBitwise(m, m0);
        ShouldBeBitwise(v, v0);
        ShouldBeBitwise(g, g0); // the early return comes before the gradients are unscaled
        steps.Should().AllSatisfy(s => s.item<float>().Should().Be(4f), "the kernel never touches state_steps");
        Aten.ForeachSub_(steps, Enumerable.Repeat(foundInf, steps.Count).ToList()); // what PyTorch does after
        steps.Should().AllSatisfy(s => s.item<float>().Should().Be(3f));

        // found_inf = 0 is an ordinary step, the same bits as passing none.
        var (p1, m1, v1) = (Clone(p0), Clone(m0), Clone(v0));
        Aten.FusedAdam_(p, g, m, v, Array.Empty<Tensor>(), steps, 1e-2, 0.9, 0.999, 0.01, 1e-8, false, false, foundInf: torch.tensor(0f));
        Aten.FusedAdam_(p1, g, m1, v1, Array.Empty<Tensor>(), steps, 1e-2, 0.9, 0.999, 0.01, 1e-8, false, false);
        ShouldBeBitwise(p, p1);
        ShouldBeBitwise(m, m1);
        ShouldBeBitwise(v, v1);
    }

    [Fact]
    public void Fused_Adam_with_grad_scale_unscales_the_gradients_in_place()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(16);
        var p = FusedMake(ScalarType.Float32, gen);
        var g = FusedMake(ScalarType.Float32, gen).Select(t => t.mul_(4)).ToList(); // exact: a power of two
        var unscaled = g.Select(t => t.div(4)).ToList();
        var (pRef, m, v) = (Clone(p), p.Select(t => torch.zeros_like(t)).ToList(), p.Select(t => torch.zeros_like(t)).ToList());
        var (mRef, vRef) = (Clone(m), Clone(v));
        var steps = p.Select(_ => torch.tensor(1f)).ToList();
        Aten.FusedAdam_(p, g, m, v, Array.Empty<Tensor>(), steps, 1e-2, 0.9, 0.999, 0, 1e-8, false, false, gradScale: torch.tensor(4f));
        ShouldBeBitwise(g, unscaled);
        Aten.FusedAdam_(pRef, unscaled, mRef, vRef, Array.Empty<Tensor>(), steps, 1e-2, 0.9, 0.999, 0, 1e-8, false, false);
        ShouldBeBitwise(p, pRef);
    }

    [Fact]
    public void Fused_kernels_refuse_non_contiguous_tensors()
    {
        using var scope = NewDisposeScope();
        var p = new[] { torch.zeros(3, 4).t() };
        var g = new[] { torch.ones(4, 3) };
        // libtorch 2.10's CPU fused kernels index raw pointers: a transposed param or grad is updated in the wrong
        // places without any error, so the bridge refuses it.
        var act = () => Aten.FusedSgd_(p, g, Array.Empty<Tensor>(), 0, 0, 0.1, 0, false, false, false);
        act.Should().Throw<ArgumentException>().WithParameterName("params");
        var grad = () => Aten.FusedAdam_(g, p, g, g, Array.Empty<Tensor>(), new[] { torch.tensor(1f) }, 0.1, 0.9, 0.999, 0, 1e-8, false, false);
        grad.Should().Throw<ArgumentException>().WithParameterName("grads");
        p[0].count_nonzero().item<long>().Should().Be(0, "nothing ran");
    }
}

/// <summary>Runs alone: <see cref="Tensor.TotalCount"/> is process-wide, so no other test may create tensors meanwhile.</summary>
[CollectionDefinition(nameof(NativeCounters), DisableParallelization = true)]
public sealed class NativeCounters
{
}

[Collection(nameof(NativeCounters))]
public class AtenLeakTests
{
    [Fact]
    public void A_thousand_calls_in_per_iteration_scopes_leave_TotalCount_flat()
    {
        using var outer = NewDisposeScope();
        var self = AtenTests.Make(ScalarType.Float32, 1, positive: true);
        var other = AtenTests.Make(ScalarType.Float32, 2);
        var step = new[] { 0.5, 0.25, 0.125, 1.0 };
        using (NewDisposeScope()) RunCalls(self, other, step); // warm up: compilation, lazy statics
        // Let earlier tests' finalizers run now, so they cannot lower the count during the loop.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var before = Tensor.TotalCount;
        for (var k = 0; k < 1000; k++)
        {
            using var scope = NewDisposeScope();
            RunCalls(self, other, step);
            scope.DisposablesCount.Should().BeGreaterThanOrEqualTo(3 * self.Count, "out-of-place results land in the caller's scope");
        }
        Tensor.TotalCount.Should().Be(before);
    }

    private static void RunCalls(List<Tensor> self, List<Tensor> other, double[] step)
    {
        var sq = Aten.ForeachSqrt(self);
        Aten.ForeachAdd_(sq, 1e-8);
        var scaled = Aten.ForeachMul(other, step);
        Aten.ForeachAddcdiv_(sq, scaled, self, step);
        var neg = Aten.ForeachNeg(scaled);
        Aten.ForeachAdd_(neg, self, 0.5);
    }
}
