using System;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

public class AdagradTests
{
    [Theory]
    [InlineData(-0.1, 0, 0, 0, 1e-10, "lr", "Invalid learning rate: -0.1")]
    [InlineData(0.1, -0.5, 0, 0, 1e-10, "lr_decay", "Invalid lr_decay value: -0.5")]
    [InlineData(0.1, 0, -1e-5, 0, 1e-10, "weight_decay", "Invalid weight_decay value: -1e-05")]
    [InlineData(0.1, 0, 0, -0.1, 1e-10, "initial_accumulator_value", "Invalid initial_accumulator_value value: -0.1")]
    [InlineData(0.1, 0, 0, 0, -1e-10, "eps", "Invalid epsilon value: -1e-10")]
    [InlineData(0.1, double.NaN, 0, 0, 1e-10, "lr_decay", "Invalid lr_decay value: nan")]
    [InlineData(0.1, 0, 0, double.PositiveInfinity, 1e-10, "initial_accumulator_value", "Invalid initial_accumulator_value value: inf")]
    // PyTorch's order: lr, lr_decay, weight_decay, initial_accumulator_value, eps.
    [InlineData(0.1, -1, -1, -1, -1, "lr_decay", "Invalid lr_decay value: -1.0")]
    [InlineData(0.1, 0, -1, -1, -1, "weight_decay", "Invalid weight_decay value: -1.0")]
    [InlineData(0.1, 0, 0, -1, -1, "initial_accumulator_value", "Invalid initial_accumulator_value value: -1.0")]
    public void Rejects_invalid_hyperparameters_with_PyTorchs_message(double lr, double lrDecay, double wd, double initial, double eps, string param, string message)
    {
        var act = () => new Adagrad(new[] { new Parameter(torch.ones(1)) }, lr, lrDecay, wd, initial, eps);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }

    [Fact]
    public void State_exists_from_construction()
    {
        var a = new Parameter(torch.ones(2, 3));
        var b = new Parameter(torch.ones(4, dtype: ScalarType.Float64));
        using var opt = new Adagrad(new[] { a }, initial_accumulator_value: 0.25);
        opt.AddParamGroup(new ParamGroupSpec<AdagradOptions>(new[] { b }));
        foreach (var p in new[] { a, b })
        {
            var state = opt.State[p];
            state.Keys.Should().Equal("step", "sum");
            state["step"].dtype.Should().Be(ScalarType.Float32);
            state["step"].ndim.Should().Be(0);
            state["step"].item<float>().Should().Be(0f);
            state["sum"].dtype.Should().Be(p.dtype);
            state["sum"].shape.Should().Equal(p.shape);
            Behaviour.Values(state, "sum").Should().OnlyContain(v => v == 0.25);
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void A_group_with_lr_1e_28_is_left_unchanged(ScalarType dtype) =>
        Behaviour.TinyLearningRateLeavesGroupUnchanged<AdagradOptions>(g => new Adagrad(g, lr_decay: 0.1, weight_decay: 0.1), lr: 0.1, dtype);

    [Fact]
    public void Steps_without_gradients_change_nothing() =>
        Behaviour.StepsWithoutGradientsChangeNothing<AdagradOptions>(ps => new Adagrad(ps, lr: 0.1, weight_decay: 0.1, initial_accumulator_value: 0.5),
            checkState: (opt, ps) =>
            {
                // The eager state is there, untouched: no step was counted.
                foreach (var p in ps)
                {
                    opt.State[p]["step"].item<float>().Should().Be(0f);
                    Behaviour.Values(opt.State[p], "sum").Should().OnlyContain(v => v == 0.5);
                }
            });

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Zero_gradients_leave_params_unchanged_but_count_steps(ScalarType dtype) =>
        // sum stays at its initial value and the update is -clr * 0 / (sqrt(sum) + eps) = 0.
        Behaviour.ZeroGradients<AdagradOptions>(ps => new Adagrad(ps, lr: 0.1, lr_decay: 0.1), dtype, steps: 3, (opt, ps) =>
        {
            foreach (var p in ps)
            {
                opt.State[p]["step"].item<float>().Should().Be(3f);
                Behaviour.Values(opt.State[p], "sum").Should().OnlyContain(v => v == 0);
            }
        });

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Gradients_are_never_modified(ScalarType dtype) =>
        Behaviour.GradientsAreNeverWritten<AdagradOptions>(ps => new Adagrad(ps, lr: 0.1, weight_decay: 0.1, maximize: true), dtype);

    [Theory]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.Float64, true)]
    [InlineData(ScalarType.Float32, false)]
    public void Resumes_from_a_checkpoint_bit_exactly(ScalarType dtype, bool viaFile) =>
        Behaviour.ResumesBitExactly<AdagradOptions>(
            ps => new Adagrad(ps, lr: 0.1, lr_decay: 0.05, weight_decay: 0.1, initial_accumulator_value: 0.1, maximize: true), dtype, viaFile);

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void Converges_on_linear_regression(bool contiguous, bool withScheduler) =>
        LinearRegression.ShouldConverge(ps => new Adagrad(ps, lr: 0.5), contiguous, withScheduler);
}
