using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Optim.Tests.Support;
using Optim.Utils;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Utils;

/// <summary>
/// <see cref="ClipGrad"/> against goldens of PyTorch 2.x's formula (tools/golden/clipping.py): the total norm and the
/// clipped gradients bit for bit, on the foreach and per-tensor paths, in float32, float64 and bfloat16.
/// </summary>
public class ClipGradTests
{
    private sealed record Case(string Name, ScalarType Dtype, string Op, double NormType, double Arg, double? GivenTotal, long[][] Shapes,
        double[]?[] Grads, double? TotalNorm, string? TotalNormDtype, double[]?[] Expected)
    {
        public override string ToString() => Name;
    }

    private static readonly Lazy<Dictionary<string, Case>> Cases = new(Load);

    private static double Number(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? e.GetString() switch { "inf" => double.PositiveInfinity, "-inf" => double.NegativeInfinity, _ => double.NaN }
        : e.GetDouble();

    private static double[]?[] Arrays(JsonElement e) =>
        e.EnumerateArray().Select(a => a.ValueKind == JsonValueKind.Null ? null : a.EnumerateArray().Select(Number).ToArray()).ToArray();

    private static Dictionary<string, Case> Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Goldens", "clipping.json")));
        var cases = new Dictionary<string, Case>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var op = c.GetProperty("op").GetString()!;
            var arg = c.GetProperty(op == "clip_grad_value_" ? "clip_value" : "max_norm");
            var name = c.GetProperty("name").GetString()!;
            cases[name] = new Case(
                name,
                c.GetProperty("dtype").GetString() switch { "float32" => ScalarType.Float32, "float64" => ScalarType.Float64, _ => ScalarType.BFloat16 },
                op,
                c.GetProperty("norm_type").ValueKind == JsonValueKind.Null ? 0 : Number(c.GetProperty("norm_type")),
                arg.ValueKind == JsonValueKind.Null ? 0 : arg.GetDouble(),
                c.GetProperty("given_total_norm").ValueKind == JsonValueKind.Null ? null : c.GetProperty("given_total_norm").GetDouble(),
                c.GetProperty("shapes").EnumerateArray().Select(s => s.EnumerateArray().Select(d => d.GetInt64()).ToArray()).ToArray(),
                Arrays(c.GetProperty("grads")),
                c.GetProperty("total_norm").ValueKind == JsonValueKind.Null ? null : Number(c.GetProperty("total_norm")),
                c.GetProperty("total_norm_dtype").ValueKind == JsonValueKind.Null ? null : c.GetProperty("total_norm_dtype").GetString(),
                Arrays(c.GetProperty("expected_grads")));
        }
        return cases;
    }

    public static TheoryData<string, bool?> Names()
    {
        var data = new TheoryData<string, bool?>();
        foreach (var name in Cases.Value.Keys)
        {
            foreach (var @foreach in new bool?[] { null, false }) data.Add(name, @foreach);
        }
        return data;
    }

    private static Tensor Make(double[] values, long[] shape, ScalarType dtype) => torch.tensor(values).reshape(shape).to(dtype);

    private static List<Parameter> Parameters(Case c)
    {
        var ps = new List<Parameter>();
        for (var i = 0; i < c.Shapes.Length; i++)
        {
            var p = new Parameter(torch.zeros(c.Shapes[i], c.Dtype), requires_grad: true);
            if (c.Grads[i] is double[] g) p.grad = Make(g, c.Shapes[i], c.Dtype);
            ps.Add(p);
        }
        return ps;
    }

    // The goldens come from PyTorch 1.13, whose CPU norm kernels round differently from libtorch 2.10's in these
    // cases: the float32/float64 2-norm of some vectors differs in the last bit, and bfloat16 p-norms with p other than
    // 2 and inf by one bfloat16 ulp. There the total norm and the clipped gradients are checked to within two ulps of
    // the dtype. Every other case (inf norms, value clipping, clipping with a given norm, and the rest) is bitwise.
    private static readonly HashSet<string> KernelRounding = new()
    {
        "total_norm2_float32", "norm2_no_clip_float64",
        "norm1_clips_bfloat16", "norm3_clips_bfloat16", "norm0_5_clips_bfloat16", "total_norm3_bfloat16",
    };

    private static double Eps(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => Math.Pow(2, -52),
        ScalarType.Float32 => Math.Pow(2, -23),
        _ => Math.Pow(2, -7),
    };

    private static void ShouldMatch(double actual, double expected, Case c, string what)
    {
        if (double.IsNaN(expected))
        {
            actual.Should().Be(double.NaN, what);
        }
        else if (KernelRounding.Contains(c.Name))
        {
            actual.Should().BeApproximately(expected, 2 * Eps(c.Dtype) * Math.Abs(expected), what);
        }
        else
        {
            BitConverter.DoubleToInt64Bits(actual).Should().Be(BitConverter.DoubleToInt64Bits(expected), $"{what}: {actual:R} vs {expected:R}");
        }
    }

    [Theory, MemberData(nameof(Names))]
    public void Matches_the_PyTorch_2x_goldens(string name, bool? @foreach)
    {
        using var scope = NewDisposeScope();
        var c = Cases.Value[name];
        var ps = Parameters(c);
        Tensor? total = c.Op switch
        {
            "clip_grad_norm_" => ClipGrad.clip_grad_norm_(ps, c.Arg, c.NormType, @foreach: @foreach),
            "get_total_norm" => ClipGrad.get_total_norm(ps.Where(p => p.grad is not null).Select(p => p.grad!), c.NormType, @foreach: @foreach),
            _ => null,
        };
        if (c.Op == "clip_grads_with_norm_") ClipGrad.clip_grads_with_norm_(ps, c.Arg, torch.tensor(c.GivenTotal!.Value).to(c.Dtype), @foreach);
        if (c.Op == "clip_grad_value_") ClipGrad.clip_grad_value_(ps, c.Arg, @foreach);

        if (c.TotalNorm is double expectedTotal)
        {
            total.Should().NotBeNull();
            total!.dtype.ToString().ToLowerInvariant().Should().Be(c.TotalNormDtype);
            total.ndim.Should().Be(0);
            ShouldMatch(total.to(ScalarType.Float64).item<double>(), expectedTotal, c, "total norm");
        }
        for (var i = 0; i < ps.Count; i++)
        {
            if (c.Expected[i] is not double[] expected)
            {
                ps[i].grad.Should().BeNull();
                continue;
            }
            var actual = GoldenCase.Values(ps[i].grad!.to(ScalarType.Float64));
            for (var j = 0; j < expected.Length; j++) ShouldMatch(actual[j], expected[j], c, $"grad {i}[{j}]");
        }
    }

    public static TheoryData<double> NormTypes => new() { 2.0, double.PositiveInfinity, double.NegativeInfinity, 1.0, 3.0, 0.5, 0.0 };

    // The CPU foreach path norms tensors of one size in batches (one row-wise vector_norm over their stack): the same
    // bits as ATen's _foreach_norm, which runs one reduction per tensor. Sizes met once, large tensors and chunked
    // batches included, in an order that interleaves them.
    [Theory, MemberData(nameof(NormTypes))]
    public void Batched_CPU_norms_give_foreach_norms_bits(double ord)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(13);
        var sizes = new long[] { 100, 7, 100, 1, 20_000, 7, 100, 33, 0, 16_384, 16_384, 3 }
            .Concat(Enumerable.Repeat(16_384L, 70)).Concat(new long[] { 100, 1 })
            .Select(n => n == 0 && double.IsInfinity(ord) ? 2 : n) // ATen has no inf norm of an empty tensor (PyTorch's error too)
            .ToArray();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.BFloat16, ScalarType.Float16 })
        {
            var tensors = sizes.Select(n => torch.randn(n, generator: gen).mul(3).to(dtype)).ToList();
            tensors[2] = torch.randn(new long[] { 10, 20 }, generator: gen).to(dtype)[.., ..10]; // strided, 100 elements
            tensors[6] = torch.randn(new long[] { 20, 5 }, generator: gen).to(dtype).t(); // transposed, 100 elements
            var expected = torch.linalg.vector_norm(torch.stack(Optim.Kernels.Aten.ForeachNorm(tensors, ord)), ord);
            var actual = ClipGrad.get_total_norm(tensors, ord);
            Trajectories.BitwiseEqual(actual, expected).Should().BeTrue($"{dtype}: {actual.to(ScalarType.Float64).item<double>():R} vs {expected.to(ScalarType.Float64).item<double>():R}");
            Trajectories.BitwiseEqual(ClipGrad.get_total_norm(tensors, ord, @foreach: false), expected).Should().BeTrue($"{dtype}, per tensor");
        }
    }

    [Fact]
    public void Error_if_nonfinite_throws_PyTorchs_message_before_changing_anything()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(torch.zeros(3), requires_grad: true) { grad = torch.tensor(new[] { 1f, float.PositiveInfinity, 2f }) };
        var q = new Parameter(torch.zeros(2), requires_grad: true) { grad = torch.tensor(new[] { 3f, 4f }) };
        FluentActions.Invoking(() => ClipGrad.clip_grad_norm_(new[] { p, q }, 1.0, error_if_nonfinite: true)).Should().Throw<InvalidOperationException>()
            .WithMessage("The total norm of order 2.0 for gradients from `parameters` is non-finite, so it cannot be clipped. To disable this error and scale the gradients by the non-finite norm anyway, set `error_if_nonfinite=False`");
        q.grad!.data<float>().ToArray().Should().Equal(3f, 4f);
        FluentActions.Invoking(() => ClipGrad.get_total_norm(new[] { p.grad! }, double.PositiveInfinity, error_if_nonfinite: true))
            .Should().Throw<InvalidOperationException>().WithMessage("The total norm of order inf for*");
    }

    [Fact]
    public void No_gradients_give_a_zero_norm_and_change_nothing()
    {
        using var scope = NewDisposeScope();
        var p = new Parameter(torch.ones(3), requires_grad: true);
        ClipGrad.clip_grad_norm_(new[] { p }, 1.0).item<float>().Should().Be(0);
        ClipGrad.get_total_norm(Array.Empty<Tensor>()).item<float>().Should().Be(0);
        ClipGrad.clip_grad_value_(new[] { p }, 1.0);
        p.grad.Should().BeNull();
    }

    [Fact]
    public void Mixed_dtypes_are_grouped_and_their_norms_stacked_in_order_of_first_appearance()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(5);
        var grads = new[]
        {
            torch.randn(4, generator: gen), torch.randn(3, generator: gen).to(ScalarType.Float64),
            torch.randn(6, generator: gen), torch.randn(2, generator: gen).to(ScalarType.Float64),
        };
        var ps = grads.Select(g => new Parameter(torch.zeros_like(g), requires_grad: true) { grad = g.clone() }).ToList();
        var total = ClipGrad.clip_grad_norm_(ps, 0.5);
        var order = new[] { 0, 2, 1, 3 };
        var expected = torch.linalg.vector_norm(torch.stack(order.Select(i => torch.linalg.vector_norm(grads[i], 2)).ToArray()), 2);
        Trajectories.BitwiseEqual(total, expected).Should().BeTrue();
        total.dtype.Should().Be(ScalarType.Float64, "stack promotes float32 and float64 norms");
        var coef = expected.add(1e-6).reciprocal().mul(0.5).clamp_max(1.0);
        for (var i = 0; i < grads.Length; i++) Trajectories.BitwiseEqual(ps[i].grad!, grads[i].mul_(coef)).Should().BeTrue($"grad {i}");
    }

    [Fact]
    public void Clip_grad_norm_agrees_with_TorchSharps_within_rounding()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(9);
        var ours = Enumerable.Range(0, 50).Select(i => new Parameter(torch.zeros(7), requires_grad: true) { grad = torch.randn(7, generator: gen) }).ToList();
        var theirs = ours.Select(p => new Parameter(torch.zeros(7), requires_grad: true) { grad = p.grad!.clone() }).ToList();
        var total = ClipGrad.clip_grad_norm_(ours, 1.0).item<float>();
        var theirTotal = torch.nn.utils.clip_grad_norm_(theirs, 1.0);
        ((double)total).Should().BeApproximately(theirTotal, 1e-5 * theirTotal);
        for (var i = 0; i < ours.Count; i++) ours[i].grad!.allclose(theirs[i].grad!, rtol: 1e-6, atol: 1e-7).Should().BeTrue();
    }
}
