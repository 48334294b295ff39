using System.Linq;
using CompareOptimizers;
using TrainClassifier;

namespace Optim.Tests.Samples;

/// <summary>The CompareOptimizers sample's table (linked from samples/CompareOptimizers) on a short schedule.</summary>
public class CompareOptimizersTests
{
    [Fact]
    public void Every_algorithm_of_the_catalog_has_a_row()
    {
        Contender.ForCatalog().Select(c => c.Algorithm).Should().Equal(AlgorithmCatalog.All);
        Contender.All.Should().HaveSameCount(AlgorithmCatalog.All);
        Contender.All.Where(c => c.Algorithm.RequiresClosure).Should().OnlyContain(c => c.FullBatch, "a closure must see the same data each time");
    }

    [Fact]
    public void Every_row_learns_the_digits_from_the_same_start()
    {
        var options = new ComparisonOptions { Steps = 60, EvaluateEvery = 60 };
        using var data = DigitsData.Load(options.Seed, options.TrainSamples, options.ValidationSamples);

        var runs = Contender.ForCatalog().Select(c => Comparison.Run(c, options, data)).ToList();

        runs.Select(r => r.Curve[0].Accuracy).Distinct().Should().ContainSingle("every run starts from the same weights");
        runs.Select(r => r.Curve.Select(p => p.Step)).Should().AllSatisfy(steps => steps.Should().Equal(0, 60));
        // Ten classes: chance is 10%. After 60 steps the slowest rows (ASGD, RAdam) are near 40% and most above 85%.
        foreach (var run in runs) run.FinalAccuracy.Should().BeGreaterThan(0.3, run.Contender.Name);
        foreach (var run in runs.Where(r => !r.Contender.FullBatch)) run.GradientSamples.Should().Be(2 * 1437 + 14 * 64, run.Contender.Name);  // two epochs (the last batch of each is 29), then 14 batches
        // A closure evaluation is a pass over the whole training set; L-BFGS's line search makes at least one per step.
        var lbfgs = runs.Single(r => r.Contender.Algorithm.RequiresClosure);
        (lbfgs.GradientSamples % options.TrainSamples).Should().Be(0);
        lbfgs.GradientSamples.Should().BeGreaterThanOrEqualTo(60L * options.TrainSamples);
    }
}
