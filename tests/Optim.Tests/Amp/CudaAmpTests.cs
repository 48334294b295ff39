using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Amp;
using Optim.Tests.Support;
using Optim.Utils;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Amp;

/// <summary>The scaler and clipping on CUDA tensors; reported as skipped where no CUDA device exists.</summary>
public class CudaAmpTests
{
    [CudaFact]
    public void The_scaler_skips_and_backs_off_on_CUDA_on_the_fused_and_foreach_routes()
    {
        using var scope = NewDisposeScope();
        foreach (var impl in new[] { Implementation.Fused, Implementation.Foreach })
        {
            var ps = ScalerScript.MakeParameters(ScalarType.BFloat16).Select(p => new Parameter(p.detach().cuda(), requires_grad: true)).ToList();
            using var optimizer = new Adam(ps, 0.01, implementation: impl);
            using var scaler = new GradScaler(init_scale: 1024, growth_interval: 2);
            var script = new[] { Grad.Clean, Grad.Inf, Grad.Clean, Grad.Clean, Grad.NaN };
            var model = new ScalerScript.ScaleModel(1024, 2, 0.5, 2);
            for (var s = 0; s < script.Length; s++)
            {
                scaler.scale(torch.ones(1, device: torch.CUDA));
                var before = ScalerScript.Snapshot(ps);
                ScalerScript.SetScaledGrads(ps, s, script[s], model.Scale);
                scaler.step(optimizer);
                scaler.update();
                model.Update(script[s] != Grad.Clean);
                scaler.get_scale().Should().Be(model.Scale, $"{impl}, iteration {s}");
                if (script[s] != Grad.Clean)
                    ScalerScript.ParametersShouldBeBitwise(ps, before.Select(t => new Parameter(t)).ToList(), $"{impl}: a skipped step");
            }
            optimizer.State[ps[0]]["step"].item<float>().Should().Be(3, impl.ToString());
        }
    }

    // ATen's CUDA unscale kernel has no bfloat16; the scaler's float32 route gives the CPU kernel's bits and flags.
    [CudaFact]
    public void Bfloat16_gradients_unscale_on_CUDA_to_the_CPU_kernels_bits()
    {
        using var scope = NewDisposeScope();
        foreach (var poisoned in new[] { false, true })
        {
            var gen = new Generator(5);
            var cpu = Enumerable.Range(0, 4).Select(i => new Parameter(torch.zeros(50 + i, dtype: ScalarType.BFloat16), requires_grad: true)
            {
                grad = (torch.randn(50 + i, generator: gen) * 3000).to(ScalarType.BFloat16),
            }).ToList();
            if (poisoned) cpu[2].grad![7] = float.PositiveInfinity;
            var cuda = cpu.Select(p => new Parameter(p.detach().cuda(), requires_grad: true) { grad = p.grad!.cuda() }).ToList();
            float Unscale(List<Parameter> ps)
            {
                using var optimizer = new SGD(ps, 0.1);
                using var scaler = new GradScaler(init_scale: 1024);
                scaler.scale(torch.ones(1, device: ps[0].device));
                scaler.unscale_(optimizer);
                scaler.step(optimizer);
                scaler.update();
                return (float)scaler.get_scale();
            }
            var cpuScale = Unscale(cpu);
            Unscale(cuda).Should().Be(cpuScale, "the same found_inf");
            cpuScale.Should().Be(poisoned ? 512 : 1024);
            for (var i = 0; i < cpu.Count; i++) Trajectories.BitwiseEqual(cuda[i].grad!, cpu[i].grad!).Should().BeTrue($"gradient {i}");
        }
    }

    // The C# fused kernels read CPU memory: on CUDA, asking for them is refused before anything moves.
    [CudaFact]
    public void The_CSharp_fused_kernels_are_refused_on_CUDA()
    {
        foreach (var algorithm in AlgorithmCatalog.All.Where(a => a.FusedKernelIsCSharp))
        {
            using var p = new Parameter(torch.ones(3, device: torch.CUDA));
            var act = () => algorithm.Create(new[] { p }, new[] { new KeyValuePair<string, object?>("implementation", Implementation.Fused) });
            act.Should().Throw<ArgumentException>($"{algorithm.Name}").WithMessage("*fused kernel cannot serve parameter*CPU*");
        }
    }

    [CudaFact]
    public void Clip_grad_norm_on_CUDA_matches_the_CPU()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var cpu = Enumerable.Range(0, 20).Select(i => new Parameter(torch.zeros(10 + i), requires_grad: true) { grad = torch.randn(10 + i, generator: gen) }).ToList();
        var cuda = cpu.Select(p => new Parameter(p.detach().cuda(), requires_grad: true) { grad = p.grad!.cuda() }).ToList();
        var expected = ClipGrad.clip_grad_norm_(cpu, 1.0);
        var actual = ClipGrad.clip_grad_norm_(cuda, 1.0);
        actual.device_type.Should().Be(DeviceType.CUDA);
        actual.cpu().allclose(expected, rtol: 1e-5).Should().BeTrue();
        for (var i = 0; i < cpu.Count; i++) cuda[i].grad!.cpu().allclose(cpu[i].grad!, rtol: 1e-5, atol: 1e-7).Should().BeTrue();
    }
}
