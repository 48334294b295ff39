using System;
using System.Collections.Generic;
using TorchSharp.Modules;

namespace Optim.Tests.Support;

/// <summary>Every algorithm by name, with settings that exercise its state (momentum, amsgrad, centered).</summary>
public static class Algorithms
{
    public static readonly string[] Names = { "SGD", "SGDMomentumNesterov", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta", "Adamax", "ASGD", "NAdam", "RAdam", "Rprop" };

    public static Optimizer Create(string name, IEnumerable<Parameter> ps, Implementation impl, bool maximize = true) => name switch
    {
        "SGD" => new SGD(ps, 0.01, momentum: 0.9, nesterov: true, weight_decay: 0.01, maximize: maximize, implementation: impl),
        "SGDMomentumNesterov" => new SGDMomentumNesterov(ps, 0.01, weight_decay: 0.01, decoupled_weight_decay: true, maximize: maximize, implementation: impl),
        "Adam" => new Adam(ps, 0.01, weight_decay: 0.01, amsgrad: true, maximize: maximize, implementation: impl),
        "AdamW" => new AdamW(ps, 0.01, amsgrad: true, maximize: maximize, implementation: impl),
        "Adagrad" => new Adagrad(ps, 0.01, lr_decay: 0.01, weight_decay: 0.01, maximize: maximize, implementation: impl),
        "RMSprop" => new RMSprop(ps, 0.01, momentum: 0.5, centered: true, weight_decay: 0.01, maximize: maximize, implementation: impl),
        "Adadelta" => new Adadelta(ps, 0.5, rho: 0.8, weight_decay: 0.01, maximize: maximize, implementation: impl),
        "Adamax" => new Adamax(ps, 0.01, weight_decay: 0.01, maximize: maximize, implementation: impl),
        // t0 = 2: the running average moves from the third step on.
        "ASGD" => new ASGD(ps, 0.01, lambd: 0.01, t0: 2, weight_decay: 0.01, maximize: maximize, implementation: impl),
        "NAdam" => new NAdam(ps, 0.01, weight_decay: 0.01, momentum_decay: 0.01, maximize: maximize, implementation: impl),
        "RAdam" => new RAdam(ps, 0.01, weight_decay: 0.01, decoupled_weight_decay: true, maximize: maximize, implementation: impl),
        "Rprop" => new Rprop(ps, 0.01, etaminus: 0.4, etaplus: 1.3, min_step: 1e-4, max_step: 1, maximize: maximize, implementation: impl),
        _ => throw new ArgumentException(name, nameof(name)),
    };
}
