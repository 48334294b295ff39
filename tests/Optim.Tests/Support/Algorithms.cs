using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Support;

/// <summary>
/// What tests know about an algorithm beyond its <see cref="AlgorithmInfo"/>: one row per algorithm in
/// <see cref="Algorithms.Profiles"/>. Every column is optional; an algorithm without a row gets the defaults below.
/// </summary>
/// <param name="Exercise">
/// Options (PyTorch's names) that exercise its state beyond the defaults: momentum buffers, AMSGrad's maximum, the
/// centered average. Null: every bool option but <c>maximize</c> switched on, where the options stay valid.
/// </param>
/// <param name="BitwiseAgainstGoldens">
/// Whether our numbers equal the golden files' (PyTorch 1.13's) bit for bit: true only where the algorithm's ops are
/// the same in PyTorch 1.13 and libtorch 2.10; otherwise they are compared within <see cref="Tolerances"/>.
/// </param>
/// <param name="TorchSharpBuiltIn">TorchSharp's own optimizer with the same options, or null where TorchSharp lacks it or an option.</param>
/// <param name="FusedSkippedStepChangesNothing">
/// Whether a fused step that found_inf skips leaves parameters and state exactly as they were. False marks a known
/// defect the test reports instead of failing on; set it back to true with the fix.
/// </param>
/// <param name="BitwiseGoldenFiles">Golden files (or "file:Dtype") compared bit for bit when the algorithm's others are not.</param>
/// <param name="GoldenToleranceFactor">
/// How many times <see cref="Tolerances"/> the non-bitwise goldens are compared within (algorithms whose norms and
/// reductions feed Python floats back into the update, so an ulp in a reduction moves later steps).
/// </param>
/// <param name="GoldensStepByStep">
/// Whether its goldens are compared one step at a time from the golden's previous parameters, in its own tests, instead
/// of as whole trajectories (Muon: its bfloat16 matrix products differ between PyTorch 1.13 and libtorch 2.10 by a few
/// bfloat16 ulps per step, which a whole trajectory would accumulate).
/// </param>
/// <param name="SparseGradientMessage">
/// The message a sparse gradient gets (PyTorch's text where it has its own); null: "NAME does not support sparse gradients".
/// </param>
public sealed record TestProfile(
    IReadOnlyList<KeyValuePair<string, object?>>? Exercise = null,
    bool BitwiseAgainstGoldens = false,
    Func<OptimizerOptions, IEnumerable<Parameter>, TorchSharp.torch.optim.Optimizer?>? TorchSharpBuiltIn = null,
    bool FusedSkippedStepChangesNothing = true,
    string? SparseGradientMessage = null,
    IReadOnlyList<string>? BitwiseGoldenFiles = null,
    double GoldenToleranceFactor = 1,
    bool GoldensStepByStep = false)
{
    /// <summary>
    /// Whether the cases of <paramref name="file"/> in <paramref name="dtype"/> are compared bit for bit: every file when
    /// <see cref="BitwiseAgainstGoldens"/>, else the files (or "file:Dtype" entries) listed in <see cref="BitwiseGoldenFiles"/>:
    /// 2.x replays whose kernels give libtorch 2.10's bits on every case (measured).
    /// </summary>
    public bool ComparesBits(string file, TorchSharp.torch.ScalarType dtype) =>
        BitwiseAgainstGoldens || (BitwiseGoldenFiles?.Any(f => f == file || f == $"{file}:{dtype}") ?? false);
}

/// <summary>
/// Every algorithm of <see cref="AlgorithmCatalog"/>, as tests use them. Theory rows carry the algorithm's name (xunit
/// shows and serializes it); <see cref="Get"/> finds its <see cref="AlgorithmInfo"/>.
/// </summary>
public static class Algorithms
{
    /// <summary>The test-side table: one row per algorithm, keyed by its catalog entry.</summary>
    public static readonly IReadOnlyDictionary<AlgorithmInfo, TestProfile> Profiles = new Dictionary<AlgorithmInfo, TestProfile>
    {
        [SGD.Info] = new(
            Options(("momentum", 0.9), ("nesterov", true), ("weight_decay", 0.01)),
            BitwiseAgainstGoldens: true,
            TorchSharpBuiltIn: (o, ps) => o is SGDOptions s
                ? TorchSharp.torch.optim.SGD(ps, s.Lr, s.Momentum, s.Dampening, s.WeightDecay, s.Nesterov, s.Maximize)
                : null),
        [SGDMomentumNesterov.Info] = new(
            Options(("weight_decay", 0.01), ("decoupled_weight_decay", true)),
            BitwiseAgainstGoldens: true),
        [Adam.Info] = new(
            Options(("weight_decay", 0.01), ("amsgrad", true)),
            TorchSharpBuiltIn: (o, ps) => o is AdamOptions a
                ? TorchSharp.torch.optim.Adam(ps, a.Lr, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, a.Amsgrad, a.Maximize)
                : null,
            SparseGradientMessage: "Adam does not support sparse gradients, please consider SparseAdam instead"),
        [AdamW.Info] = new(
            Options(("amsgrad", true)),
            TorchSharpBuiltIn: (o, ps) => o is AdamOptions a
                ? TorchSharp.torch.optim.AdamW(ps, a.Lr, a.Beta1, a.Beta2, a.Eps, a.WeightDecay, a.Amsgrad, a.Maximize)
                : null),
        [Adagrad.Info] = new(
            Options(("lr_decay", 0.01), ("weight_decay", 0.01)),
            // TorchSharp's Adagrad has no maximize.
            TorchSharpBuiltIn: (o, ps) => o is AdagradOptions a && !a.Maximize
                ? TorchSharp.torch.optim.Adagrad(ps, a.Lr, a.LrDecay, a.WeightDecay, a.InitialAccumulatorValue, a.Eps)
                : null),
        [RMSprop.Info] = new(
            Options(("momentum", 0.5), ("centered", true), ("weight_decay", 0.01)),
            TorchSharpBuiltIn: (o, ps) => o is RMSpropOptions r
                ? TorchSharp.torch.optim.RMSProp(ps, r.Lr, r.Alpha, r.Eps, r.WeightDecay, r.Momentum, r.Centered, r.Maximize)
                : null),
        [Adadelta.Info] = new(Options(("rho", 0.8), ("weight_decay", 0.01))),
        [Adamax.Info] = new(Options(("weight_decay", 0.01)), BitwiseGoldenFiles: ["adamax_2x.json"]),
        // t0 = 2: the running average moves from the third step on. Only add/sub/mul/copy: bitwise against 1.13.
        [ASGD.Info] = new(Options(("lambd", 0.01), ("t0", 2.0), ("weight_decay", 0.01)), BitwiseAgainstGoldens: true),
        // 1.13's float32 kernels differ by an ulp at times; its float64 ones give libtorch 2.10's bits.
        [NAdam.Info] = new(Options(("weight_decay", 0.01), ("momentum_decay", 0.01)), BitwiseGoldenFiles: ["nadam_2x.json:Float64"]),
        [RAdam.Info] = new(Options(("weight_decay", 0.01), ("decoupled_weight_decay", true)), BitwiseGoldenFiles: ["radam_2x.json"]),
        // Only multiply, sign, clamp, masked fill and an exact add: bitwise against 1.13.
        [Rprop.Info] = new(Options(("etas", (0.4, 1.3)), ("step_sizes", (1e-4, 1.0))), BitwiseAgainstGoldens: true),
        // A short history and few iterations, so a few steps shift the history; the line search runs too.
        // Norms and means (vector_norm, norm().item()) reduce in another order in 1.13 than in libtorch 2.10, and their
        // Python-float results scale whole updates. Measured worst over 25 steps: 9.5e-7 (fp32) and 1.8e-15 (fp64), both
        // in the "d" case (lr 0.5, the largest steps); the other cases stay within 1.2e-7 and 4.4e-16.
        [Adafactor.Info] = new(Options(("weight_decay", 0.01), ("eps1", 1e-6), ("d", 1.5)), GoldenToleranceFactor: 8),
        [Muon.Info] = new(Options(("weight_decay", 0.01), ("nesterov", false), ("use_addmm", true)), GoldensStepByStep: true),
        [LBFGS.Info] = new(Options(("max_iter", 5L), ("history_size", 3L), ("line_search_fn", LBFGSOptions.StrongWolfe))),
    };

    /// <summary>The names of every algorithm in the catalog.</summary>
    public static IEnumerable<string> Names => AlgorithmCatalog.All.Select(a => a.Name);

    /// <summary>xunit theory data: one row per algorithm.</summary>
    public static TheoryData<string> NameData() => new(Names);

    /// <summary>
    /// xunit theory data: one row per algorithm, less those <paramref name="leaveOut"/> picks. A generic test whose
    /// property does not hold for some algorithms (LBFGS's closure-driven step, its single group) says which and why
    /// here, in <paramref name="reason"/>, instead of dropping them silently.
    /// </summary>
    public static TheoryData<string> NameData(Func<AlgorithmInfo, bool> leaveOut, string reason) => new(NamesExcept(leaveOut, reason));

    /// <summary>The names of the algorithms, less those <paramref name="leaveOut"/> picks, for the given reason.</summary>
    public static IEnumerable<string> NamesExcept(Func<AlgorithmInfo, bool> leaveOut, string reason) =>
        AlgorithmCatalog.All.Where(a => !LeftOut(a, leaveOut, reason)).Select(a => a.Name).ToList();

    /// <summary>xunit theory data: one row per algorithm with a fused kernel.</summary>
    public static TheoryData<string> FusedNameData() => new(AlgorithmCatalog.All.Where(a => a.HasFusedKernel).Select(a => a.Name));

    /// <summary>The catalog entry called <paramref name="name"/>.</summary>
    public static AlgorithmInfo Get(string name) => AlgorithmCatalog.Get(name);

    /// <summary>The algorithm's row, or the defaults for one without.</summary>
    public static TestProfile Profile(AlgorithmInfo algorithm) => Profiles.TryGetValue(algorithm, out var p) ? p : new TestProfile();

    /// <summary>
    /// The paths each algorithm accepts (for-loop, foreach, fused where ATen has it, auto); for one without the
    /// <c>implementation</c> option (LBFGS) only its options' default, which its step ignores.
    /// </summary>
    public static IEnumerable<Implementation> Paths(AlgorithmInfo algorithm)
    {
        if (!algorithm.HasImplementations)
        {
            yield return algorithm.DefaultOptions.Implementation;
            yield break;
        }
        yield return Implementation.ForLoop;
        if (algorithm.HasForeach) yield return Implementation.Foreach;
        if (algorithm.HasFusedKernel) yield return Implementation.Fused;
        yield return Implementation.Auto;
    }

    /// <summary>xunit theory data: every algorithm on every path it accepts.</summary>
    public static TheoryData<string, Implementation> AlgorithmsAndPaths()
    {
        var data = new TheoryData<string, Implementation>();
        foreach (var algorithm in AlgorithmCatalog.All)
            foreach (var impl in Paths(algorithm)) data.Add(algorithm.Name, impl);
        return data;
    }

    /// <inheritdoc cref="AlgorithmsAndPaths()"/>
    /// <param name="leaveOut">The algorithms the test leaves out.</param>
    /// <param name="reason">Why (see <see cref="NameData(Func{AlgorithmInfo, bool}, string)"/>).</param>
    public static TheoryData<string, Implementation> AlgorithmsAndPaths(Func<AlgorithmInfo, bool> leaveOut, string reason)
    {
        var data = new TheoryData<string, Implementation>();
        foreach (var algorithm in AlgorithmCatalog.All.Where(a => !LeftOut(a, leaveOut, reason)))
            foreach (var impl in Paths(algorithm)) data.Add(algorithm.Name, impl);
        return data;
    }

    // A leave-out without a reason is refused: the reason is the point.
    private static bool LeftOut(AlgorithmInfo algorithm, Func<AlgorithmInfo, bool> leaveOut, string reason)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        return leaveOut(algorithm);
    }

    /// <summary>
    /// One step as the algorithm takes it: <c>step()</c>, or for an algorithm that requires a closure (LBFGS)
    /// <c>step(closure)</c> with <paramref name="closure"/>, by default <see cref="GivenGradients"/> over the optimizer's
    /// parameters. The loss it returns is disposed.
    /// </summary>
    public static void Step(Optimizer opt, Func<Tensor>? closure = null)
    {
        if (AlgorithmCatalog.Of(opt) is not { RequiresClosure: true })
        {
            opt.step();
            return;
        }
        using var loss = opt.step(closure ?? GivenGradients(opt.parameters().ToList()));
    }

    /// <summary>
    /// A closure for a closure-driven algorithm that stands for "the gradients the test set": every evaluation assigns
    /// the gradients <paramref name="ps"/> have now (the same tensors) and returns a constant loss of 0, so LBFGS sees
    /// no progress in the loss and ends each step after its first iteration (two evaluations), or after its line search.
    /// </summary>
    public static Func<Tensor> GivenGradients(IReadOnlyList<Parameter> ps)
    {
        var grads = ps.Select(p => p.grad).ToList();
        return () =>
        {
            for (var i = 0; i < ps.Count; i++) ps[i].grad = grads[i];
            return TorchSharp.torch.zeros(Array.Empty<long>());
        };
    }

    /// <summary>
    /// The gradient a test gives a parameter of <paramref name="algorithm"/>: <paramref name="dense"/> itself, or for an
    /// algorithm that requires sparse gradients (SparseAdam) the same values as a sparse COO tensor whose sparse
    /// dimension is the rows, as an embedding's gradient (a new tensor; the caller keeps <paramref name="dense"/>).
    /// </summary>
    public static Tensor Gradient(AlgorithmInfo algorithm, Tensor dense) =>
        !algorithm.RequiresSparseGradients ? dense : dense.dim() == 0 ? dense.to_sparse() : dense.to_sparse(1);

    /// <inheritdoc cref="Gradient(AlgorithmInfo, Tensor)"/>
    /// <param name="opt">An optimizer of the catalog.</param>
    /// <param name="dense">The gradient's values.</param>
    public static Tensor Gradient(Optimizer opt, Tensor dense) => AlgorithmCatalog.Of(opt) is { } a ? Gradient(a, dense) : dense;

    /// <summary>
    /// A parameter shape <paramref name="algorithm"/> takes: <paramref name="shape"/>, or for one that requires matrices
    /// (Muon) a matrix of as many elements ([] as [1, 1], [n] as [1, n], [a, b, c, ...] as [a, b·c·...]).
    /// </summary>
    public static long[] Shape(AlgorithmInfo algorithm, params long[] shape) =>
        !algorithm.RequiresMatrices || shape.Length == 2 ? shape
        : shape.Length == 0 ? new long[] { 1, 1 }
        : shape.Length == 1 ? new long[] { 1, shape[0] }
        : new long[] { shape[0], shape.Skip(1).Aggregate(1L, (x, y) => x * y) };

    /// <summary>The options that exercise the algorithm's state (see <see cref="TestProfile.Exercise"/>).</summary>
    public static IReadOnlyList<KeyValuePair<string, object?>> Exercise(AlgorithmInfo algorithm)
    {
        if (Profile(algorithm).Exercise is { } listed) return listed;
        var chosen = new List<KeyValuePair<string, object?>>();
        foreach (var flag in algorithm.Schema.Where(h => h.Type == HyperparameterType.Bool && h.Name != "maximize"))
        {
            var candidate = chosen.Append(new KeyValuePair<string, object?>(flag.Name, true)).ToList();
            if (IsValid(algorithm, candidate)) chosen = candidate;
        }
        return chosen;
    }

    /// <summary>
    /// The algorithm with lr 0.01, the settings that exercise its state, <paramref name="maximize"/> (where it has
    /// it) and <paramref name="impl"/>; with flat buffers when <paramref name="flat"/>.
    /// </summary>
    public static Optimizer Create(string name, IEnumerable<Parameter> ps, Implementation impl, bool maximize = true, bool flat = false) =>
        Create(Get(name), ps, impl, maximize, flat);

    /// <inheritdoc cref="Create(string, IEnumerable{Parameter}, Implementation, bool, bool)"/>
    public static Optimizer Create(AlgorithmInfo algorithm, IEnumerable<Parameter> ps, Implementation impl, bool maximize = true, bool flat = false)
    {
        var options = new List<KeyValuePair<string, object?>> { new("lr", 0.01) };
        options.AddRange(Exercise(algorithm));
        if (algorithm.Schema.Find("maximize") is not null) options.Add(new("maximize", maximize));
        if (algorithm.Schema.Find("implementation") is not null) options.Add(new("implementation", impl));
        return algorithm.Create(ps, options, flat);
    }

    /// <summary>Whether the defaults with <paramref name="options"/> are valid options of the algorithm.</summary>
    public static bool IsValid(AlgorithmInfo algorithm, IEnumerable<KeyValuePair<string, object?>> options)
    {
        try
        {
            algorithm.DefaultOptions.WithHyperparameters(options);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>A list of PyTorch-named options.</summary>
    public static KeyValuePair<string, object?>[] Options(params (string Name, object? Value)[] options) =>
        options.Select(o => new KeyValuePair<string, object?>(o.Name, o.Value)).ToArray();
}
