using System.Collections.Generic;
using System.Reflection;
using TsOptions = TorchSharp.Modules.OptimizerOptions;

namespace Optim.Tests.Support;

/// <summary>Comparisons of TorchSharp's optimizer options objects (what a TorchSharp <c>state_dict()</c> holds).</summary>
public static class TorchSharpOptions
{
    /// <summary>Same count, and per group the same learning rates and the same value in every public field.</summary>
    public static void ShouldEqual(IReadOnlyList<TsOptions> actual, IReadOnlyList<TsOptions> expected, string what)
    {
        actual.Should().HaveSameCount(expected, what);
        for (var g = 0; g < expected.Count; g++)
        {
            var group = $"{what}, group {g}";
            actual[g].LearningRate.Should().Be(expected[g].LearningRate, group);
            actual[g].InitialLearningRate.Should().Be(expected[g].InitialLearningRate, group);
            foreach (var f in expected[g].GetType().GetFields(BindingFlags.Public | BindingFlags.Instance))
                f.GetValue(actual[g]).Should().Be(f.GetValue(expected[g]), $"option {f.Name} of {group}");
        }
    }
}
