using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>Native tensors must not accumulate: every temporary disposed, state created once.</summary>
[Collection(nameof(LeakTests))]
public class LeakTests(ITestOutputHelper output)
{
    internal static long LiveTensorsAfter(Optimizer opt, Parameter[] ps, int steps)
    {
        using var _ = NewDisposeScope();
        foreach (var p in ps) p.grad = Algorithms.Gradient(opt, torch.randn_like(p)).DetachFromDisposeScope();
        var closure = AlgorithmCatalog.Of(opt) is { RequiresClosure: true } ? NoisyClosure(ps) : null;
        Algorithms.Step(opt, closure); // creates the state
        // LBFGS's state grows with its history (and its `al` buffer appears on the second step): fill it first.
        for (var i = 0; closure is not null && i < 20; i++) Algorithms.Step(opt, closure);
        // Let finalizers of other tests' garbage run now, not during the measurement. No collection afterwards:
        // a temporary we forgot to dispose must show up in the count.
        System.GC.Collect();
        System.GC.WaitForPendingFinalizers();
        var before = Tensor.TotalCount;
        for (var i = 0; i < steps; i++) Algorithms.Step(opt, closure);
        return Tensor.TotalCount - before;
    }

    // For a closure-driven algorithm (LBFGS): every evaluation draws new gradients into the existing ones and a new loss,
    // so its history fills, shifts and its line search runs; everything the closure creates lives in the step's scope.
    private static Func<Tensor> NoisyClosure(Parameter[] ps) => () =>
    {
        foreach (var p in ps)
        {
            using var grad = p.grad!;
            using var noise = torch.randn_like(p);
            grad.copy_(noise);
        }
        return torch.randn(System.Array.Empty<long>());
    };

    [Fact]
    public void Sgd_keeps_the_native_tensor_count_flat_over_1000_steps()
    {
        var ps = new[] { new Parameter(torch.randn(10)), new Parameter(torch.randn(3, 3)), new Parameter(torch.randn(System.Array.Empty<long>())) };
        using var opt = new SGD(ps, 1e-3, momentum: 0.9, nesterov: true, weight_decay: 0.1, maximize: true);
        LiveTensorsAfter(opt, ps, 1000).Should().Be(0);
    }

    [Theory]
    [MemberData(nameof(Algorithms.AlgorithmsAndPaths), MemberType = typeof(Algorithms))]
    public void Every_algorithm_and_path_keeps_the_native_tensor_count_flat_over_1000_steps(string algorithm, Implementation impl)
    {
        var info = Algorithms.Get(algorithm);
        var ps = new[] { new Parameter(torch.randn(Algorithms.Shape(info, 10))), new Parameter(torch.randn(3, 3)), new Parameter(torch.randn(Algorithms.Shape(info))) };
        using var opt = Algorithms.Create(algorithm, ps, impl);
        LiveTensorsAfter(opt, ps, 1000).Should().Be(0);
    }

    [Fact]
    public void A_5000_step_Adam_run_with_a_checkpoint_every_500_steps_keeps_tensors_and_memory_flat()
    {
        // A two-layer regression (8 -> 16 -> 1, 64 samples) trained with real autograd; every 500 steps the optimizer
        // saves and reloads itself (file and stream in turn), which replaces every state tensor.
        var random = new Random(11);
        Tensor Data(params long[] shape) =>
            torch.tensor(Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray()).reshape(shape);
        var x = Data(64, 8);
        var y = x.sum(1, keepdim: true).sin();
        var ps = new[] { ("w1", new Parameter(Data(8, 16))), ("b1", new Parameter(Data(16))), ("w2", new Parameter(Data(16, 1))), ("b2", new Parameter(Data(1))) };
        var (w1, b1, w2, b2) = (ps[0].Item2, ps[1].Item2, ps[2].Item2, ps[3].Item2);
        using var opt = new Adam(ps, lr: 1e-2, weight_decay: 1e-4, amsgrad: true);
        var path = Path.Combine(Path.GetTempPath(), $"optim-soak-{Guid.NewGuid():N}.ckpt");
        using var process = Process.GetCurrentProcess();
        var (counts, managed, workingSet, losses) = (new List<long>(), new List<long>(), new List<long>(), new List<float>());
        // The setup's temporaries are garbage now; collect them so the counts below see only the run.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var clock = Stopwatch.StartNew();
        try
        {
            for (var step = 1; step <= 5000; step++)
            {
                using (NewDisposeScope())
                {
                    opt.zero_grad();
                    var loss = ((x.mm(w1) + b1).relu().mm(w2) + b2 - y).pow(2).mean();
                    loss.backward();
                    opt.step();
                    if (step % 500 == 0) losses.Add(loss.item<float>());
                }
                if (step % 500 != 0) continue;

                // Count before collecting: a tensor we forgot to dispose must show up, not be finalized away.
                counts.Add(Tensor.TotalCount);
                if (step % 1000 == 0)
                {
                    opt.Save(path);
                    opt.Load(path);
                }
                else
                {
                    using var memory = new MemoryStream();
                    opt.Save(memory);
                    memory.Position = 0;
                    opt.Load(memory);
                }
                counts.Add(Tensor.TotalCount);
                GC.Collect();
                GC.WaitForPendingFinalizers();
                GC.Collect();
                managed.Add(GC.GetTotalMemory(forceFullCollection: true));
                process.Refresh();
                workingSet.Add(process.WorkingSet64);
            }
        }
        finally
        {
            File.Delete(path);
        }
        clock.Stop();

        const double MiB = 1 << 20;
        output.WriteLine($"5000 steps, 10 checkpoints in {clock.Elapsed.TotalSeconds:F1} s; loss {losses[0]:G4} -> {losses[^1]:G4}");
        output.WriteLine($"Tensor.TotalCount before and after each checkpoint: {string.Join(", ", counts)}");
        output.WriteLine($"managed heap (MiB): {string.Join(", ", managed.Select(m => (m / MiB).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))}");
        output.WriteLine($"working set (MiB): {string.Join(", ", workingSet.Select(m => (m / MiB).ToString("F1", System.Globalization.CultureInfo.InvariantCulture)))}");

        losses[^1].Should().BeLessThan(losses[0], "the run trains");
        counts.Should().AllSatisfy(c => c.Should().Be(counts[0], "no native tensor outlives a step or a checkpoint"));
        // Slack against the first checkpoint (after warm-up): the managed heap may not grow by more than 4 MiB, the
        // process (native allocator caches included) by more than 64 MiB.
        managed.Max().Should().BeLessThan(managed[0] + (4 << 20));
        workingSet.Max().Should().BeLessThan(workingSet[0] + (64 << 20));
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
