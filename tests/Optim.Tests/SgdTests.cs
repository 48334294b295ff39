using System;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

public class SgdTests
{
    [Fact]
    public void Parameters_without_gradients_are_left_alone()
    {
        var a = new Parameter(torch.ones(3));
        var b = new Parameter(torch.ones(2));
        using var opt = new SGD(new[] { a, b }, lr: 0.5, momentum: 0.9);
        a.grad = torch.ones(3);
        opt.step();
        b.data<float>().ToArray().Should().Equal(1f, 1f);
        opt.State.ContainsKey(b).Should().BeFalse();
        a.data<float>().ToArray().Should().Equal(0.5f, 0.5f, 0.5f);
    }

    [Fact]
    public void Maximize_never_writes_into_the_gradient()
    {
        var p = new Parameter(torch.ones(4));
        using var opt = new SGD(new[] { p }, lr: 0.1, momentum: 0.9, nesterov: true, maximize: true, weight_decay: 0.1);
        var grad = torch.arange(4, dtype: ScalarType.Float32);
        p.grad = grad;
        opt.step();
        opt.step();
        p.grad.data<float>().ToArray().Should().Equal(0f, 1f, 2f, 3f);
    }

    [Theory]
    [InlineData(-0.1, 0, 0, 0, false, "lr", "Invalid learning rate: -0.1")]
    [InlineData(0.1, -0.5, 0, 0, false, "momentum", "Invalid momentum value: -0.5")]
    [InlineData(0.1, 0, 0, -1e-5, false, "weight_decay", "Invalid weight_decay value: -1e-05")]
    [InlineData(0.1, 0, 0, 0, true, "nesterov", "Nesterov momentum requires a momentum and zero dampening")]
    [InlineData(0.1, 0.9, 0.1, 0, true, "nesterov", "Nesterov momentum requires a momentum and zero dampening")]
    [InlineData(0.1, 0.9, 1.5, 0, false, "dampening", "Invalid dampening value: 1.5")]
    [InlineData(double.NaN, 0, 0, 0, false, "lr", "Invalid learning rate: nan")]
    public void Rejects_invalid_hyperparameters_with_PyTorchs_message(double lr, double momentum, double dampening, double wd, bool nesterov, string param, string message)
    {
        var act = () => new SGD(new[] { new Parameter(torch.ones(1)) }, lr, momentum, dampening, wd, nesterov);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }
}
