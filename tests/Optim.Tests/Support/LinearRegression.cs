using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.optim;

namespace Optim.Tests.Support;

/// <summary>
/// A small deterministic least-squares problem trained with real autograd: Y = X·W* + b* + noise, X 64×8, three outputs,
/// MSE loss. Data come from <see cref="Random"/> (torch's global generator is shared by parallel tests).
/// </summary>
public static class LinearRegression
{
    public sealed record Result(double InitialLoss, double FinalLoss, IReadOnlyList<double> LearningRates);

    /// <summary>
    /// Trains W (8×3; non-contiguous unless <paramref name="contiguous"/>) and b (3) for <paramref name="steps"/> steps;
    /// <paramref name="scheduler"/> (optional) is stepped after every optimizer step.
    /// </summary>
    public static Result Train(Func<IReadOnlyList<Parameter>, Optimizer> make, bool contiguous, int steps = 50,
        Func<Optimizer, lr_scheduler.LRScheduler>? scheduler = null, Action<Optimizer>? afterStep = null)
    {
        var random = new Random(2024);
        Tensor Normal(params long[] shape)
        {
            var n = shape.Aggregate(1L, (a, b) => a * b);
            var values = new float[n];
            for (var i = 0; i < n; i++)
                values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
            return torch.tensor(values).reshape(shape);
        }

        var x = Normal(64, 8);
        var wTrue = Normal(8, 3);
        var bTrue = Normal(3);
        var y = x.mm(wTrue) + bTrue + 0.1 * Normal(64, 3);

        var w = contiguous ? new Parameter(Normal(8, 3)) : new Parameter(Normal(3, 8).t());
        w.is_contiguous().Should().Be(contiguous);
        var b = new Parameter(torch.zeros(3));
        using var opt = make(new[] { w, b });
        var sched = scheduler?.Invoke(opt);

        double Loss()
        {
            using var _ = no_grad();
            using var l = (x.mm(w) + b - y).pow(2).mean();
            return l.item<float>();
        }

        var initial = Loss();
        var lrs = new List<double>();
        for (var s = 0; s < steps; s++)
        {
            opt.zero_grad();
            using (var loss = (x.mm(w) + b - y).pow(2).mean()) loss.backward();
            lrs.Add(opt.ParamGroups.First().LearningRate);
            opt.step();
            sched?.step();
            afterStep?.Invoke(opt);
        }
        w.is_contiguous().Should().Be(contiguous, "in-place updates keep the parameter's layout");
        return new Result(initial, Loss(), lrs);
    }

    /// <summary>Trains with and without StepLR(10, 0.5), contiguous or not, and requires the loss to fall by <paramref name="factor"/>.</summary>
    public static void ShouldConverge(Func<IReadOnlyList<Parameter>, Optimizer> make, bool contiguous, bool withScheduler, double factor = 20)
    {
        var result = Train(make, contiguous, scheduler: withScheduler ? o => lr_scheduler.StepLR(o, 10, 0.5) : null);
        result.FinalLoss.Should().BeLessThan(result.InitialLoss / factor,
            $"the loss should fall by {factor}x in 50 steps (from {result.InitialLoss} to {result.FinalLoss})");
        if (withScheduler)
        {
            // StepLR really drove the optimizer: the lr halved every 10 steps.
            result.LearningRates[49].Should().Be(result.LearningRates[0] / 16);
        }
    }
}
