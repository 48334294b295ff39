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
        Contender.All.Where(c => c.Algorithm.RequiresClosure).Should().OnlyContain(c => c.FullBatch && c.Split == null,
            "a closure must see the same data each time, and its optimizer all the parameters");
        Contender.All.Where(c => c.NotApplicable != null).Should().OnlyContain(c => c.NotApplicable!.Length > 0 && c.Settings.Contains(c.NotApplicable));
    }

    [Fact]
    public void A_split_row_gives_each_parameter_to_exactly_one_optimizer()
    {
        var options = new ComparisonOptions();
        using var model = DigitsModel.Build(options.Hidden, options.Seed);
        var muon = Contender.All.Single(c => c.Algorithm == Muon.Info);
        muon.Name.Should().Be("Muon + AdamW");
        muon.Settings.Should().Contain("AdamW").And.Contain(muon.Split!.Description);

        var optimizers = muon.CreateFor(model);
        try
        {
            optimizers.Select(o => o.GetType()).Should().Equal(typeof(Muon), typeof(AdamW));
            string NameOf(TorchSharp.Modules.Parameter p) => model.named_parameters().Single(n => ReferenceEquals(n.parameter, p)).name;
            optimizers.Select(o => o.parameters().Select(NameOf).OrderBy(n => n, System.StringComparer.Ordinal))
                .Should().BeEquivalentTo(new[] { new[] { "fc1.weight", "fc2.weight" }, new[] { "fc1.bias", "fc2.bias", "out.bias", "out.weight" } },
                    o => o.WithStrictOrdering());
        }
        finally
        {
            foreach (var optimizer in optimizers) optimizer.Dispose();
        }
    }

    [Fact]
    public void A_row_marked_not_applicable_is_refused_by_its_algorithm()
    {
        // The stated reason must hold: run anyway, the algorithm refuses the model's gradients on the first step.
        var options = new ComparisonOptions { Steps = 1, EvaluateEvery = 1 };
        using var data = DigitsData.Load(options.Seed, options.TrainSamples, options.ValidationSamples);
        var notApplicable = Contender.All.Where(c => c.NotApplicable != null).ToList();
        notApplicable.Select(c => c.Algorithm).Should().Equal(SparseAdam.Info);

        foreach (var contender in notApplicable)
        {
            FluentActions.Invoking(() => Comparison.Run(contender, options, data)).Should().Throw<System.InvalidOperationException>()
                .WithMessage("*does not apply*");
            FluentActions.Invoking(() => Comparison.Run(contender with { NotApplicable = null }, options, data)).Should().Throw<System.Exception>()
                .WithMessage("*dense gradients*");
        }
    }

    [Fact]
    public void Every_row_learns_the_digits_from_the_same_start()
    {
        var options = new ComparisonOptions { Steps = 60, EvaluateEvery = 60 };
        using var data = DigitsData.Load(options.Seed, options.TrainSamples, options.ValidationSamples);

        var runs = Contender.ForCatalog().Where(c => c.NotApplicable == null).Select(c => Comparison.Run(c, options, data)).ToList();

        runs.Select(r => r.Contender.Algorithm).Should().Equal(AlgorithmCatalog.All.Where(a => a != SparseAdam.Info), "every other row runs");

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
