using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>Tests that change torch's process-wide default dtype run alone, after the parallel ones.</summary>
[CollectionDefinition(nameof(DefaultDtypeCollection), DisableParallelization = true)]
public sealed class DefaultDtypeCollection;

[Collection(nameof(DefaultDtypeCollection))]
public class StepCounterTests
{
    [Fact]
    public void Step_is_float64_when_the_default_dtype_is_float64()
    {
        // PyTorch's _get_scalar_dtype(): float64 if torch.get_default_dtype() is float64, else float32 — on its default
        // CPU path (the for-loop); fused runs always keep float32 steps (_get_scalar_dtype(is_fused=True)).
        var previous = get_default_dtype();
        set_default_dtype(ScalarType.Float64);
        try
        {
            var a = new Parameter(torch.ones(2, dtype: ScalarType.Float32));
            var b = new Parameter(torch.ones(2, dtype: ScalarType.Float32));
            var c = new Parameter(torch.ones(2, dtype: ScalarType.Float32));
            var fusedParam = new Parameter(torch.ones(2, dtype: ScalarType.Float32));
            using var adam = new Adam(new[] { a }, implementation: Implementation.ForLoop);
            using var adagrad = new Adagrad(new[] { b }, implementation: Implementation.ForLoop);
            using var rmsprop = new RMSprop(new[] { c }, implementation: Implementation.ForLoop);
            using var fused = new Adam(new[] { fusedParam }, implementation: Implementation.Fused);
            fusedParam.grad = torch.ones(2, dtype: ScalarType.Float32);
            fused.step();
            fused.State[fusedParam]["step"].dtype.Should().Be(ScalarType.Float32);
            foreach (var p in new[] { a, b, c }) p.grad = torch.ones(2, dtype: ScalarType.Float32);
            adam.step();
            adagrad.step();
            rmsprop.step();
            foreach (var step in new[] { adam.State[a]["step"], adagrad.State[b]["step"], rmsprop.State[c]["step"] })
            {
                step.dtype.Should().Be(ScalarType.Float64);
                step.ndim.Should().Be(0);
                step.item<double>().Should().Be(1.0);
            }
        }
        finally
        {
            set_default_dtype(previous);
        }
    }
}
