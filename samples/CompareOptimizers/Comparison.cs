// Trains the main job's model on the digits once per algorithm of the catalog, from the same weights, on the same
// batches, at a constant learning rate, and records the validation accuracy as it goes. No console code: Program.cs
// prints and draws, and tests/Optim.Tests links this file to run every row on a short schedule.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using Optim;
using TorchSharp;
using TrainClassifier;
using static TorchSharp.torch;

namespace CompareOptimizers;

/// <summary>
/// One algorithm with its settings for this task (PyTorch's option names; the rest at their defaults).
/// <paramref name="FullBatch"/>: each step sees the whole training set instead of a batch. <paramref name="Split"/>: the
/// algorithm takes only some of the model's parameters, and another optimizer, stepping with it, the others.
/// <paramref name="NotApplicable"/>: why the algorithm cannot train this model (the row is listed, not run).
/// </summary>
internal sealed record Contender(AlgorithmInfo Algorithm, double Lr, IReadOnlyList<KeyValuePair<string, object?>> Options, bool FullBatch = false,
    ParameterSplit? Split = null, string? NotApplicable = null)
{
    /// <summary>The algorithm's name, followed by the other optimizer's where the row splits the parameters.</summary>
    public string Name => Split is null ? Algorithm.Name : $"{Algorithm.Name} + {Split.Rest.Name}";

    public string Settings => NotApplicable is not null ? "not applicable: " + NotApplicable
        : Split is null ? OwnSettings + ", " + Batches
        : $"{OwnSettings} on {Split.Description}; {Split.Rest.Name} {Split.Rest.OwnSettings} on {Split.RestDescription}; {Batches}";

    private string OwnSettings => string.Join(", ", new[] { "lr " + Text(Lr) }
        .Concat(Options.Select(o => o.Value is bool b ? (b ? o.Key : "no " + o.Key) : $"{o.Key} {Text(o.Value)}")));

    private string Batches => FullBatch ? "full batch" : "batches";

    public Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters) =>
        Algorithm.Create(parameters, Options.Prepend(new KeyValuePair<string, object?>("lr", Lr)));

    /// <summary>The optimizers that train <paramref name="model"/> together: this row's, then the split's other one.</summary>
    public IReadOnlyList<Optimizer> CreateFor(nn.Module model)
    {
        if (NotApplicable is not null) throw new InvalidOperationException($"{Name} does not apply to this model: {NotApplicable}");
        if (Split is null) return [Create(model.parameters())];
        var named = model.named_parameters().ToArray();
        var own = Create(named.Where(p => Split.Takes(p.name, p.parameter)).Select(p => p.parameter));
        try
        {
            return [own, Split.Rest.Create(named.Where(p => !Split.Takes(p.name, p.parameter)).Select(p => p.parameter))];
        }
        catch
        {
            own.Dispose();
            throw;
        }
    }

    private static string Text(object? value) => value is IFormattable f ? f.ToString("g", CultureInfo.InvariantCulture) : value?.ToString() ?? "None";

    private static KeyValuePair<string, object?>[] With(params (string Name, object? Value)[] options) =>
        options.Select(o => new KeyValuePair<string, object?>(o.Name, o.Value)).ToArray();

    /// <summary>
    /// The settings, one row per algorithm of <see cref="AlgorithmCatalog.All"/>: learning rates tuned coarsely (a factor
    /// of about 3) for this model and batch size over the comparison's 230 steps, everything else at PyTorch's defaults
    /// unless the row says otherwise.
    /// </summary>
    public static readonly IReadOnlyList<Contender> All = new Contender[]
    {
        new(SGD.Info, 0.1, With(("momentum", 0.9))),
        new(SGDMomentumNesterov.Info, 0.1, With(("weight_decay", 1e-3), ("decoupled_weight_decay", true))),
        new(Adam.Info, 3e-3, With()),
        new(AdamW.Info, 3e-3, With(("weight_decay", 1e-2))),
        new(Adagrad.Info, 3e-2, With()),
        new(RMSprop.Info, 1e-3, With()),
        new(Adadelta.Info, 1.0, With()),
        new(Adamax.Info, 6e-3, With()),
        // ASGD is plain SGD until t0 (1e6 steps), then averages; its default lr 1e-2 crawls here.
        new(ASGD.Info, 0.1, With()),
        new(NAdam.Info, 3e-3, With()),
        new(RAdam.Info, 3e-3, With()),
        // Rprop adapts each step size from the sign of successive gradients: a full-batch method (a batch's noise flips
        // the signs), so it sees the whole training set at every step.
        new(Rprop.Info, 1e-3, With(), FullBatch: true),
        new(Adafactor.Info, 1e-2, With()),
        // SparseAdam updates only the rows a sparse gradient names (an Embedding's lookups); every gradient of this MLP is
        // dense, and a pixel is not a lookup.
        new(SparseAdam.Info, 3e-3, With(), NotApplicable: "needs sparse gradients (Embedding with sparse: true); this MLP's are dense"),
        // Muon orthogonalizes the update of a hidden layer's weight matrix; as PyTorch's documentation says, the other
        // parameters (biases; here also the output layer, as in Muon's own recipe) go to AdamW. Moonshot's adjustment
        // (match_rms_adamw) lets Muon reuse AdamW's lr and weight decay: both halves take the AdamW row's settings.
        new(Muon.Info, 3e-3, With(("weight_decay", 1e-2), ("adjust_lr_fn", MuonOptions.MatchRmsAdamW)),
            Split: new ParameterSplit("hidden weights (fc1, fc2)", "biases and output layer",
                (name, parameter) => parameter.ndim == 2 && name != "out.weight", new(AdamW.Info, 3e-3, With(("weight_decay", 1e-2))))),
        // L-BFGS needs a closure that re-evaluates the loss, on the same data each time: the whole training set. One
        // step is one iteration (max_iter 1); its strong-Wolfe line search may evaluate the closure several times.
        new(LBFGS.Info, 1.0, With(("max_iter", 1L), ("history_size", 10L), ("line_search_fn", LBFGSOptions.StrongWolfe)), FullBatch: true),
    };

    /// <summary>The row of each algorithm of the catalog, in the catalog's order; an algorithm without a row is an error.</summary>
    public static IReadOnlyList<Contender> ForCatalog() => AlgorithmCatalog.All
        .Select(a => All.SingleOrDefault(c => c.Algorithm == a)
            ?? throw new InvalidOperationException($"{a.Name} has no row in Contender.All: give it its settings there"))
        .ToArray();
}

/// <summary>
/// Which of the model's parameters a contender's algorithm takes (<paramref name="Takes"/>, by name and tensor), described
/// for the table as <paramref name="Description"/>; <paramref name="Rest"/> trains the others, stepping at the same time.
/// </summary>
internal sealed record ParameterSplit(string Description, string RestDescription, Func<string, TorchSharp.Modules.Parameter, bool> Takes, Contender Rest);

/// <summary>The schedule every contender trains on.</summary>
internal sealed record ComparisonOptions
{
    public long Seed { get; init; } = 20261124;
    public int ValidationSamples { get; init; } = 360;
    public int TrainSamples { get; init; } = DigitsData.Count - 360;
    public int Hidden { get; init; } = 64;
    public int BatchSize { get; init; } = 64;
    public int Steps { get; init; } = 230;
    /// <summary>Steps between two measurements of the validation accuracy (also measured before the first step).</summary>
    public int EvaluateEvery { get; init; } = 5;
}

/// <param name="Curve">The validation accuracy after each measured step (step 0: the initial weights).</param>
/// <param name="GradientSamples">Samples whose gradients the run computed (a batch per step; the training set per closure evaluation).</param>
internal sealed record ComparisonRun(Contender Contender, IReadOnlyList<(int Step, double Accuracy)> Curve, double FinalTrainLoss,
    long GradientSamples, TimeSpan Elapsed)
{
    public double FinalAccuracy => Curve[^1].Accuracy;
    public double BestAccuracy => Curve.Max(p => p.Accuracy);
}

internal static class Comparison
{
    public static ComparisonRun Run(Contender contender, ComparisonOptions options, DigitsData data)
    {
        var clock = Stopwatch.StartNew();
        using var model = DigitsModel.Build(options.Hidden, options.Seed);
        var optimizers = contender.CreateFor(model);
        try
        {
            return Train(contender, options, data, model, optimizers, clock);
        }
        finally
        {
            foreach (var optimizer in optimizers) optimizer.Dispose();
        }
    }

    private static ComparisonRun Train(Contender contender, ComparisonOptions options, DigitsData data, TorchSharp.Modules.Sequential model,
        IReadOnlyList<Optimizer> optimizers, Stopwatch clock)
    {
        var curve = new List<(int, double)> { (0, DigitsModel.Evaluate(model, data.ValidationX, data.ValidationY).Accuracy) };
        var batchesPerEpoch = (options.TrainSamples + options.BatchSize - 1) / options.BatchSize;
        long samples = 0;
        double trainLoss = double.NaN;
        long[] order = [];

        for (var step = 1; step <= options.Steps; step++)
        {
            using (var scope = NewDisposeScope())
            {
                Tensor x = data.TrainX, y = data.TrainY;
                if (!contender.FullBatch)
                {
                    // The same batches for every contender: the main job's shuffle of each epoch.
                    var batch = (step - 1) % batchesPerEpoch;
                    if (batch == 0) order = DigitsData.Permutation(options.Seed, (step - 1) / batchesPerEpoch, options.TrainSamples);
                    var start = batch * options.BatchSize;
                    var index = torch.tensor(order.AsSpan(start, Math.Min(options.BatchSize, options.TrainSamples - start)).ToArray());
                    x = data.TrainX.index_select(0, index);
                    y = data.TrainY.index_select(0, index);
                }

                Tensor Closure()
                {
                    foreach (var optimizer in optimizers) optimizer.zero_grad();
                    var loss = nn.functional.cross_entropy(model.call(x), y);
                    loss.backward();
                    samples += x.shape[0];
                    return loss;
                }

                // A closure-driven algorithm evaluates the loss itself, as often as it needs (and has the parameters to
                // itself); the others take the gradient, each optimizer of a split its share.
                var loss = contender.Algorithm.RequiresClosure ? optimizers.Single().step(Closure)! : Closure();
                if (!contender.Algorithm.RequiresClosure)
                    foreach (var optimizer in optimizers) optimizer.step();
                trainLoss = loss.item<float>();
                if (!double.IsFinite(trainLoss)) throw new InvalidOperationException($"{contender.Name} diverged at step {step} (loss {trainLoss})");
            }
            if (step % options.EvaluateEvery == 0 || step == options.Steps)
                curve.Add((step, DigitsModel.Evaluate(model, data.ValidationX, data.ValidationY).Accuracy));
        }
        return new ComparisonRun(contender, curve, trainLoss, samples, clock.Elapsed);
    }
}
