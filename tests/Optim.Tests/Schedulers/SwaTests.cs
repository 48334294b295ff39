using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Schedulers;
using Optim.Swa;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Schedulers;

/// <summary>swa_utils: AveragedModel (SWA and EMA, with and without buffers), update_bn, and an exact resume with EMA.</summary>
// Counts native tensors and seeds the global generator: runs alone (see LeakTests).
[Collection(nameof(LeakTests))]
public class SwaTests
{
    private static Sequential Net(long seed)
    {
        torch.manual_seed(seed);
        return nn.Sequential(("fc", nn.Linear(4, 3)), ("bn", nn.BatchNorm1d(3)), ("out", nn.Linear(3, 2)));
    }

    private static void Perturb(Sequential model, int round)
    {
        using var noGrad = torch.no_grad();
        var i = 0;
        foreach (var p in model.parameters()) p.add_(torch.full_like(p, 0.1 * (round + 1) * (++i % 3 - 1) + 0.01 * round));
    }

    [Fact]
    public void SWA_is_the_running_mean_and_buffers_follow_the_model()
    {
        using var model = Net(1);
        using var swa = new AveragedModel(model, Net(2));
        var snapshots = new List<Tensor[]>();
        for (var round = 0; round < 4; round++)
        {
            Perturb(model, round);
            model.train();
            using (torch.no_grad()) model.call(torch.randn(8, 4));   // moves the batch-norm statistics
            snapshots.Add(model.parameters().Select(p => p.detach().clone()).ToArray());
            swa.update_parameters(model);
        }

        swa.n_averaged.item<long>().Should().Be(4);
        var averaged = swa.module.parameters().ToArray();
        for (var i = 0; i < averaged.Length; i++)
        {
            var mean = snapshots.Select(s => s[i]).Aggregate((a, b) => a + b) / 4;
            torch.allclose(averaged[i], mean, rtol: 1e-6, atol: 1e-7).Should().BeTrue($"parameter {i}");
        }

        var bn = (BatchNorm1d)swa.module.modules().First(m => m is BatchNorm1d);
        var modelBn = (BatchNorm1d)model.modules().First(m => m is BatchNorm1d);
        bn.running_mean!.data<float>().ToArray().Should().Equal(modelBn.running_mean!.data<float>().ToArray(), "buffers are copied, not averaged");
        swa.state_dict().Keys.Should().Contain(new[] { "n_averaged", "module.fc.weight", "module.bn.running_mean" });
    }

    [Fact]
    public void The_default_CPU_average_is_PyTorchs_avg_fn_bit_for_bit()
    {
        using var model = Net(3);
        using var swa = new AveragedModel(model, Net(4));
        swa.update_parameters(model);
        var before = swa.module.parameters().Select(p => p.detach().clone()).ToArray();
        Perturb(model, 1);
        swa.update_parameters(model);
        var n = torch.tensor(1L);
        var expected = before.Zip(model.parameters(), (a, p) => a + (p.detach() - a) / (n + 1)).ToArray();
        foreach (var (actual, e) in swa.module.parameters().Zip(expected))
            actual.detach().data<float>().ToArray().Should().Equal(e.data<float>().ToArray());
    }

    [Fact]
    public void EMA_with_buffers_lerps_parameters_and_buffers()
    {
        using var model = Net(5);
        using var ema = new AveragedModel(model, Net(6), multi_avg_fn: SwaUtils.get_ema_multi_avg_fn(0.9), use_buffers: true);
        ema.update_parameters(model);
        var before = ema.module.parameters().Cast<Tensor>().Concat(ema.module.buffers()).Select(t => t.detach().clone()).ToArray();
        Perturb(model, 2);
        model.train();
        using (torch.no_grad()) model.call(torch.randn(8, 4));
        ema.update_parameters(model);
        var current = model.parameters().Cast<Tensor>().Concat(model.buffers()).ToArray();
        var after = ema.module.parameters().Cast<Tensor>().Concat(ema.module.buffers()).ToArray();
        for (var i = 0; i < after.Length; i++)
        {
            if (!after[i].is_floating_point())
            {
                // num_batches_tracked (long): PyTorch's integer branch, ema * decay + param * (1 - decay), truncated.
                continue;
            }

            var expected = before[i].lerp(current[i].detach(), 0.1);
            after[i].detach().data<float>().ToArray().Should().Equal(expected.data<float>().ToArray(), $"tensor {i}");
        }

        var bad = () => SwaUtils.get_ema_multi_avg_fn(1.5);
        bad.Should().Throw<ArgumentException>().WithMessage("Invalid decay value 1.5 provided. Please provide a value in [0,1] range.*");
        var both = () => new AveragedModel(model, Net(7), avg_fn: SwaUtils.get_swa_avg_fn(), multi_avg_fn: SwaUtils.get_swa_multi_avg_fn());
        both.Should().Throw<ArgumentException>().WithMessage("Only one of avg_fn and multi_avg_fn should be provided*");
    }

    [Fact]
    public void update_bn_recomputes_the_running_statistics_and_restores_momentum_and_mode()
    {
        using var model = Net(8);
        model.eval();
        var bn = (BatchNorm1d)model.modules().First(m => m is BatchNorm1d);
        torch.manual_seed(9);
        var batches = Enumerable.Range(0, 4).Select(_ => torch.randn(16, 4) * 3 + 1).ToList();
        SwaUtils.update_bn(batches, model);

        model.training.Should().BeFalse();
        bn.momentum.Should().Be(0.1);
        using var noGrad = torch.no_grad();
        var features = batches.Select(b => ((Linear)model.modules().First(m => m is Linear)).call(b)).ToList();
        var mean = features.Select(f => f.mean(new long[] { 0 })).Aggregate((a, b) => a + b) / 4;
        torch.allclose(bn.running_mean!, mean, rtol: 1e-5, atol: 1e-6).Should().BeTrue();
        bn.num_batches_tracked!.item<long>().Should().Be(4);
    }

    /// <summary>
    /// A run with SGD, SequentialLR(LinearLR warm-up, CosineAnnealingLR) and an EMA model, interrupted mid-warm-up and
    /// later, resumed from the optimizer's and scheduler's state dicts and the EMA model's saved state, ends bit for bit
    /// where the uninterrupted run ends.
    /// </summary>
    [Theory]
    [InlineData(3)]
    [InlineData(14)]
    public void A_run_with_warmup_cosine_and_EMA_resumes_bit_for_bit(int interruptAt)
    {
        const int total = 24;
        var (reference, referenceEma) = Train(total, null);
        var folder = Directory.CreateTempSubdirectory("optim-swa-resume").FullName;
        try
        {
            var (interrupted, _) = Train(interruptAt, folder);
            interrupted.Should().NotBeNull();
            var (resumed, resumedEma) = Train(total, folder, resumeFrom: interruptAt);
            foreach (var (a, b) in reference.Zip(resumed)) b.Should().Equal(a);
            foreach (var (a, b) in referenceEma.Zip(resumedEma)) b.Should().Equal(a);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static (List<float[]> Weights, List<float[]> Ema) Train(int steps, string? folder, int resumeFrom = 0)
    {
        using var model = Net(11);
        using var ema = new AveragedModel(model, Net(12), multi_avg_fn: SwaUtils.get_ema_multi_avg_fn(0.8), use_buffers: true);
        using var optimizer = new SGD(model.parameters(), lr: 0.05, momentum: 0.9);
        var scheduler = new SequentialLR(optimizer,
            new LRScheduler[] { new LinearLR(optimizer, start_factor: 0.1, total_iters: 5), new CosineAnnealingLR(optimizer, T_max: 19, eta_min: 0.001) },
            milestones: new[] { 5 });

        if (resumeFrom > 0)
        {
            model.load(Path.Combine(folder!, "model.bin"));
            ema.load(Path.Combine(folder!, "ema.bin"));
            optimizer.Load(Path.Combine(folder!, "optimizer.ckpt"));
            scheduler.LoadStateDict(Saved!);
        }

        for (var step = resumeFrom; step < steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            var generator = new Generator((ulong)(100 + step));
            var x = torch.randn(new long[] { 8, 4 }, generator: generator);
            var y = torch.randn(new long[] { 8, 2 }, generator: generator);
            optimizer.zero_grad();
            nn.functional.mse_loss(model.call(x), y).backward();
            optimizer.step();
            ema.update_parameters(model);
            scheduler.step();
        }

        if (folder is not null && resumeFrom == 0)
        {
            model.save(Path.Combine(folder, "model.bin"));
            ema.save(Path.Combine(folder, "ema.bin"));
            optimizer.Save(Path.Combine(folder, "optimizer.ckpt"));
            Saved = scheduler.StateDict();
        }

        return (Snapshot(model), Snapshot(ema));
    }

    private static SchedulerStateDict? Saved;

    private static List<float[]> Snapshot(nn.Module module) =>
        module.state_dict().Values.Where(t => t.dtype == ScalarType.Float32).Select(t => t.data<float>().ToArray()).ToList();
}
