using System.Collections.Generic;
using TorchSharp.Modules;

namespace Optim.Tests.Support;

/// <summary>
/// Builds our optimizer for a golden case, from the options PyTorch ran with. A case lists only the options that differ
/// from PyTorch's defaults, so every fallback here is that algorithm's own default.
/// </summary>
public static class Factories
{
    /// <summary>
    /// The golden files of the algorithms implemented so far: PyTorch 1.13's classes, and for NAdam (whose 1.13 class
    /// computes another algorithm) and RAdam (whose 1.13 class lacks maximize and decoupled_weight_decay) the 2.x replays
    /// that hold every configuration.
    /// </summary>
    public static readonly string[] GoldenFiles =
        { "sgd.json", "sgd_momentum_nesterov.json", "adam.json", "adamw.json", "adagrad.json", "rmsprop.json", "adadelta.json", "adamax.json", "asgd.json",
          "nadam_2x.json", "radam.json", "radam_2x.json", "rprop.json" };

    /// <summary>PyTorch 2.x's op order replayed with PyTorch 1.13's ops (tools/golden/README.md).</summary>
    public static readonly string[] ReplayGoldenFiles = { "adam_2x.json", "adamw_2x.json", "adagrad_2x.json", "rmsprop_2x.json", "adamax_2x.json" };

    /// <summary>Whether ATen has a fused kernel for the algorithm.</summary>
    public static bool HasFused(string algorithm) => AlgorithmCatalog.Get(algorithm).HasFusedKernel;

    /// <summary>Whether PyTorch's foreach path runs the same ops as its for-loop (see each algorithm's catalog entry).</summary>
    public static bool ForeachIsBitwise(string algorithm) => AlgorithmCatalog.Get(algorithm).ForeachMatchesForLoop;

    public static Optimizer Create(GoldenCase c, IEnumerable<Parameter> ps, Implementation impl = Implementation.ForLoop) => c.Algorithm switch
    {
        "SGD" => new SGD(ps, c.Option("lr", 1e-3), c.Option("momentum", 0), c.Option("dampening", 0), c.Option("weight_decay", 0),
            c.Flag("nesterov"), c.Flag("maximize"), impl),
        "Adam" => new Adam(ps, c.Option("lr", 1e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8),
            c.Option("weight_decay", 0), c.Flag("amsgrad"), c.Flag("maximize"), impl),
        "AdamW" => new AdamW(ps, c.Option("lr", 1e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8),
            c.Option("weight_decay", 1e-2), c.Flag("amsgrad"), c.Flag("maximize"), impl),
        "Adagrad" => new Adagrad(ps, c.Option("lr", 1e-2), c.Option("lr_decay", 0), c.Option("weight_decay", 0),
            c.Option("initial_accumulator_value", 0), c.Option("eps", 1e-10), c.Flag("maximize"), impl),
        "RMSprop" => new RMSprop(ps, c.Option("lr", 1e-2), c.Option("alpha", 0.99), c.Option("eps", 1e-8), c.Option("weight_decay", 0),
            c.Option("momentum", 0), c.Flag("centered"), c.Flag("maximize"), impl),
        "SGDMomentumNesterov" => new SGDMomentumNesterov(ps, c.Option("lr", 1e-3), c.Option("momentum", 0.9), c.Option("dampening", 0),
            c.Flag("nesterov", fallback: true), c.Option("weight_decay", 0), c.Flag("decoupled_weight_decay"), c.Flag("maximize"), impl),
        "Adadelta" => new Adadelta(ps, c.Option("lr", 1.0), c.Option("rho", 0.9), c.Option("eps", 1e-6), c.Option("weight_decay", 0),
            c.Flag("maximize"), impl),
        "Adamax" => new Adamax(ps, c.Option("lr", 2e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8),
            c.Option("weight_decay", 0), c.Flag("maximize"), impl),
        "ASGD" => new ASGD(ps, c.Option("lr", 1e-2), c.Option("lambd", 1e-4), c.Option("alpha", 0.75), c.Option("t0", 1e6),
            c.Option("weight_decay", 0), c.Flag("maximize"), impl),
        "NAdam" => new NAdam(ps, c.Option("lr", 2e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8),
            c.Option("weight_decay", 0), c.Option("momentum_decay", 4e-3), c.Flag("decoupled_weight_decay"), c.Flag("maximize"), impl),
        "RAdam" => new RAdam(ps, c.Option("lr", 1e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8),
            c.Option("weight_decay", 0), c.Flag("decoupled_weight_decay"), c.Flag("maximize"), impl),
        "Rprop" => new Rprop(ps, c.Option("lr", 1e-2), c.Option("etaminus", 0.5), c.Option("etaplus", 1.2), c.Option("min_step", 1e-6),
            c.Option("max_step", 50), c.Flag("maximize"), impl),
        _ => throw new System.NotSupportedException(c.Algorithm),
    };
}
