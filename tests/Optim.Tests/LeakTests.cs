using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>Native tensors must not accumulate: every temporary disposed, state created once.</summary>
[Collection(nameof(LeakTests))]
public class LeakTests
{
    internal static long LiveTensorsAfter(Optimizer opt, Parameter[] ps, int steps)
    {
        using var _ = NewDisposeScope();
        foreach (var p in ps) p.grad = torch.randn_like(p).DetachFromDisposeScope();
        opt.step(); // creates the state
        // Let finalizers of other tests' garbage run now, not during the measurement. No collection afterwards:
        // a temporary we forgot to dispose must show up in the count.
        System.GC.Collect();
        System.GC.WaitForPendingFinalizers();
        var before = Tensor.TotalCount;
        for (var i = 0; i < steps; i++) opt.step();
        return Tensor.TotalCount - before;
    }

    [Fact]
    public void Sgd_keeps_the_native_tensor_count_flat_over_1000_steps()
    {
        var ps = new[] { new Parameter(torch.randn(10)), new Parameter(torch.randn(3, 3)), new Parameter(torch.randn(System.Array.Empty<long>())) };
        using var opt = new SGD(ps, 1e-3, momentum: 0.9, nesterov: true, weight_decay: 0.1, maximize: true);
        LiveTensorsAfter(opt, ps, 1000).Should().Be(0);
    }

    [Theory]
    [MemberData(nameof(ImplementationTests.AlgorithmsAndPaths), MemberType = typeof(ImplementationTests))]
    public void Every_algorithm_and_path_keeps_the_native_tensor_count_flat_over_1000_steps(string algorithm, Implementation impl)
    {
        var ps = new[] { new Parameter(torch.randn(10)), new Parameter(torch.randn(3, 3)), new Parameter(torch.randn(System.Array.Empty<long>())) };
        using var opt = Support.Algorithms.Create(algorithm, ps, impl);
        LiveTensorsAfter(opt, ps, 1000).Should().Be(0);
    }

    [Fact]
    public void Disposing_the_optimizer_frees_its_state_and_later_use_throws()
    {
        var ps = new[] { new Parameter(torch.randn(10)) };
        var before = Tensor.TotalCount;
        var opt = new SGD(ps, 1e-3, momentum: 0.9);
        ps[0].grad = torch.randn(10);
        opt.step();
        var withState = Tensor.TotalCount;
        opt.Dispose();
        (withState - Tensor.TotalCount).Should().Be(1, "the momentum buffer is freed");
        var act = () => opt.step();
        act.Should().Throw<System.ObjectDisposedException>();
        ps[0].grad = null;
        before.Should().BeGreaterThan(0);
    }
}

/// <summary>Tensor.TotalCount is process-wide: leak tests run alone, never beside other tests' allocations.</summary>
[CollectionDefinition(nameof(LeakTests), DisableParallelization = true)]
public sealed class LeakTestsCollection;
