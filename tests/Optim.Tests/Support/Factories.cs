using System.Collections.Generic;
using TorchSharp.Modules;

namespace Optim.Tests.Support;

/// <summary>Builds our optimizer for a golden case, from the options PyTorch ran with.</summary>
public static class Factories
{
    /// <summary>The golden files of the algorithms implemented so far.</summary>
    public static readonly string[] GoldenFiles = { "sgd.json" };

    /// <summary>Whether ATen has a fused kernel for the algorithm.</summary>
    public static bool HasFused(string algorithm) => algorithm is not "RMSprop";

    public static Optimizer Create(GoldenCase c, IEnumerable<Parameter> ps, Implementation impl = Implementation.ForLoop) => c.Algorithm switch
    {
        "SGD" => new SGD(ps, c.Option("lr", 1e-3), c.Option("momentum", 0), c.Option("dampening", 0), c.Option("weight_decay", 0),
            c.Flag("nesterov"), c.Flag("maximize"), impl),
        _ => throw new System.NotSupportedException(c.Algorithm),
    };
}
