using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Tests.Support;

/// <summary>
/// The training runs behind the checkpoint fixtures in <c>Fixtures/*.v1.ckpt</c>: each builds an optimizer over small
/// parameters with exactly representable values and takes three steps with exactly representable gradients, so a
/// test can rebuild the state the fixture holds and compare it bit for bit.
/// </summary>
public static class V1Fixtures
{
    public static readonly string[] Names = { "sgd-momentum", "adam-amsgrad-two-groups", "adagrad", "rmsprop-centered" };

    public const int Steps = 3;

    public static string FileName(string name) => $"{name}.v1.ckpt";

    public static List<Parameter> Parameters() => new()
    {
        new Parameter(torch.tensor(new[] { 0.5f, -1.25f, 2f, 0.75f })),
        new Parameter(torch.tensor(new[] { 1.5f, -0.5f, 0.25f, -2f, 1f, 0.125f }).reshape(2, 3)),
        new Parameter(torch.tensor(new[] { -0.375f, 3f })),
    };

    public static Optimizer Create(string name, IReadOnlyList<Parameter> ps) => name switch
    {
        "sgd-momentum" => new SGD(ps, 0.1, momentum: 0.9, weight_decay: 0.01),
        "adam-amsgrad-two-groups" => new Adam(new[]
        {
            new ParamGroupSpec<AdamOptions>(ps.Take(1)),
            new ParamGroupSpec<AdamOptions>(ps.Skip(1), o => o with { Lr = 0.05, Beta1 = 0.8, WeightDecay = 0.1, Maximize = true }),
        }, lr: 0.01, amsgrad: true),
        "adagrad" => new Adagrad(ps, 0.1, lr_decay: 0.01, initial_accumulator_value: 0.5),
        "rmsprop-centered" => new RMSprop(ps, 0.01, momentum: 0.5, centered: true),
        _ => throw new ArgumentException(name, nameof(name)),
    };

    /// <summary>The optimizer after <see cref="Steps"/> steps, and its parameters.</summary>
    public static (Optimizer Optimizer, List<Parameter> Parameters) Trained(string name)
    {
        var ps = Parameters();
        var opt = Create(name, ps);
        for (var step = 0; step < Steps; step++)
        {
            foreach (var (p, i) in ps.Select((p, i) => (p, i)))
            {
                var n = (int)p.numel();
                var values = Enumerable.Range(0, n).Select(k => (float)(((k * 7 + step * 3 + i) % 11) - 5) / 4).ToArray();
                p.grad = torch.tensor(values).reshape(p.shape);
            }
            opt.step();
        }
        return (opt, ps);
    }
}
