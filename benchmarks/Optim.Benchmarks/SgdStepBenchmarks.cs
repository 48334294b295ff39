using System.Linq;
using BenchmarkDotNet.Attributes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Benchmarks;

/// <summary>One SGD-with-momentum step: Optim versus TorchSharp's built-in SGD, same parameters and gradients.</summary>
[MemoryDiagnoser]
public class SgdStepBenchmarks
{
    private Parameter[] _ours = null!;
    private Parameter[] _theirs = null!;
    private Optimizer _optim = null!;
    private torch.optim.Optimizer _torchSharp = null!;

    /// <summary>Tensors × elements per tensor.</summary>
    [Params("2000x100", "20x1000000")]
    public string Shape { get; set; } = "2000x100";

    [GlobalSetup]
    public void Setup()
    {
        var parts = Shape.Split('x').Select(long.Parse).ToArray();
        torch.manual_seed(0);
        _ours = Enumerable.Range(0, (int)parts[0]).Select(_ => new Parameter(torch.randn(parts[1]))).ToArray();
        _theirs = _ours.Select(p => new Parameter(p.detach().clone())).ToArray();
        foreach (var p in _ours.Concat(_theirs)) p.grad = torch.randn_like(p);
        _optim = new SGD(_ours, lr: 1e-3, momentum: 0.9);
        _torchSharp = torch.optim.SGD(_theirs, 1e-3, momentum: 0.9);
        _optim.step();
        _torchSharp.step();
    }

    [Benchmark(Baseline = true)]
    public void TorchSharpBuiltIn() => _torchSharp.step();

    [Benchmark]
    public void Optim() => _optim.step();
}
