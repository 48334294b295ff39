using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using Optim.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Tests.Kernels;

/// <summary>
/// The bridge's mixed-precision and clipping ops (Aten.cs, "Mixed precision and gradient clipping" region): the AMP
/// kernels follow their ATen definitions, and the foreach ops give the per-tensor ops' bits.
/// </summary>
public class AmpKernelTests
{
    public static TheoryData<ScalarType> AllFloatTypes => new() { ScalarType.Float32, ScalarType.Float64, ScalarType.Float16, ScalarType.BFloat16 };

    private static List<Tensor> Make(ScalarType dtype, int seed) =>
        AtenTests.Make(ScalarType.Float32, seed).Select(t => t.mul(8).to(dtype)).ToList();

    private static void ShouldBeBitwise(IReadOnlyList<Tensor> actual, IReadOnlyList<Tensor> expected)
    {
        actual.Should().HaveSameCount(expected);
        for (var i = 0; i < expected.Count; i++) Trajectories.BitwiseEqual(actual[i], expected[i]).Should().BeTrue($"tensor {i}");
    }

    private static Tensor Scalar(float value, ScalarType dtype = ScalarType.Float32) => torch.full(Array.Empty<long>(), value, dtype);

    [Theory, MemberData(nameof(AllFloatTypes))]
    public void Non_finite_check_and_unscale_multiplies_by_the_inverse_scale_and_leaves_found_inf_alone_when_finite(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var grads = Make(dtype, 3);
        var expected = grads.Select(g => g.clone().mul_(Scalar(1f / 1024))).ToList();
        var foundInf = Scalar(0);
        Aten.AmpForeachNonFiniteCheckAndUnscale_(grads, foundInf, Scalar(1f / 1024));
        ShouldBeBitwise(grads, expected);
        foundInf.item<float>().Should().Be(0);
    }

    [Theory]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    [InlineData(float.NaN)]
    public void Non_finite_check_sets_found_inf_to_one_for_any_non_finite_element(float bad)
    {
        using var scope = NewDisposeScope();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16 })
        {
            var grads = Make(dtype, 4);
            grads[2].view(-1)[7] = Scalar(bad, dtype);
            var foundInf = Scalar(0);
            Aten.AmpForeachNonFiniteCheckAndUnscale_(grads, foundInf, Scalar(0.5f));
            foundInf.item<float>().Should().Be(1, $"{dtype} with {bad}");
        }
    }

    [Fact]
    public void Non_finite_check_never_resets_found_inf_and_ignores_an_empty_list()
    {
        using var scope = NewDisposeScope();
        var foundInf = Scalar(1);
        Aten.AmpForeachNonFiniteCheckAndUnscale_(Make(ScalarType.Float32, 5), foundInf, Scalar(1));
        foundInf.item<float>().Should().Be(1);
        Aten.AmpForeachNonFiniteCheckAndUnscale_(Array.Empty<Tensor>(), foundInf, Scalar(1));
    }

    [Fact]
    public void Update_scale_backs_off_on_overflow_and_grows_after_the_interval()
    {
        using var scope = NewDisposeScope();
        var scale = Scalar(1024);
        var tracker = torch.zeros(Array.Empty<long>(), ScalarType.Int32);
        var clean = Scalar(0);
        var overflow = Scalar(1);
        void Update(Tensor foundInf) => Aten.AmpUpdateScale_(scale, tracker, foundInf, 2.0, 0.25, 3);

        Update(clean);
        Update(clean);
        (scale.item<float>(), tracker.item<int>()).Should().Be((1024f, 2));
        Update(clean);
        (scale.item<float>(), tracker.item<int>()).Should().Be((2048f, 0));
        Update(clean);
        Update(overflow);
        (scale.item<float>(), tracker.item<int>()).Should().Be((512f, 0));
    }

    [Fact]
    public void Update_scale_does_not_grow_past_the_largest_float()
    {
        using var scope = NewDisposeScope();
        var scale = Scalar(float.MaxValue);
        var tracker = torch.zeros(Array.Empty<long>(), ScalarType.Int32);
        Aten.AmpUpdateScale_(scale, tracker, Scalar(0), 2.0, 0.5, 1);
        scale.item<float>().Should().Be(float.MaxValue);
        tracker.item<int>().Should().Be(0);
    }

    [Theory]
    [InlineData(2.0)]
    [InlineData(1.0)]
    [InlineData(3.0)]
    [InlineData(0.5)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void Foreach_norm_gives_vector_norm_bits(double ord)
    {
        using var scope = NewDisposeScope();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Float16, ScalarType.BFloat16 })
        {
            var tensors = Make(dtype, 6);
            ShouldBeBitwise(Aten.ForeachNorm(tensors, ord), tensors.Select(t => torch.linalg.vector_norm(t, ord)).ToList());
        }
    }

    [Theory, MemberData(nameof(AllFloatTypes))]
    public void Foreach_mul_by_a_tensor_gives_mul_bits(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var self = Make(dtype, 7);
        var factor = Scalar(0.3f);
        var expected = self.Select(t => t.clone().mul_(factor)).ToList();
        Aten.ForeachMulTensor_(self, factor);
        ShouldBeBitwise(self, expected);
    }

    [Theory, MemberData(nameof(AllFloatTypes))]
    public void Foreach_clamp_min_and_max_give_clamp_bits(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var self = Make(dtype, 8);
        self[1].view(-1)[0] = Scalar(float.NaN, dtype);
        var expected = self.Select(t => t.clamp(-0.7, 0.7)).ToList();
        Aten.ForeachClampMin_(self, -0.7);
        Aten.ForeachClampMax_(self, 0.7);
        ShouldBeBitwise(self, expected);
    }
}
