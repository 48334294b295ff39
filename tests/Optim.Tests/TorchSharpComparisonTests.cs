using System;
using System.Collections.Generic;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;

namespace Optim.Tests;

/// <summary>
/// The same PyTorch trajectories replayed through TorchSharp's built-in optimizers: ours must be at least as close to
/// PyTorch as TorchSharp's in every configuration. The output lists both errors (the README's migration table).
/// Only goldens whose op order is PyTorch 2.x's take part: SGD, Adagrad, Adadelta and ASGD's (the same in 1.13 and 2.x),
/// and the 2.x replays of Adam, AdamW, RMSprop and Adamax (1.13's own classes follow 1.13's order, which TorchSharp copies).
/// </summary>
public class TorchSharpComparisonTests(ITestOutputHelper output)
{
    private static readonly string[] Files = { "sgd.json", "adagrad.json", "adam_2x.json", "adamw_2x.json", "rmsprop_2x.json", "adadelta.json", "adamax_2x.json", "asgd.json" };

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in Files)
            foreach (var c in GoldenCase.Load(file))
                if (TorchSharpBuiltIn(c, c.MakeParameters()) is { } opt) { opt.Dispose(); data.Add(file, c.ToString()); }
        return data;
    }

    // TorchSharp's factories, with the case's options; null where TorchSharp lacks an option (Adagrad's maximize).
    private static torch.optim.Optimizer? TorchSharpBuiltIn(GoldenCase c, IEnumerable<Parameter> ps) => c.Algorithm switch
    {
        "SGD" => torch.optim.SGD(ps, c.Option("lr", 1e-3), c.Option("momentum", 0), c.Option("dampening", 0), c.Option("weight_decay", 0), c.Flag("nesterov"), c.Flag("maximize")),
        "Adam" => torch.optim.Adam(ps, c.Option("lr", 1e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8), c.Option("weight_decay", 0), c.Flag("amsgrad"), c.Flag("maximize")),
        "AdamW" => torch.optim.AdamW(ps, c.Option("lr", 1e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8), c.Option("weight_decay", 1e-2), c.Flag("amsgrad"), c.Flag("maximize")),
        "Adagrad" when !c.Flag("maximize") => torch.optim.Adagrad(ps, c.Option("lr", 1e-2), c.Option("lr_decay", 0), c.Option("weight_decay", 0), c.Option("initial_accumulator_value", 0), c.Option("eps", 1e-10)),
        "RMSprop" => torch.optim.RMSProp(ps, c.Option("lr", 1e-2), c.Option("alpha", 0.99), c.Option("eps", 1e-8), c.Option("weight_decay", 0), c.Option("momentum", 0), c.Flag("centered"), c.Flag("maximize")),
        "Adadelta" => torch.optim.Adadelta(ps, c.Option("lr", 1.0), c.Option("rho", 0.9), c.Option("eps", 1e-6), c.Option("weight_decay", 0), c.Flag("maximize")),
        "Adamax" when !c.Flag("maximize") => torch.optim.Adamax(ps, c.Option("lr", 2e-3), c.Option("beta1", 0.9), c.Option("beta2", 0.999), c.Option("eps", 1e-8), c.Option("weight_decay", 0)),
        // PyTorch's default lr (1e-2), passed explicitly: TorchSharp's factory defaults to 1e-3.
        "ASGD" => torch.optim.ASGD(ps, c.Option("lr", 1e-2), c.Option("lambd", 1e-4), c.Option("alpha", 0.75), c.Option("t0", 1e6), c.Option("weight_decay", 0), c.Flag("maximize")),
        _ => null,
    };

    private static double MaxError(IReadOnlyList<double[][]> actual, IReadOnlyList<double[][]> expected) =>
        actual.Zip(expected).SelectMany(s => s.First.Zip(s.Second).SelectMany(p => p.First.Zip(p.Second).Select(v => Math.Abs(v.First - v.Second)))).Max();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Ours_are_at_least_as_close_to_PyTorch_as_TorchSharps(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        var ours = c.MakeParameters();
        using var optim = Factories.Create(c, ours);
        var oursError = MaxError(c.Run(ours, optim), c.Expected);

        var theirs = c.MakeParameters();
        using var builtIn = TorchSharpBuiltIn(c, theirs)!;
        double theirsError;
        try
        {
            theirsError = MaxError(c.Run(theirs, builtIn), c.Expected);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // TorchSharp's built-ins fail outright on some inputs (e.g. a parameter without a gradient).
            output.WriteLine($"{c.Algorithm} {id}: ours {oursError:E2}, TorchSharp threw {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            return;
        }
        output.WriteLine($"{c.Algorithm} {id}: ours {oursError:E2}, TorchSharp {theirsError:E2}");
        (double.IsNaN(theirsError) || oursError <= theirsError).Should().BeTrue($"ours {oursError:E2} vs TorchSharp {theirsError:E2}");
    }
}
