using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

// Flat mode on CUDA (skipped where there is no GPU): the same comparisons as on the CPU, and buffers per device.
public partial class FlatTests
{
    // A C# fused kernel serves the CPU only (CpuFusedTests).
    public static TheoryData<string, Implementation> CudaDenseAlgorithmsAndPaths()
    {
        var data = new TheoryData<string, Implementation>();
        foreach (var row in DenseAlgorithmsAndPaths())
        {
            var (algorithm, impl) = ((string)row[0], (Implementation)row[1]);
            if (impl != Implementation.Fused || !Algorithms.Get(algorithm).FusedKernelIsCSharp) data.Add(algorithm, impl);
        }
        return data;
    }

    [CudaTheory]
    [MemberData(nameof(CudaDenseAlgorithmsAndPaths))]
    public void On_CUDA_training_by_backward_matches_the_same_path(string algorithm, Implementation impl) =>
        TrainingByBackwardMatchesTheSamePath(algorithm, impl, CUDA);

    // One group with parameters on the CPU and on the GPU: a buffer per device, each stepped on its own device.
    [CudaTheory]
    [InlineData(Implementation.Foreach)]
    [InlineData(Implementation.Fused)]
    public void A_group_on_the_CPU_and_CUDA_gets_a_buffer_per_device(Implementation impl)
    {
        List<Parameter> Make()
        {
            manual_seed(11);
            return new List<Parameter> { new(randn(3, 4)), new(randn(5).cuda()), new(randn(7)), new(randn(2, 2).cuda()) };
        }
        List<double[][]> Run(bool flat, out Adam opt, out List<Parameter> ps)
        {
            ps = Make();
            opt = new Adam(ps, lr: 0.01, weight_decay: 0.1, implementation: impl, flat: flat);
            var trajectory = new List<double[][]>();
            for (var s = 0; s < 5; s++)
            {
                foreach (var p in ps)
                {
                    using var g = (p.detach() * (s + 1)).sin();
                    if (p.grad is { } existing) existing.copy_(g); else p.grad = g.clone();
                }
                opt.step();
                trajectory.Add(ps.Select(GoldenCase.Values).ToArray());
            }
            return trajectory;
        }
        var actual = Run(true, out var flatOpt, out var flatParams);
        var expected = Run(false, out var plainOpt, out var plainParams);
        using (flatOpt)
        using (plainOpt)
        {
            if (impl == Implementation.Fused) Trajectories.ShouldBeClose(actual, expected, 2e-6, 2e-5);
            else Trajectories.ShouldBeBitwise(actual, expected);
            flatOpt.FlatBuffersOf(0)!.Select(b => b.Flat.device_type).Should().BeEquivalentTo(new[] { DeviceType.CPU, DeviceType.CUDA });
            FlatSteps(flatOpt).Should().Be(5);
            StatesShouldMatch(flatOpt, flatParams, plainOpt, plainParams, bitwise: impl != Implementation.Fused);
        }
    }

    // CUDA state saved in both formats resumes on CUDA bit for bit, and loads onto CPU parameters as the same values.
    [CudaTheory]
    [InlineData(Implementation.Foreach, false)]
    [InlineData(Implementation.Fused, false)]
    [InlineData(Implementation.Foreach, true)]
    [InlineData(Implementation.Fused, true)]
    public void CUDA_checkpoints_resume_bit_for_bit_and_load_onto_the_parameters_device(Implementation impl, bool pyTorchFormat)
    {
        var c = RandomCases.Make(ScalarType.Float32, seed: 5, steps: 8);
        List<Parameter> OnCuda() => c.MakeParameters().Select(p => new Parameter(p.detach().cuda())).ToList();
        void Save(Optimizer o, Stream s) { if (pyTorchFormat) o.SavePyTorch(s); else o.Save(s); }
        void Load(Optimizer o, Stream s) { if (pyTorchFormat) o.LoadPyTorch(s); else o.Load(s); }

        var straightParams = OnCuda();
        using var straight = new Adam(straightParams, lr: 0.01, amsgrad: true, implementation: impl);
        var expected = c.Run(straightParams, straight);

        var firstParams = OnCuda();
        using var first = new Adam(firstParams, lr: 0.01, amsgrad: true, implementation: impl);
        var trajectory = c.Run(firstParams, first, 0, 4);
        using var stream = new MemoryStream();
        Save(first, stream);

        var resumedParams = firstParams.Select(p => new Parameter(p.detach().clone())).ToList();
        using var resumed = new Adam(resumedParams, lr: 0.01, amsgrad: true, implementation: impl);
        stream.Position = 0;
        Load(resumed, stream);
        trajectory.AddRange(c.Run(resumedParams, resumed, 4, 8));
        Trajectories.ShouldBeBitwise(trajectory, expected);

        var cpuParams = firstParams.Select(p => new Parameter(p.detach().cpu())).ToList();
        using var onCpu = new Adam(cpuParams, lr: 0.01, amsgrad: true, implementation: impl);
        stream.Position = 0;
        Load(onCpu, stream);
        for (var i = 0; i < cpuParams.Count; i++)
        {
            foreach (var (key, value) in first.State[firstParams[i]])
            {
                var loaded = onCpu.State[cpuParams[i]][key];
                loaded.device_type.Should().Be(DeviceType.CPU, $"state '{key}' follows its parameter");
                Trajectories.BitwiseEqual(loaded, value.cpu()).Should().BeTrue($"state '{key}' of parameter {i}");
            }
        }
    }
}
