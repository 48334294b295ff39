using System;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// NAdam, RAdam and Rprop beyond the shared tables: PyTorch's state (keys, dtypes, creation), bit-exact resume on both
/// paths through state dicts and checkpoint files, PyTorch's messages, and the fused path refused by name.
/// </summary>
public sealed class NAdamRAdamRpropTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"optim-nrr-{Guid.NewGuid():N}");

    public NAdamRAdamRpropTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    public static TheoryData<string, string, Implementation, string> ResumeCases()
    {
        var data = new TheoryData<string, string, Implementation, string>();
        foreach (var (file, id) in new[]
                 {
                     ("nadam_2x.json", "all_float32 (Float32)"), ("nadam_2x.json", "weight_decay_maximize_float64 (Float64)"),
                     ("radam_2x.json", "all_float32 (Float32)"), ("radam_2x.json", "weight_decay_maximize_float64 (Float64)"),
                     ("rprop.json", "all_float32 (Float32)"), ("rprop.json", "step_sizes_float64 (Float64)"),
                 })
            foreach (var impl in new[] { Implementation.ForLoop, Implementation.Foreach })
                foreach (var via in new[] { "file", "state dict" })
                    data.Add(file, id, impl, via);
        return data;
    }

    [Theory]
    [MemberData(nameof(ResumeCases))]
    public void Resuming_after_10_of_25_steps_is_bit_identical_to_an_uninterrupted_run(string file, string id, Implementation impl, string via)
    {
        var c = GoldenCase.Get(file, id);
        var straightParams = c.MakeParameters();
        using var straight = c.Create(straightParams, impl);
        var expected = c.Run(straightParams, straight);

        var firstParams = c.MakeParameters();
        using var first = c.Create(firstParams, impl);
        var head = c.Run(firstParams, first, 0, 10);

        var resumedParams = firstParams.Select(p => new Parameter(p.detach().clone())).ToList();
        using var resumed = c.Create(resumedParams, impl);
        if (via == "file")
        {
            var path = Path.Combine(_dir, "opt.ckpt");
            first.Save(path);
            resumed.Load(path);
        }
        else
        {
            resumed.LoadStateDict(first.StateDict());
        }

        var tail = c.Run(resumedParams, resumed, 10);
        Trajectories.ShouldBeBitwise(head.Concat(tail).ToList(), expected);
    }

    [Fact]
    public void NAdam_state_has_PyTorchs_keys_dtypes_and_mu_product()
    {
        var p = new Parameter(torch.randn(3, 2, dtype: ScalarType.Float64));
        using var opt = new NAdam(new[] { p }, momentum_decay: 0.004);
        opt.State.Should().BeEmpty("state is created on a parameter's first gradient");
        p.grad = torch.randn(3, 2, dtype: ScalarType.Float64);
        opt.step();
        opt.step();

        var s = opt.State[p];
        s.Keys.Should().Equal("step", "mu_product", "exp_avg", "exp_avg_sq");
        s["step"].dtype.Should().Be(ScalarType.Float32);
        s["step"].ndim.Should().Be(0);
        s["step"].item<float>().Should().Be(2);
        // PyTorch keeps mu_product as a float32 scalar (the scalar dtype), even for float64 parameters.
        s["mu_product"].dtype.Should().Be(ScalarType.Float32);
        s["mu_product"].device_type.Should().Be(DeviceType.CPU);
        static double Mu(double t) => 0.9 * (1.0 - 0.5 * Math.Pow(0.96, t * 0.004));
        s["mu_product"].item<float>().Should().Be((float)((float)(1.0f * (float)Mu(1)) * (float)Mu(2)));
        s["exp_avg"].dtype.Should().Be(ScalarType.Float64);
    }

    [Fact]
    public void RAdam_state_has_PyTorchs_keys()
    {
        var p = new Parameter(torch.randn(4));
        using var opt = new RAdam(new[] { p });
        p.grad = torch.randn(4);
        opt.step();
        opt.State[p].Keys.Should().Equal("step", "exp_avg", "exp_avg_sq");
        opt.State[p]["step"].dtype.Should().Be(ScalarType.Float32);
    }

    [Fact]
    public void RAdam_takes_an_unrectified_step_of_lr_times_the_corrected_mean_at_first()
    {
        // rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t) is 1 at t = 1, so the first step is param -= lr * exp_avg / (1 - beta1).
        var p = new Parameter(torch.zeros(2, dtype: ScalarType.Float64));
        using var opt = new RAdam(new[] { p }, lr: 0.1, implementation: Implementation.ForLoop);
        p.grad = torch.tensor(new[] { 1.0, -2.0 });
        opt.step();
        p.data<double>().ToArray().Should().Equal(-0.1 * (0.1 * 1.0 / 0.1), -0.1 * (0.1 * -2.0 / 0.1));
    }

    [Fact]
    public void Rprop_state_starts_every_step_size_at_the_learning_rate_and_keeps_the_masked_gradient()
    {
        var p = new Parameter(torch.zeros(3));
        using var opt = new Rprop(new[] { p }, lr: 0.25, etaminus: 0.5, etaplus: 2, min_step: 0.01, max_step: 0.75);
        p.grad = torch.tensor(new[] { 1f, -1f, 0f });
        opt.step();
        var s = opt.State[p];
        s.Keys.Should().Equal("step", "prev", "step_size");
        s["step"].dtype.Should().Be(ScalarType.Float32);
        s["step_size"].data<float>().ToArray().Should().Equal(0.25f, 0.25f, 0.25f); // prev = 0: sign 0, factor 1
        p.data<float>().ToArray().Should().Equal(-0.25f, 0.25f, 0f);

        p.grad = torch.tensor(new[] { 3f, 1f, 1f });
        opt.step();
        // same sign: grow (0.5); flipped: shrink (0.125) and no move, prev 0; prev 0: unchanged (0.25)
        s["step_size"].data<float>().ToArray().Should().Equal(0.5f, 0.125f, 0.25f);
        p.data<float>().ToArray().Should().Equal(-0.75f, 0.25f, -0.25f);
        s["prev"].data<float>().ToArray().Should().Equal(3f, 0f, 1f);

        p.grad = torch.tensor(new[] { 1f, 1f, 1f });
        opt.step();
        s["step_size"].data<float>().ToArray().Should().Equal(new[] { 0.75f, 0.125f, 0.5f }, "growth is clamped at max_step");
    }

    [Fact]
    public void Rprop_keeps_its_pairs_under_PyTorchs_names()
    {
        using var opt = new Rprop(new[] { new Parameter(torch.ones(2)) }, etaminus: 0.4, etaplus: 1.5, min_step: 1e-3, max_step: 2);
        var group = opt.StateDict().ParamGroups[0];
        group["etas"].Should().Be((0.4, 1.5));
        group["step_sizes"].Should().Be((1e-3, 2.0));
        group.Hyperparameters.Select(h => h.Key).Should().Equal("lr", "etas", "step_sizes", "maximize", "implementation");
    }

    [Fact]
    public void Rprop_reports_bad_etas_as_PyTorch_does()
    {
        var act = () => new Rprop(new[] { new Parameter(torch.ones(2)) }, etaminus: 1.0);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "etas" && e.Message.StartsWith("Invalid eta values: 1.0, 1.2", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("NAdam")]
    [InlineData("RAdam")]
    public void OneCycleLR_drives_the_betas(string algorithm)
    {
        var p = new Parameter(torch.ones(2));
        using var opt = Algorithms.Create(algorithm, new[] { p }, Implementation.ForLoop, maximize: false);
        var scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr: 0.1, total_steps: 10);
        var betas = (torch.optim.IBetas)opt.ParamGroups.First();
        var before = betas.Betas.Item1;
        for (var i = 0; i < 3; i++)
        {
            p.grad = torch.ones(2);
            opt.step();
            scheduler.step();
        }
        betas.Betas.Item1.Should().BeLessThan(before, "OneCycleLR lowers beta1 while the learning rate rises");
    }
}
