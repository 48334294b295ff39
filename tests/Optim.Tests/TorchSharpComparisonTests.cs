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
/// Only goldens whose op order is PyTorch 2.x's take part (<see cref="GoldenFile.InPyTorch2Order"/>: SGD's, Adagrad's, Adadelta's
/// and ASGD's own, the same in 1.13 and 2.x, and the 2.x replays of Adam, AdamW, RMSprop and Adamax; 1.13's own classes follow 1.13's
/// order, which TorchSharp copies), for the algorithms TorchSharp has (<see cref="TestProfile.TorchSharpBuiltIn"/>).
/// </summary>
public class TorchSharpComparisonTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var file in GoldenFile.InPyTorch2Order)
            foreach (var c in GoldenCase.Load(file.File))
                if (TorchSharpBuiltIn(c, c.MakeParameters()) is { } opt) { opt.Dispose(); data.Add(file.File, c.ToString()); }
        return data;
    }

    // TorchSharp's factory with the case's options; null where TorchSharp lacks the algorithm or an option.
    private static torch.optim.Optimizer? TorchSharpBuiltIn(GoldenCase c, IEnumerable<Parameter> ps) =>
        Algorithms.Profile(c.Info).TorchSharpBuiltIn?.Invoke(c.OptionsRecord(), ps);

    private static double MaxError(IReadOnlyList<double[][]> actual, IReadOnlyList<double[][]> expected) =>
        actual.Zip(expected).SelectMany(s => s.First.Zip(s.Second).SelectMany(p => p.First.Zip(p.Second).Select(v => Math.Abs(v.First - v.Second)))).Max();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Ours_are_at_least_as_close_to_PyTorch_as_TorchSharps(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        var ours = c.MakeParameters();
        using var optim = c.Create(ours);
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
