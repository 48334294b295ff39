using System;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim.Tests;

public class AdadeltaTests
{
    [Theory]
    [InlineData(-0.1, 0.9, 1e-6, 0, "lr", "Invalid learning rate: -0.1")]
    [InlineData(1.0, 1.5, 1e-6, 0, "rho", "Invalid rho value: 1.5")]
    [InlineData(1.0, -0.1, 1e-6, 0, "rho", "Invalid rho value: -0.1")]
    [InlineData(1.0, 0.9, -1e-6, 0, "eps", "Invalid epsilon value: -1e-06")]
    [InlineData(1.0, 0.9, 1e-6, -0.1, "weight_decay", "Invalid weight_decay value: -0.1")]
    // PyTorch's order: lr, rho, eps, weight_decay.
    [InlineData(1.0, 2, -1, -1, "rho", "Invalid rho value: 2.0")]
    [InlineData(1.0, 0.9, -1, -1, "eps", "Invalid epsilon value: -1.0")]
    public void Rejects_invalid_hyperparameters_with_PyTorchs_message(double lr, double rho, double eps, double wd, string param, string message)
    {
        var act = () => new Adadelta(new[] { new Parameter(torch.ones(1)) }, lr, rho, eps, wd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Foreach)]
    public void State_has_PyTorchs_keys_and_dtypes(Implementation impl)
    {
        var p = new Parameter(torch.ones(2, 3, dtype: ScalarType.Float64));
        using var opt = new Adadelta(new[] { p }, implementation: impl);
        p.grad = torch.ones(2, 3, dtype: ScalarType.Float64);
        opt.step();
        opt.State[p].Keys.Should().Equal("step", "square_avg", "acc_delta");
        opt.State[p]["step"].dtype.Should().Be(ScalarType.Float32);
        opt.State[p]["step"].ndim.Should().Be(0);
        opt.State[p]["step"].item<float>().Should().Be(1f);
        opt.State[p]["acc_delta"].dtype.Should().Be(ScalarType.Float64);
    }

    [Fact]
    public void Defaults_are_PyTorchs()
    {
        using var opt = new Adadelta(new[] { new Parameter(torch.ones(1)) });
        opt.Defaults.Should().Be(new AdadeltaOptions { Lr = 1.0, Rho = 0.9, Eps = 1e-6, WeightDecay = 0, Maximize = false });
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void A_group_with_lr_1e_28_is_left_unchanged(ScalarType dtype) =>
        Behaviour.TinyLearningRateLeavesGroupUnchanged<AdadeltaOptions>(g => new Adadelta(g, weight_decay: 0.1), lr: 1.0, dtype);

    [Fact]
    public void Steps_without_gradients_change_nothing() =>
        Behaviour.StepsWithoutGradientsChangeNothing<AdadeltaOptions>(ps => new Adadelta(ps, weight_decay: 0.1));

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Gradients_are_never_modified(ScalarType dtype) =>
        Behaviour.GradientsAreNeverWritten<AdadeltaOptions>(ps => new Adadelta(ps, weight_decay: 0.1, maximize: true), dtype);

    [Theory]
    [InlineData(ScalarType.Float32, true, Implementation.ForLoop)]
    [InlineData(ScalarType.Float64, false, Implementation.ForLoop)]
    [InlineData(ScalarType.Float32, true, Implementation.Foreach)]
    [InlineData(ScalarType.Float64, false, Implementation.Foreach)]
    public void Resumes_from_a_checkpoint_bit_exactly(ScalarType dtype, bool viaFile, Implementation impl) =>
        Behaviour.ResumesBitExactly<AdadeltaOptions>(ps => new Adadelta(ps, rho: 0.8, weight_decay: 0.1, maximize: true, implementation: impl), dtype, viaFile);

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Converges_on_linear_regression(bool contiguous, bool withScheduler) =>
        LinearRegression.ShouldConverge(ps => new Adadelta(ps, lr: 20), contiguous, withScheduler, factor: 2);
}

public class AdamaxTests
{
    [Theory]
    [InlineData(-0.1, 0.9, 0.999, 1e-8, 0, "lr", "Invalid learning rate: -0.1")]
    [InlineData(0.1, 1.0, 0.999, 1e-8, 0, "beta1", "Invalid beta parameter at index 0: 1.0")]
    [InlineData(0.1, 0.9, -0.1, 1e-8, 0, "beta2", "Invalid beta parameter at index 1: -0.1")]
    [InlineData(0.1, 0.9, 0.999, -1e-8, 0, "eps", "Invalid epsilon value: -1e-08")]
    [InlineData(0.1, 0.9, 0.999, 1e-8, -0.5, "weight_decay", "Invalid weight_decay value: -0.5")]
    // PyTorch's order: lr, eps, betas, weight_decay.
    [InlineData(0.1, 2, 2, -1, -1, "eps", "Invalid epsilon value: -1.0")]
    [InlineData(0.1, 2, 2, 0, -1, "beta1", "Invalid beta parameter at index 0: 2.0")]
    public void Rejects_invalid_hyperparameters_with_PyTorchs_message(double lr, double beta1, double beta2, double eps, double wd, string param, string message)
    {
        var act = () => new Adamax(new[] { new Parameter(torch.ones(1)) }, lr, beta1, beta2, eps, wd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Foreach)]
    public void State_has_PyTorchs_keys_and_dtypes(Implementation impl)
    {
        var p = new Parameter(torch.ones(2, 3));
        using var opt = new Adamax(new[] { p }, implementation: impl);
        p.grad = torch.ones(2, 3);
        opt.step();
        opt.State[p].Keys.Should().Equal("step", "exp_avg", "exp_inf");
        opt.State[p]["step"].dtype.Should().Be(ScalarType.Float32);
        opt.State[p]["step"].item<float>().Should().Be(1f);
    }

    [Fact]
    public void Defaults_are_PyTorchs_and_betas_drive_every_group()
    {
        using var opt = new Adamax(new[] { new Parameter(torch.ones(1)) });
        opt.Defaults.Should().Be(new AdamaxOptions { Lr = 2e-3, Beta1 = 0.9, Beta2 = 0.999, Eps = 1e-8 });
        opt.AddParamGroup(new ParamGroupSpec<AdamaxOptions>(new[] { new Parameter(torch.ones(1)) }));
        opt.Betas = (0.8, 0.95);
        opt.ParamGroups.Should().AllSatisfy(g => (g.Options.Beta1, g.Options.Beta2).Should().Be((0.8, 0.95)));
        ((IBetas)opt.ParamGroups[1]).Betas.Should().Be((0.8, 0.95));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void A_group_with_lr_1e_28_is_left_unchanged(ScalarType dtype) =>
        Behaviour.TinyLearningRateLeavesGroupUnchanged<AdamaxOptions>(g => new Adamax(g, weight_decay: 0.1), lr: 0.1, dtype);

    [Fact]
    public void Steps_without_gradients_change_nothing() =>
        Behaviour.StepsWithoutGradientsChangeNothing<AdamaxOptions>(ps => new Adamax(ps, weight_decay: 0.1));

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Gradients_are_never_modified(ScalarType dtype) =>
        Behaviour.GradientsAreNeverWritten<AdamaxOptions>(ps => new Adamax(ps, weight_decay: 0.1, maximize: true), dtype);

    [Theory]
    [InlineData(ScalarType.Float32, true, Implementation.ForLoop)]
    [InlineData(ScalarType.Float64, false, Implementation.ForLoop)]
    [InlineData(ScalarType.Float32, true, Implementation.Foreach)]
    [InlineData(ScalarType.Float64, false, Implementation.Foreach)]
    public void Resumes_from_a_checkpoint_bit_exactly(ScalarType dtype, bool viaFile, Implementation impl) =>
        Behaviour.ResumesBitExactly<AdamaxOptions>(ps => new Adamax(ps, lr: 0.01, beta1: 0.8, weight_decay: 0.1, maximize: true, implementation: impl), dtype, viaFile);

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Converges_on_linear_regression(bool contiguous, bool withScheduler) =>
        LinearRegression.ShouldConverge(ps => new Adamax(ps, lr: 0.3), contiguous, withScheduler);
}

public class ASGDTests
{
    [Theory]
    [InlineData(-0.1, 1e-4, 0.75, 1e6, 0, "lr", "Invalid learning rate: -0.1")]
    [InlineData(0.1, -1e-4, 0.75, 1e6, 0, "lambd", "Invalid lambd value: -0.0001")]
    [InlineData(0.1, 1e-4, -0.75, 1e6, 0, "alpha", "Invalid alpha value: -0.75")]
    [InlineData(0.1, 1e-4, 0.75, double.NaN, 0, "t0", "Invalid t0 value: nan")]
    [InlineData(0.1, 1e-4, 0.75, 1e6, -0.25, "weight_decay", "Invalid weight_decay value: -0.25")]
    // PyTorch's order: lr, lambd, alpha, weight_decay.
    [InlineData(0.1, -1, -1, 1e6, -1, "lambd", "Invalid lambd value: -1.0")]
    [InlineData(0.1, 0, -1, 1e6, -1, "alpha", "Invalid alpha value: -1.0")]
    public void Rejects_invalid_hyperparameters_with_PyTorchs_message(double lr, double lambd, double alpha, double t0, double wd, string param, string message)
    {
        var act = () => new ASGD(new[] { new Parameter(torch.ones(1)) }, lr, lambd, alpha, t0, wd);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == param && e.Message.StartsWith(message, StringComparison.Ordinal));
    }

    [Fact]
    public void A_negative_t0_is_accepted_as_in_PyTorch()
    {
        using var opt = new ASGD(new[] { new Parameter(torch.ones(1)) }, t0: -5);
        opt.Defaults.T0.Should().Be(-5);
    }

    [Theory]
    [InlineData(Implementation.ForLoop)]
    [InlineData(Implementation.Foreach)]
    public void State_has_PyTorchs_keys_and_dtypes_with_eta_and_mu_as_float32_tensors(Implementation impl)
    {
        var p = new Parameter(torch.ones(2, 3, dtype: ScalarType.Float64));
        using var opt = new ASGD(new[] { p }, lr: 0.1, t0: 0, implementation: impl);
        p.grad = torch.ones(2, 3, dtype: ScalarType.Float64);
        opt.step();
        var state = opt.State[p];
        state.Keys.Should().Equal("step", "eta", "mu", "ax");
        foreach (var key in new[] { "step", "eta", "mu" })
        {
            state[key].dtype.Should().Be(ScalarType.Float32, key);
            state[key].ndim.Should().Be(0, key);
        }
        state["ax"].dtype.Should().Be(ScalarType.Float64);
        state["step"].item<float>().Should().Be(1f);
        // eta = lr / (1 + lambd * lr * step) ** alpha, rounded to float32; mu = 1 / max(1, step - t0).
        state["eta"].item<float>().Should().Be((float)(0.1 / Math.Pow(1 + 1e-4 * 0.1 * 1, 0.75)));
        state["mu"].item<float>().Should().Be(1f);
    }

    [Fact]
    public void Defaults_are_PyTorchs_not_TorchSharps()
    {
        using var opt = new ASGD(new[] { new Parameter(torch.ones(1)) });
        opt.Defaults.Should().Be(new ASGDOptions { Lr = 1e-2, Lambd = 1e-4, Alpha = 0.75, T0 = 1e6 }, "PyTorch's lr is 1e-2; TorchSharp's factory has 1e-3");
    }

    public static TheoryData<string> StateCases() => GoldenCase.Names("asgd.json");

    // No parameter depends on ax (or, with t0, on mu): the golden records them after every step, and they must match bit for bit.
    [Theory]
    [MemberData(nameof(StateCases))]
    public void The_running_average_eta_and_mu_match_PyTorch_bit_for_bit(string id)
    {
        var c = GoldenCase.Get("asgd.json", id);
        c.ExpectedState.Should().NotBeNull();
        var ps = c.MakeParameters();
        using var opt = (ASGD)c.Create(ps, Implementation.ForLoop);
        for (var s = 0; s < c.Grads.Count; s++)
        {
            c.SetGradients(ps, s);
            opt.step();
            foreach (var (key, perParam) in c.ExpectedState![s])
            {
                for (var i = 0; i < ps.Count; i++)
                {
                    if (perParam[i] is not { } expected)
                    {
                        opt.State.ContainsKey(ps[i]).Should().BeFalse();
                        continue;
                    }
                    var actual = GoldenCase.Values(opt.State[ps[i]][key]);
                    actual.Select(BitConverter.DoubleToInt64Bits).Should().Equal(expected.Select(BitConverter.DoubleToInt64Bits), $"state '{key}' of param {i} after step {s}");
                }
            }
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void A_group_with_lr_1e_28_is_left_unchanged(ScalarType dtype) =>
        Behaviour.TinyLearningRateLeavesGroupUnchanged<ASGDOptions>(g => new ASGD(g, weight_decay: 0.1, lambd: 0), lr: 0.1, dtype);

    [Fact]
    public void Steps_without_gradients_change_nothing() =>
        Behaviour.StepsWithoutGradientsChangeNothing<ASGDOptions>(ps => new ASGD(ps, weight_decay: 0.1));

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float64)]
    public void Gradients_are_never_modified(ScalarType dtype) =>
        Behaviour.GradientsAreNeverWritten<ASGDOptions>(ps => new ASGD(ps, weight_decay: 0.1, maximize: true), dtype);

    [Theory]
    [InlineData(ScalarType.Float32, true, Implementation.ForLoop)]
    [InlineData(ScalarType.Float64, false, Implementation.ForLoop)]
    [InlineData(ScalarType.Float32, true, Implementation.Foreach)]
    [InlineData(ScalarType.Float64, false, Implementation.Foreach)]
    public void Resumes_from_a_checkpoint_bit_exactly(ScalarType dtype, bool viaFile, Implementation impl) =>
        Behaviour.ResumesBitExactly<ASGDOptions>(ps => new ASGD(ps, lr: 0.05, lambd: 0.01, t0: 4, weight_decay: 0.1, maximize: true, implementation: impl), dtype, viaFile);

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Converges_on_linear_regression(bool contiguous, bool withScheduler) =>
        LinearRegression.ShouldConverge(ps => new ASGD(ps, lr: 0.15), contiguous, withScheduler, factor: 10);
}
