using System.Collections.Generic;
using Optim.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Kernels;

/// <summary>
/// The in-place reads flat mode checks its buffers with (TensorMemory): where their self-test passed, they agree with
/// libtorch's own accessors on tensors the self-test did not see.
/// </summary>
public class TensorMemoryTests
{
    [Fact]
    public void Addresses_read_in_place_are_libtorchs()
    {
        if (!TensorMemory.DirectGradientReads) return;
        using var scope = NewDisposeScope();
        var floats = randn(10_000);
        var tensors = new List<Tensor>
        {
            floats, floats.narrow(0, 9_999, 1), floats.narrow(0, 4_321, 1_000).view(10, 100), floats.narrow(0, 6, 100).view(10, 10).t(),
            zeros(77, ScalarType.Float64).narrow(0, 13, 7), zeros(300, ScalarType.Int16).narrow(0, 299, 1),
            zeros(50, ScalarType.BFloat16).narrow(0, 33, 2), zeros(9, ScalarType.Bool).narrow(0, 5, 3), randn(3, 4)[1],
            floats.narrow(0, 77, 0), empty(0),
        };
        var moved = new Parameter(zeros(5));
        using (no_grad()) moved.set_(floats.narrow(0, 8_765, 5));
        tensors.Add(moved);
        foreach (var t in tensors)
            TensorMemory.DirectDataPointer(t, (int)t.ElementSize).Should().Be(TensorMemory.DataPointer(t), $"a tensor at offset {t.storage_offset()} of {t.dtype}");
    }

    [Fact]
    public void Gradients_read_in_place_are_libtorchs()
    {
        if (!TensorMemory.DirectGradientReads) return;
        using var scope = NewDisposeScope();
        var parameter = new Parameter(randn(6));
        var none = TensorMemory.GradIdentity(parameter);
        TensorMemory.DirectGradIdentity(TensorMemory.Identity(parameter)).Should().Be(none, "no gradient yet");
        parameter.sum().backward();
        using (var grad = parameter.grad!)
            TensorMemory.DirectGradIdentity(TensorMemory.Identity(parameter)).Should().Be(TensorMemory.Identity(grad), "backward's gradient");
        var assigned = zeros(6);
        parameter.grad = assigned;
        TensorMemory.DirectGradIdentity(TensorMemory.Identity(parameter)).Should().Be(TensorMemory.Identity(assigned), "an assigned gradient");
        parameter.grad = null;
        TensorMemory.DirectGradIdentity(TensorMemory.Identity(parameter)).Should().Be(none, "the gradient released");
        TensorMemory.DirectGradIdentity(TensorMemory.Identity(randn(3))).Should().Be(System.IntPtr.Zero, "a tensor outside autograd has no metadata");
    }
}
