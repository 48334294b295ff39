using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Optim.Schedulers;
using Optim.Swa;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch.optim;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Tests.Schedulers;

/// <summary>A case of Goldens/schedulers.json (written by tools/golden/schedulers.py).</summary>
internal sealed record SchedulerGolden(
    string Name, string Source, string Optimizer, double[]? SetupInitialLr, double[]? SetupLr,
    double?[]? Epochs, double[]? Metrics, double[][] Lr, string? Track, double[][]? Momentum)
{
    public override string ToString() => Name;
}

/// <summary>Optimizers with two groups as the generator builds them, the golden cases, and how to build each scheduler.</summary>
internal static class SchedulerFixtures
{
    public static readonly double[] GroupLrs = { 0.1, 0.02 };

    private static readonly Lazy<(string Version, IReadOnlyDictionary<string, SchedulerGolden> Cases)> Loaded = new(Load);

    public static string TorchVersion => Loaded.Value.Version;

    public static IReadOnlyDictionary<string, SchedulerGolden> Cases => Loaded.Value.Cases;

    public static IEnumerable<object[]> CaseNames() => Cases.Keys.Select(k => new object[] { k });

    /// <summary>Optim's SGD (momentum 0.9) with groups at lr 0.1 and 0.02, as the generator's torch.optim.SGD.</summary>
    public static SGD Sgd() => new(new[]
    {
        new ParamGroupSpec<SGDOptions>(new[] { new Parameter(torch.zeros(2)) }),
        new ParamGroupSpec<SGDOptions>(new[] { new Parameter(torch.zeros(3)) }, o => o with { Lr = GroupLrs[1] }),
    }, lr: GroupLrs[0], momentum: 0.9);

    /// <summary>Optim's Adam (betas 0.9, 0.999) with groups at lr 0.1 and 0.02.</summary>
    public static Adam Adam() => new(new[]
    {
        new ParamGroupSpec<AdamOptions>(new[] { new Parameter(torch.zeros(2)) }),
        new ParamGroupSpec<AdamOptions>(new[] { new Parameter(torch.zeros(3)) }, o => o with { Lr = GroupLrs[1] }),
    }, lr: GroupLrs[0]);

    public static Optimizer MakeOptimizer(SchedulerGolden golden) => golden.Optimizer == "Adam" ? Adam() : Sgd();

    public static IReadOnlyList<double> Lrs(TorchOptimizer optimizer) => optimizer.ParamGroups.Select(g => g.LearningRate).ToArray();

    public static IReadOnlyList<double> Momenta(TorchOptimizer optimizer, string track) =>
        optimizer.ParamGroups.Select(g => track == "beta1" ? ((IBetas)g).Betas.Item1 : ((IMomentum)g).Momentum).ToArray();

    private static readonly Func<int, double>[] Lambdas = { e => Math.Pow(0.95, e), e => 1.0 / (1 + e) };
    private static readonly Func<int, double>[] MultLambdas = { _ => 0.9, e => e % 3 != 0 ? 1.0 : 0.5 };

    /// <summary>The scheduler of each golden case, built with the generator's arguments.</summary>
    public static LRScheduler Build(string name, TorchOptimizer o) => name switch
    {
        "LambdaLR" => new LambdaLR(o, Lambdas),
        "MultiplicativeLR" => new MultiplicativeLR(o, MultLambdas),
        "StepLR" or "StepLR_closed" => new StepLR(o, 3, gamma: 0.7),
        "MultiStepLR" or "MultiStepLR_closed" => new MultiStepLR(o, new[] { 2, 5, 5, 11, 30 }, gamma: 0.6),
        "ConstantLR" or "ConstantLR_closed" => new ConstantLR(o, factor: 0.3, total_iters: 7),
        "LinearLR" or "LinearLR_closed" => new LinearLR(o, start_factor: 0.25, end_factor: 0.9, total_iters: 13),
        "ExponentialLR" or "ExponentialLR_closed" => new ExponentialLR(o, 0.93),
        "PolynomialLR" or "PolynomialLR_closed" => new PolynomialLR(o, total_iters: 31, power: 1.7),
        "CosineAnnealingLR" or "CosineAnnealingLR_closed" => new CosineAnnealingLR(o, T_max: 7, eta_min: 0.001),
        "ChainedScheduler" => new ChainedScheduler(new LRScheduler[] { new ConstantLR(o, factor: 0.5, total_iters: 4), new ExponentialLR(o, 0.95) }),
        "SequentialLR_warmup_cosine" => new SequentialLR(o,
            new LRScheduler[] { new LinearLR(o, start_factor: 0.1, total_iters: 6), new CosineAnnealingLR(o, T_max: 30, eta_min: 0.0005) },
            milestones: new[] { 6 }),
        "SequentialLR_three" => new SequentialLR(o,
            new LRScheduler[] { new ConstantLR(o, factor: 0.2, total_iters: 10), new ExponentialLR(o, 0.9), new StepLR(o, 4, gamma: 0.5) },
            milestones: new[] { 5, 12 }),
        "SequentialLR_multiplicative" => new SequentialLR(o,
            new LRScheduler[] { new ExponentialLR(o, 0.8), new MultiplicativeLR(o, MultLambdas) }, milestones: new[] { 4 }),
        "ReduceLROnPlateau_min_rel" => new ReduceLROnPlateau(o, mode: "min", factor: 0.5, patience: 2, threshold: 0.01, cooldown: 1,
            min_lr: new[] { 0.01, 0.004 }),
        "ReduceLROnPlateau_max_abs" => new ReduceLROnPlateau(o, mode: "max", factor: 0.3, patience: 0, threshold: 0.02,
            threshold_mode: "abs", min_lr: 0.0001, eps: 1e-4),
        "CyclicLR_triangular" => new CyclicLR(o, base_lr: new[] { 0.01, 0.002 }, max_lr: new[] { 0.1, 0.05 }, step_size_up: 4, step_size_down: 7,
            base_momentum: new[] { 0.8, 0.85 }, max_momentum: new[] { 0.95, 0.9 }),
        "CyclicLR_triangular2" => new CyclicLR(o, base_lr: 0.01, max_lr: 0.1, step_size_up: 5, mode: "triangular2"),
        "CyclicLR_exp_range" => new CyclicLR(o, base_lr: 0.01, max_lr: 0.1, step_size_up: 3, step_size_down: 5, mode: "exp_range", gamma: 0.97),
        "CyclicLR_scale_fn_iterations" => new CyclicLR(o, base_lr: 0.01, max_lr: 0.1, step_size_up: 6, scale_fn: x => 1 / (1 + x / 10),
            scale_mode: "iterations", cycle_momentum: false),
        "CyclicLR_beta1" => new CyclicLR(o, base_lr: 0.001, max_lr: 0.01, step_size_up: 5, base_momentum: 0.8, max_momentum: 0.95, mode: "triangular2"),
        "OneCycleLR_cos" => new OneCycleLR(o, max_lr: new[] { 0.5, 0.2 }, total_steps: 46, pct_start: 0.25),
        "OneCycleLR_linear_three_phase_beta1" => new OneCycleLR(o, max_lr: 0.01, epochs: 5, steps_per_epoch: 10, pct_start: 0.35,
            anneal_strategy: "linear", three_phase: true, base_momentum: 0.8, max_momentum: 0.9, div_factor: 10.0, final_div_factor: 100.0),
        "OneCycleLR_no_momentum" => new OneCycleLR(o, max_lr: 0.3, total_steps: 46, cycle_momentum: false, three_phase: true),
        "CosineAnnealingWarmRestarts" => new CosineAnnealingWarmRestarts(o, T_0: 3, T_mult: 2, eta_min: 0.001),
        "CosineAnnealingWarmRestarts_Tmult1" => new CosineAnnealingWarmRestarts(o, T_0: 7),
        "CosineAnnealingWarmRestarts_epochs" => new CosineAnnealingWarmRestarts(o, T_0: 2, T_mult: 3, eta_min: 0.002),
        "SWALR_cos" => new SWALR(o, swa_lr: new[] { 0.05, 0.04 }, anneal_epochs: 7),
        "SWALR_linear" => new SWALR(o, swa_lr: 0.01, anneal_epochs: 4, anneal_strategy: "linear"),
        "SWALR_zero_epochs" => new SWALR(o, swa_lr: 0.03, anneal_epochs: 0),
        "ExponentialLR_resume" => new ExponentialLR(o, 0.93, last_epoch: 9),
        "LinearLR_resume" => new LinearLR(o, start_factor: 0.25, end_factor: 0.9, total_iters: 13, last_epoch: 4),
        "PolynomialLR_resume" => new PolynomialLR(o, total_iters: 31, power: 1.7, last_epoch: 11),
        "CosineAnnealingLR_resume" => new CosineAnnealingLR(o, T_max: 7, eta_min: 0.001, last_epoch: 3),
        "MultiplicativeLR_resume" => new MultiplicativeLR(o, MultLambdas, last_epoch: 5),
        "CosineAnnealingWarmRestarts_resume" => new CosineAnnealingWarmRestarts(o, T_0: 3, T_mult: 2, eta_min: 0.001, last_epoch: 8),
        _ => throw new ArgumentException($"no factory for golden case {name}", nameof(name)),
    };

    /// <summary>Builds the case's optimizer (with its setup) and scheduler.</summary>
    public static (Optimizer Optimizer, LRScheduler Scheduler) Start(SchedulerGolden golden)
    {
        var optimizer = MakeOptimizer(golden);
        Setup(optimizer, golden);
        return (optimizer, Build(golden.Name, optimizer));
    }

    public static void Setup(TorchOptimizer optimizer, SchedulerGolden golden)
    {
        if (golden.SetupLr is null) return;
        var groups = optimizer.ParamGroups.ToList();
        for (var i = 0; i < groups.Count; i++)
        {
            groups[i].InitialLearningRate = golden.SetupInitialLr![i];
            groups[i].LearningRate = golden.SetupLr[i];
        }
    }

    /// <summary>Step <paramref name="i"/> (0-based) of the case: with its metric, its epoch, or plain.</summary>
    public static void Step(LRScheduler scheduler, SchedulerGolden golden, int i)
    {
        if (golden.Metrics is not null) ((ReduceLROnPlateau)scheduler).step(golden.Metrics[i]);
        else if (golden.Epochs is not null)
        {
            var epoch = golden.Epochs[i]!.Value;
            if (scheduler is CosineAnnealingWarmRestarts warm) warm.step(epoch);
            else scheduler.step((int)epoch);
        }
        else scheduler.step();
    }

    private static (string, IReadOnlyDictionary<string, SchedulerGolden>) Load()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Goldens", "schedulers.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var cases = new Dictionary<string, SchedulerGolden>();
        foreach (var c in root.GetProperty("cases").EnumerateArray())
        {
            double[]? setupInitial = null, setupLr = null;
            if (c.TryGetProperty("setup", out var setup))
            {
                setupInitial = Doubles(setup.GetProperty("initial_lr"));
                setupLr = Doubles(setup.GetProperty("lr"));
            }

            var golden = new SchedulerGolden(
                c.GetProperty("name").GetString()!,
                c.GetProperty("source").GetString()!,
                c.GetProperty("optimizer").GetString()!,
                setupInitial, setupLr,
                c.TryGetProperty("epochs", out var e) ? e.EnumerateArray().Select(x => (double?)x.GetDouble()).ToArray() : null,
                c.TryGetProperty("metrics", out var m) ? Doubles(m) : null,
                c.GetProperty("lr").EnumerateArray().Select(Doubles).ToArray(),
                c.TryGetProperty("track", out var t) ? t.GetString() : null,
                c.TryGetProperty("momentum", out var mo) ? mo.EnumerateArray().Select(Doubles).ToArray() : null);
            cases.Add(golden.Name, golden);
        }

        return (root.GetProperty("torch_version").GetString()!, cases);
    }

    private static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToArray();
}
