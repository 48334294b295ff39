using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Kernels;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests.Kernels;

/// <summary>
/// This library's single-pass C# CPU kernels (<see cref="Implementation.Fused"/> for algorithms ATen has no fused
/// kernel for). They run the for-loop's operations in its order, each rounded to the parameter's dtype, but ATen's
/// vectorized CPU kernels contract some of those operations into fused multiply-adds (add with alpha, addcmul, lerp)
/// and these do not, so results differ by an ulp now and then, as ATen's own fused kernels differ from its for-loop.
/// </summary>
public class CpuFusedTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> GoldenCases() =>
        GoldenFile.Cases(GoldenFile.Stepwise.Where(f => AlgorithmCatalog.Get(f.Algorithm).FusedKernelIsCSharp));

    // Against PyTorch's own trajectories, within the goldens' 2-ulp tolerance (Tolerances) widened fourfold: 25 steps
    // of an update rounded differently from the for-loop (no fused multiply-add) on top of 1.13's kernel differences.
    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void Fused_matches_PyTorch_within_tolerance(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        var ps = c.MakeParameters();
        using var opt = c.Create(ps, Implementation.Fused);
        var worst = Trajectories.ShouldBeClose(c.Run(ps, opt), c.Expected, 4 * Tolerances.Atol(c.Dtype), 4 * Tolerances.Rtol(c.Dtype));
        output.WriteLine($"{c.Algorithm} {file} {id}: max |error| {worst:E2}");
    }

    public static TheoryData<string> CSharpFusedNames() => new(AlgorithmCatalog.All.Where(a => a.FusedKernelIsCSharp).Select(a => a.Name));

    // Tensors of several chunks, of a partial vector and of one element: the bits may not depend on how many threads
    // split the chunks.
    [Theory]
    [MemberData(nameof(CSharpFusedNames))]
    public void The_bits_do_not_depend_on_the_thread_count(string algorithm)
    {
        var sizes = new long[] { 2 * CpuFused.ChunkElements + 13, 5, 1 };
        List<Tensor> Run(int threads)
        {
            var previous = CpuFused.MaxThreads;
            CpuFused.MaxThreads = threads;
            try
            {
                var gen = new Generator(7);
                var ps = sizes.Select(n => new Parameter(torch.randn(n, generator: gen))).ToList();
                using var opt = Algorithms.Create(algorithm, ps, Implementation.Fused);
                for (var step = 0; step < 3; step++)
                {
                    foreach (var p in ps) p.grad = torch.randn(p.shape, generator: gen);
                    Algorithms.Step(opt);
                }
                return ps.Select(p => p.detach().clone()).Concat(ps.SelectMany(p => opt.State[p].Values.Select(t => t.clone()))).ToList();
            }
            finally
            {
                CpuFused.MaxThreads = previous;
            }
        }
        var one = Run(1);
        foreach (var threads in new[] { 2, 3 })
        {
            var many = Run(threads);
            many.Should().HaveCount(one.Count);
            for (var i = 0; i < one.Count; i++) Trajectories.BitwiseEqual(many[i], one[i]).Should().BeTrue($"tensor {i} with {threads} threads");
        }
    }

    // The same tensors as above (chunks, partial vectors, one element) against the for-loop, within a few ulp.
    [Theory]
    [MemberData(nameof(CSharpFusedNames))]
    public void Every_chunk_and_tail_element_matches_the_for_loop(string algorithm)
    {
        var sizes = new long[] { CpuFused.ChunkElements + 11, 9, 7, 1 };
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64 })
        {
            List<Tensor> Run(Implementation impl)
            {
                var gen = new Generator(11);
                var ps = sizes.Select(n => new Parameter(torch.randn(n, dtype: dtype, generator: gen))).ToList();
                using var opt = Algorithms.Create(algorithm, ps, impl);
                for (var step = 0; step < 3; step++)
                {
                    foreach (var p in ps) p.grad = torch.randn(p.shape, dtype: dtype, generator: gen);
                    Algorithms.Step(opt);
                }
                return ps.Select(p => p.detach().clone()).ToList();
            }
            var fused = Run(Implementation.Fused);
            var loop = Run(Implementation.ForLoop);
            var (atol, rtol) = dtype == ScalarType.Float32 ? (1e-6, 1e-5) : (1e-14, 1e-13);
            for (var i = 0; i < sizes.Length; i++)
                fused[i].allclose(loop[i], rtol, atol).Should().BeTrue($"{algorithm} {dtype}, tensor of {sizes[i]}");
        }
    }

    // No fused multiply-add and no scalar tail: where an element sits in a flat buffer does not change its bits, so
    // flat mode gives the per-parameter fused path's bits exactly (ATen's fused kernels are only close, FlatTests).
    [Theory]
    [MemberData(nameof(CSharpFusedNames))]
    public void Flat_buffers_give_the_per_parameter_bits(string algorithm)
    {
        var sizes = new long[] { 13, 1, 70, 8 };
        List<Tensor> Run(bool flat)
        {
            var gen = new Generator(5);
            var ps = sizes.Select(n => new Parameter(torch.randn(n, generator: gen))).ToList();
            var grads = Enumerable.Range(0, 3).Select(_ => sizes.Select(n => torch.randn(n, generator: gen)).ToList()).ToList();
            using var opt = Algorithms.Create(Algorithms.Get(algorithm), ps, Implementation.Fused, flat: flat);
            foreach (var step in grads)
            {
                for (var i = 0; i < ps.Count; i++)
                {
                    if (ps[i].grad is { } g) g.copy_(step[i]);
                    else ps[i].grad = step[i].clone();
                }
                Algorithms.Step(opt);
            }
            return ps.Select(p => p.detach().clone()).Concat(ps.SelectMany(p => opt.State[p].Values.Select(t => t.clone()))).ToList();
        }
        var plain = Run(false);
        var flat = Run(true);
        flat.Should().HaveCount(plain.Count);
        for (var i = 0; i < plain.Count; i++) Trajectories.BitwiseEqual(flat[i], plain[i]).Should().BeTrue($"{algorithm}: tensor {i}");
    }

    // Rprop's update only multiplies, compares, selects and clamps: no rounding differs from the for-loop's.
    public static TheoryData<string, string> RpropCases() => GoldenFile.Cases(GoldenFile.Stepwise.Where(f => f.Algorithm == "Rprop"));

    [Theory]
    [MemberData(nameof(RpropCases))]
    public void Rprop_fused_gives_the_for_loops_bits(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        List<double[][]> Run(Implementation impl)
        {
            var ps = c.MakeParameters();
            using var opt = c.Create(ps, impl);
            return c.Run(ps, opt);
        }
        Trajectories.ShouldBeBitwise(Run(Implementation.Fused), Run(Implementation.ForLoop));
    }

    // The kernel writes memory directly; autograd must still see the parameter as changed, as after ATen's in-place
    // ops: a backward through a graph that saved the parameter before the step is refused on both paths, not silently
    // computed with the new values.
    [Theory]
    [MemberData(nameof(CSharpFusedNames))]
    public void A_backward_through_a_graph_saved_before_the_step_is_refused_as_on_the_for_loop(string algorithm)
    {
        foreach (var impl in new[] { Implementation.ForLoop, Implementation.Fused })
        {
            using var scope = NewDisposeScope();
            var w = new Parameter(torch.randn(5));
            using var opt = Algorithms.Get(algorithm).Create(new[] { w }, new[] { new KeyValuePair<string, object?>("implementation", impl) });
            var loss = (w * w).sum();
            w.grad = torch.ones(5);
            opt.step();
            var act = () => loss.backward();
            act.Should().Throw<Exception>($"{impl}").WithMessage("*modified by an inplace operation*");
        }
    }

    // ASGD's eta and mu are scalar state the kernel's factory advances once per parameter and step: they must follow
    // the for-loop's bits, through the switch from copying the parameter into ax (mu = 1) to averaging (t0 = 2).
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void ASGD_eta_mu_and_step_advance_as_in_the_for_loop(ScalarType dtype)
    {
        List<Dictionary<string, Tensor>> Run(Implementation impl)
        {
            var gen = new Generator(3);
            var ps = new[] { 17L, 1 }.Select(n => new Parameter(torch.randn(n, dtype: dtype, generator: gen))).ToList();
            using var opt = new ASGD(ps, lr: 0.05, lambd: 0.01, t0: 2, weight_decay: 0.01, implementation: impl);
            for (var step = 0; step < 6; step++)
            {
                foreach (var p in ps) p.grad = torch.randn(p.shape, dtype: dtype, generator: gen);
                opt.step();
            }
            return ps.Select(p => opt.State[p].ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.Float64))).ToList();
        }
        var fused = Run(Implementation.Fused);
        var loop = Run(Implementation.ForLoop);
        for (var i = 0; i < loop.Count; i++)
        {
            foreach (var key in new[] { "step", "eta", "mu" })
                fused[i][key].item<double>().Should().Be(loop[i][key].item<double>(), $"{key} of parameter {i}");
            loop[i]["mu"].item<double>().Should().BeLessThan(1, "the run reaches the averaging branch");
            var (atol, rtol) = dtype == ScalarType.Float32 ? (1e-6, 1e-5) : (1e-14, 1e-13);
            fused[i]["ax"].allclose(loop[i]["ax"], rtol, atol).Should().BeTrue($"ax of parameter {i}");
        }
    }

    // Adamax's max and Rprop's clamp keep a NaN as torch.maximum and clamp do, whatever Vector.Max does with one.
    [Fact]
    public void Maximum_and_minimum_give_NaN_for_a_NaN_in_either_operand_as_torch_does()
    {
        var a = new float[System.Numerics.Vector<float>.Count];
        var b = new float[a.Length];
        (a[0], b[0], a[1], b[1], a[2], b[2]) = (float.NaN, 1, 1, float.NaN, 2, 3);
        var (va, vb) = (new System.Numerics.Vector<float>(a), new System.Numerics.Vector<float>(b));
        foreach (var result in new[] { CpuFused.Maximum(va, vb), CpuFused.Minimum(va, vb) })
        {
            float.IsNaN(result[0]).Should().BeTrue();
            float.IsNaN(result[1]).Should().BeTrue();
        }
        CpuFused.Maximum(va, vb)[2].Should().Be(3);
        CpuFused.Minimum(va, vb)[2].Should().Be(2);
    }

    [Theory]
    [MemberData(nameof(CSharpFusedNames))]
    public void Tensors_it_cannot_serve_are_refused_naming_the_parameter(string algorithm)
    {
        var half = new Parameter(torch.ones(3, dtype: ScalarType.Float16));
        var act = () => Algorithms.Get(algorithm).Create(new[] { half }, new[] { new KeyValuePair<string, object?>("implementation", Implementation.Fused) });
        act.Should().Throw<ArgumentException>().WithMessage("*fused kernel cannot serve parameter*Float16*float32 or float64*CPU*");
        half.Dispose();
    }

    // A state tensor the kernel cannot walk (here made non-contiguous behind the optimizer's back) is found before any
    // tensor of the step is written.
    [Fact]
    public void A_refused_step_changes_nothing()
    {
        var ps = new[] { new Parameter(torch.randn(4, 3)), new Parameter(torch.randn(4, 3)) };
        using var opt = new RMSprop(ps, momentum: 0.9, implementation: Implementation.Fused);
        foreach (var p in ps) p.grad = torch.randn(4, 3);
        opt.step();
        var squareAvg = opt.State[ps[1]]["square_avg"];
        opt.State[ps[1]].Set("square_avg", squareAvg.t().contiguous().t());
        var before = StateSnapshot.Of(opt, ps);
        var parameters = ps.Select(p => p.detach().clone()).ToList();
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*square_avg*not contiguous*");
        StateSnapshot.Of(opt, ps).Should().BeEquivalentTo(before);
        for (var i = 0; i < ps.Length; i++) Trajectories.BitwiseEqual(ps[i], parameters[i]).Should().BeTrue();
    }
}
