using System;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// Muon's own rules: matrices only (PyTorch's message naming the shape), its update on tall and wide matrices, and a
/// resumed run continuing bit for bit. Its trajectories are muon_2x.json's (GoldenTests).
/// </summary>
public class MuonTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> GoldenCases() => GoldenFile.Cases(GoldenFile.Stepwise.Where(f => f.Algorithm == Muon.Info.Name));

    private static double StepTolerance(MuonOptions o) =>
        o.NsSteps == 0 ? 0 : o.NsCoefficients.SequenceEqual(MuonOptions.DefaultNsCoefficients) ? 0.35 : Math.Pow(2, -5);

    // The adjusted learning rate of PyTorch's _adjust_lr, for the tolerance.
    private static double AdjustedLr(MuonOptions o, long rows, long cols) =>
        o.Lr * (o.AdjustLrFn == MuonOptions.MatchRmsAdamW ? 0.2 * Math.Sqrt(Math.Max(rows, cols)) : Math.Sqrt(Math.Max(1, (double)rows / cols)));

    /// <summary>
    /// muon_2x.json (PyTorch 2.9's _single_tensor_muon transcribed, run with PyTorch 1.13's ops), one step at a time from
    /// the golden's parameters before it, within a tolerance in units of the step's adjusted lr (the update is about 1):
    /// <list type="bullet">
    /// <item>no Newton–Schulz iteration (ns_steps 0): bit for bit (every step of every such case, measured), which checks
    /// momentum, Nesterov, the lr adjustment, weight decay and the bfloat16 normalization exactly.</item>
    /// <item>a contracting polynomial (the "ns" case): 2^-5. 1.13's bfloat16 matrix products round differently from
    /// libtorch 2.10's (which accumulate in float32 and round once: the transcription run with such products gives our
    /// bits in the addmm cases), a bfloat16 ulp or two per step.</item>
    /// <item>PyTorch's default coefficients: 0.35. Their quintic's slope at 0 is 3.4, so five iterations amplify those
    /// ulps into up to 0.28 of the update (measured).</item>
    /// </list>
    /// The worst measured error per case is in the test output.
    /// </summary>
    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void Matches_the_transcribed_PyTorch_step_by_step(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        var ps = c.MakeParameters();
        using var opt = c.Create(ps);
        var options = (MuonOptions)c.OptionsRecord();
        var worst = 0.0;
        for (var s = 0; s < c.Grads.Count; s++)
        {
            if (s > 0)
            {
                using var _ = no_grad();
                for (var i = 0; i < ps.Count; i++) ps[i].copy_(c.Tensor(c.Expected[s - 1][i], c.Shapes[i]));
            }
            var actual = c.Run(ps, opt, s, s + 1)[0];
            for (var i = 0; i < ps.Count; i++)
            {
                var scale = AdjustedLr(options, c.Shapes[i][0], c.Shapes[i][1]);
                var atol = options.NsSteps == 0 ? 0 : StepTolerance(options) * scale + Tolerances.Atol(c.Dtype);
                for (var k = 0; k < actual[i].Length; k++)
                {
                    var error = Math.Abs(actual[i][k] - c.Expected[s][i][k]);
                    worst = Math.Max(worst, error / scale);
                    error.Should().BeLessThanOrEqualTo(atol, $"step {s}, parameter {i}, element {k}");
                }
            }
        }
        output.WriteLine($"{id}: worst step error {worst:G3} × adjusted lr");
    }

    [Theory]
    [InlineData(new long[] { 5 }, "torch.Size([5])")]
    [InlineData(new long[0], "torch.Size([])")]
    [InlineData(new long[] { 2, 3, 4 }, "torch.Size([2, 3, 4])")]
    public void Parameters_that_are_not_matrices_are_refused_with_PyTorchs_message_naming_the_shape(long[] shape, string size)
    {
        var act = () => new Muon(new[] { ("bias", new Parameter(torch.zeros(shape))) });
        act.Should().Throw<ArgumentException>()
            .WithMessage($"Muon only supports 2D parameters whereas we found a parameter with size: {size} (parameter 'bias')*");
    }

    [Fact]
    public void A_parameter_reshaped_after_construction_is_refused_before_anything_changes()
    {
        var w = new Parameter(torch.randn(3, 4));
        var v = new Parameter(torch.randn(2, 2));
        using var opt = new Muon(new[] { ("w", w), ("v", v) });
        w.grad = torch.randn(3, 4);
        v.grad = torch.randn(2, 2);
        opt.step();
        var before = new[] { w.clone(), v.clone() };
        using (no_grad()) v.set_(torch.randn(4));
        v.grad = torch.randn(4);
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("Muon only supports 2D parameters*torch.Size([4]) (parameter 'v')*");
        Trajectories.BitwiseEqual(w, before[0]).Should().BeTrue("nothing changes");
    }

    [Fact]
    public void Complex_and_sparse_are_refused()
    {
        var complex = () => new Muon(new[] { new Parameter(torch.zeros(2, 2, ScalarType.ComplexFloat32)) });
        complex.Should().Throw<ArgumentException>().WithMessage("Muon does not support complex parameters*");
        var p = new Parameter(torch.zeros(3, 2));
        using var opt = new Muon(new[] { p });
        p.grad = torch.ones(3, 2).to_sparse();
        var sparse = () => opt.step();
        sparse.Should().Throw<NotSupportedException>().WithMessage("Muon does not support sparse gradients");
    }

    [Theory]
    [InlineData(6, 2)]
    [InlineData(2, 6)]
    public void The_update_is_nearly_orthogonal_and_scaled_by_the_adjusted_lr(long rows, long cols)
    {
        // One step from a zero buffer without Nesterov or decay: param moves by -lr * ratio * NS(grad), and NS(grad) has
        // singular values near 1 (PyTorch's coefficients give roughly [0.5, 1.5]).
        torch.manual_seed(3);
        var p = new Parameter(torch.zeros(rows, cols, ScalarType.Float64));
        using var opt = new Muon(new[] { p }, lr: 0.1, weight_decay: 0, momentum: 0, nesterov: false);
        p.grad = torch.randn(rows, cols, ScalarType.Float64);
        opt.step();
        var ratio = Math.Sqrt(Math.Max(1, (double)rows / cols));
        using var update = p.detach() / (-0.1 * ratio);
        var singular = torch.linalg.svdvals(update).data<double>().ToArray();
        singular.Should().HaveCount((int)Math.Min(rows, cols)).And.OnlyContain(s => s > 0.3 && s < 1.6);
    }

    [Fact]
    public void A_resumed_run_continues_bit_for_bit()
    {
        var path = Path.Combine(Path.GetTempPath(), $"muon-{Guid.NewGuid():N}.ckpt");
        try
        {
            torch.manual_seed(11);
            var grads = Enumerable.Range(0, 10).Select(_ => new[] { torch.randn(4, 3), torch.randn(2, 5) }).ToList();
            var init = new[] { torch.randn(4, 3), torch.randn(2, 5) };
            var straight = init.Select(t => new Parameter(t.clone())).ToArray();
            var resumed = init.Select(t => new Parameter(t.clone())).ToArray();
            using var a = new Muon(straight, lr: 0.02, adjust_lr_fn: "match_rms_adamw");
            using (var b = new Muon(resumed, lr: 0.02, adjust_lr_fn: "match_rms_adamw"))
            {
                for (var s = 0; s < 5; s++) Step(b, resumed, grads[s]);
                b.Save(path);
            }
            using var c = new Muon(resumed);
            c.Load(path);
            c.ParamGroups[0].Options.AdjustLrFn.Should().Be("match_rms_adamw");
            for (var s = 0; s < 10; s++)
            {
                Step(a, straight, grads[s]);
                if (s >= 5) Step(c, resumed, grads[s]);
            }
            straight.Zip(resumed).Should().OnlyContain(e => Trajectories.BitwiseEqual(e.First, e.Second));
        }
        finally
        {
            File.Delete(path);
        }

        static void Step(Optimizer opt, Parameter[] ps, Tensor[] grads)
        {
            for (var i = 0; i < ps.Length; i++) ps[i].grad = grads[i].clone();
            opt.step();
        }
    }
}
