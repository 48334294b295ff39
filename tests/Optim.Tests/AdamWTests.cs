using System;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

public class AdamWTests
{
    [Fact]
    public void Is_Adam_with_decoupled_weight_decay_and_its_own_name()
    {
        using var opt = new AdamW(new[] { new Parameter(torch.ones(1)) });
        opt.Should().BeAssignableTo<Adam>();
        opt.Defaults.WeightDecay.Should().Be(1e-2);
        opt.StateDict().OptimizerType.Should().Be("AdamW");
    }

    [Fact]
    public void Without_weight_decay_equals_Adam_bit_for_bit()
    {
        var c = RandomCases.Make(ScalarType.Float32, seed: 5);
        var a = c.MakeParameters();
        var b = c.MakeParameters();
        using var adam = new Adam(a, lr: 0.01, amsgrad: true);
        using var adamw = new AdamW(b, lr: 0.01, weight_decay: 0, amsgrad: true);
        Trajectories.ShouldBeBitwise(c.Run(b, adamw), c.Run(a, adam));
    }

    [Fact]
    public void A_state_dict_of_Adam_is_refused()
    {
        using var adam = new Adam(new[] { new Parameter(torch.ones(1)) });
        using var adamw = new AdamW(new[] { new Parameter(torch.ones(1)) });
        var act = () => adamw.LoadStateDict(adam.StateDict());
        act.Should().Throw<ArgumentException>();
    }

    [Theory]
    [InlineData(-0.1, 0.9, 0.999, 1e-8, 0, "lr", "Invalid learning rate: -0.1")]
    [InlineData(0.1, 0.9, 0.999, -1e-8, 0, "eps", "Invalid epsilon value: -1e-08")]
    [InlineData(0.1, 1.0, 0.999, 1e-8, 0, "beta1", "Invalid beta parameter at index 0: 1.0")]
    [InlineData(0.1, 0.9, 1.0, 1e-8, 0, "beta2", "Invalid beta parameter at index 1: 1.0")]
    [InlineData(0.1, 0.9, 0.999, 1e-8, -0.01, "weight_decay", "Invalid weight_decay value: -0.01")]
    [InlineData(0.1, 0.9, 0.999, double.NaN, 0, "eps", "Invalid epsilon value: nan")]
    public void Rejects_invalid_hyperparameters_with_PyTorchs_message(double lr, double beta1, double beta2, double eps, double wd, string param, string message)
    {
        var act = () => new AdamW(new[] { new Parameter(torch.ones(1)) }, lr, beta1, beta2, eps, wd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Rejects_sparse_gradients_with_PyTorchs_message()
    {
        var p = new Parameter(torch.zeros(3));
        using var opt = new AdamW(new[] { p });
        p.grad = torch.sparse_coo_tensor(torch.tensor(new long[] { 1 }).reshape(1, 1), torch.ones(1), new long[] { 3 });
        var act = () => opt.step();
        act.Should().Throw<NotSupportedException>().WithMessage("AdamW does not support sparse gradients");
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void A_group_with_lr_1e_28_is_left_unchanged(ScalarType dtype) =>
        // With lr 1e-28 the decoupled decay factor 1 - lr * wd rounds to 1.
        Behaviour.TinyLearningRateLeavesGroupUnchanged<AdamOptions>(g => new AdamW(g, weight_decay: 0.1, amsgrad: true), lr: 0.01, dtype);

    [Fact]
    public void Steps_without_gradients_change_nothing() =>
        Behaviour.StepsWithoutGradientsChangeNothing<AdamOptions>(ps => new AdamW(ps, lr: 0.1, weight_decay: 0.1));

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Zero_gradients_still_decay_the_params(ScalarType dtype) =>
        // As in PyTorch: the decoupled decay param.mul_(1 - lr * wd) runs every step; the Adam part adds 0.
        Behaviour.ZeroGradients<AdamOptions>(ps => new AdamW(ps, lr: 0.1), dtype, steps: 3,
            (opt, ps) => ps.Should().OnlyContain(p => opt.State[p]["step"].item<float>() == 3f),
            expectedParams: (initial, steps) =>
            {
                var p = initial.clone();
                for (var s = 0; s < steps; s++) p.mul_(1 - 0.1 * 1e-2);
                return p;
            });

    [Fact]
    public void Zero_gradients_without_weight_decay_leave_params_unchanged() =>
        Behaviour.ZeroGradients<AdamOptions>(ps => new AdamW(ps, lr: 0.1, weight_decay: 0), ScalarType.Float32, steps: 2,
            (opt, ps) => ps.Should().OnlyContain(p => opt.State[p]["step"].item<float>() == 2f));

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Gradients_are_never_modified(ScalarType dtype) =>
        Behaviour.GradientsAreNeverWritten<AdamOptions>(ps => new AdamW(ps, lr: 0.1, weight_decay: 0.1, amsgrad: true, maximize: true), dtype);

    [Theory]
    [InlineData(false, ScalarType.Float32, true)]
    [InlineData(true, ScalarType.Float64, true)]
    [InlineData(true, ScalarType.Float32, false)]
    public void Resumes_from_a_checkpoint_bit_exactly(bool amsgrad, ScalarType dtype, bool viaFile) =>
        Behaviour.ResumesBitExactly<AdamOptions>(ps => new AdamW(ps, lr: 0.05, weight_decay: 0.1, amsgrad: amsgrad, maximize: true), dtype, viaFile);

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void Converges_on_linear_regression(bool contiguous, bool withScheduler) =>
        LinearRegression.ShouldConverge(ps => new AdamW(ps, lr: 0.2), contiguous, withScheduler);
}
