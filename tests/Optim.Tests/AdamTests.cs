using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim.Tests;

public class AdamTests
{
    [Theory]
    [InlineData(-0.1, 0.9, 0.999, 1e-8, 0, "lr", "Invalid learning rate: -0.1")]
    [InlineData(0.1, 0.9, 0.999, -1e-8, 0, "eps", "Invalid epsilon value: -1e-08")]
    [InlineData(0.1, 1.0, 0.999, 1e-8, 0, "beta1", "Invalid beta parameter at index 0: 1.0")]
    [InlineData(0.1, -0.5, 0.999, 1e-8, 0, "beta1", "Invalid beta parameter at index 0: -0.5")]
    [InlineData(0.1, 0.9, 1.5, 1e-8, 0, "beta2", "Invalid beta parameter at index 1: 1.5")]
    [InlineData(0.1, 0.9, 0.999, 1e-8, -0.01, "weight_decay", "Invalid weight_decay value: -0.01")]
    [InlineData(double.NaN, 0.9, 0.999, 1e-8, 0, "lr", "Invalid learning rate: nan")]
    [InlineData(0.1, double.NaN, 0.999, 1e-8, 0, "beta1", "Invalid beta parameter at index 0: nan")]
    [InlineData(0.1, 0.9, 0.999, double.PositiveInfinity, 0, "eps", "Invalid epsilon value: inf")]
    [InlineData(0.1, 0.9, 0.999, 1e-8, double.NegativeInfinity, "weight_decay", "Invalid weight_decay value: -inf")]
    // PyTorch's order: lr, eps, betas, weight_decay.
    [InlineData(-1, 2, 2, -1, -1, "lr", "Invalid learning rate: -1.0")]
    [InlineData(0.1, 2, 2, -1, -1, "eps", "Invalid epsilon value: -1.0")]
    [InlineData(0.1, 2, 2, 0, -1, "beta1", "Invalid beta parameter at index 0: 2.0")]
    public void Rejects_invalid_hyperparameters_with_PyTorchs_message(double lr, double beta1, double beta2, double eps, double wd, string param, string message)
    {
        var act = () => new Adam(new[] { new Parameter(torch.ones(1)) }, lr, beta1, beta2, eps, wd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Rejects_sparse_gradients_with_PyTorchs_message()
    {
        var p = new Parameter(torch.zeros(3));
        using var opt = new Adam(new[] { p });
        p.grad = torch.sparse_coo_tensor(torch.tensor(new long[] { 1 }).reshape(1, 1), torch.ones(1), new long[] { 3 });
        var act = () => opt.step();
        act.Should().Throw<NotSupportedException>().WithMessage("Adam does not support sparse gradients, please consider SparseAdam instead");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void State_holds_PyTorchs_keys_and_a_float32_step(bool amsgrad)
    {
        var p = new Parameter(torch.ones(2, 3));
        using var opt = new Adam(new[] { p }, amsgrad: amsgrad);
        p.grad = torch.ones(2, 3);
        opt.step();
        var state = opt.State[p];
        state.Keys.Should().Equal(amsgrad ? new[] { "step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq" } : new[] { "step", "exp_avg", "exp_avg_sq" });
        state["step"].dtype.Should().Be(ScalarType.Float32);
        state["step"].ndim.Should().Be(0);
        state["step"].device_type.Should().Be(DeviceType.CPU);
        state["step"].item<float>().Should().Be(1f);
        foreach (var key in state.Keys.Skip(1))
        {
            state[key].shape.Should().Equal(2, 3);
            state[key].dtype.Should().Be(ScalarType.Float32);
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void A_group_with_lr_1e_28_is_left_unchanged(ScalarType dtype) =>
        Behaviour.TinyLearningRateLeavesGroupUnchanged<AdamOptions>(g => new Adam(g, weight_decay: 0.1, amsgrad: true), lr: 0.01, dtype);

    [Fact]
    public void Steps_without_gradients_change_nothing() =>
        Behaviour.StepsWithoutGradientsChangeNothing<AdamOptions>(ps => new Adam(ps, lr: 0.1, weight_decay: 0.1, amsgrad: true));

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Zero_gradients_leave_params_unchanged_but_count_steps(ScalarType dtype) =>
        // exp_avg stays 0, so the update is 0 / (sqrt(0) / bc2 + eps) = 0; the step count still advances.
        Behaviour.ZeroGradients<AdamOptions>(ps => new Adam(ps, lr: 0.1, amsgrad: true), dtype, steps: 3, (opt, ps) =>
        {
            foreach (var p in ps)
            {
                opt.State[p]["step"].item<float>().Should().Be(3f);
                foreach (var key in new[] { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" })
                    Behaviour.Values(opt.State[p], key).Should().OnlyContain(v => v == 0);
            }
        });

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Gradients_are_never_modified(ScalarType dtype) =>
        Behaviour.GradientsAreNeverWritten<AdamOptions>(ps => new Adam(ps, lr: 0.1, weight_decay: 0.1, amsgrad: true, maximize: true), dtype);

    [Theory]
    [InlineData(false, ScalarType.Float32, true)]
    [InlineData(false, ScalarType.Float64, true)]
    [InlineData(true, ScalarType.Float32, true)]
    [InlineData(true, ScalarType.Float64, true)]
    [InlineData(false, ScalarType.Float32, false)]
    [InlineData(true, ScalarType.Float64, false)]
    public void Resumes_from_a_checkpoint_bit_exactly(bool amsgrad, ScalarType dtype, bool viaFile) =>
        Behaviour.ResumesBitExactly<AdamOptions>(ps => new Adam(ps, lr: 0.05, weight_decay: 0.1, amsgrad: amsgrad, maximize: true), dtype, viaFile);

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void Converges_on_linear_regression(bool contiguous, bool withScheduler) =>
        LinearRegression.ShouldConverge(ps => new Adam(ps, lr: 0.2), contiguous, withScheduler);

    [Fact]
    public void OneCycleLR_cycles_beta1()
    {
        var beta1s = new List<double>();
        var beta2s = new List<double>();
        LinearRegression.Train(ps => new Adam(ps, lr: 0.01), contiguous: true, steps: 20,
            scheduler: o => lr_scheduler.OneCycleLR(o, max_lr: 0.05, total_steps: 21),
            afterStep: o =>
            {
                var adam = (Adam)o;
                beta1s.Add(adam.ParamGroups[0].Options.Beta1);
                beta2s.Add(adam.Betas.Item2);
                ((IBetas)adam.ParamGroups[0]).Betas.Should().Be(adam.Betas);
            });
        beta1s.Distinct().Should().HaveCountGreaterThan(10);
        beta1s.Should().OnlyContain(b => b >= 0.85 - 1e-12 && b <= 0.95 + 1e-12);
        beta1s.Min().Should().BeApproximately(0.85, 0.01, "beta1 bottoms out at base_momentum where the lr peaks");
        beta2s.Should().OnlyContain(b => b == 0.999);
    }
}
