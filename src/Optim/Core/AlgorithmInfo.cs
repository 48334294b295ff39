using System;
using System.Collections.Generic;
using TorchSharp.Modules;

namespace Optim;

/// <summary>
/// What tests, benchmarks, samples and tools need to know about an algorithm, declared once next to it: its name, its
/// types and option schema, which paths ATen serves, and how to create it. <see cref="AlgorithmCatalog"/> lists them.
/// </summary>
public abstract class AlgorithmInfo
{
    private protected AlgorithmInfo(string name, Type optimizerType, bool hasFusedKernel, bool foreachMatchesForLoop, bool hasForeach,
        ITorchSharpLayout? torchSharpLayout, bool requiresClosure, bool singleGroupOnly, bool hasImplementations, bool requiresSparseGradients, bool requiresMatrices)
    {
        if (!hasImplementations && (hasForeach || hasFusedKernel))
            throw new ArgumentException($"{name}: an algorithm without an implementation choice has no foreach or fused path", nameof(hasImplementations));
        RequiresClosure = requiresClosure;
        RequiresSparseGradients = requiresSparseGradients;
        RequiresMatrices = requiresMatrices;
        SingleGroupOnly = singleGroupOnly;
        HasImplementations = hasImplementations;
        TorchSharpLayout = torchSharpLayout;
        Name = name;
        OptimizerType = optimizerType;
        HasFusedKernel = hasFusedKernel;
        ForeachMatchesForLoop = foreachMatchesForLoop;
        HasForeach = hasForeach;
    }

    /// <summary>The algorithm's name: its class name, PyTorch's where PyTorch has it.</summary>
    public string Name { get; }

    /// <summary>The optimizer class.</summary>
    public Type OptimizerType { get; }

    /// <summary>The options record's type.</summary>
    public abstract Type OptionsType { get; }

    /// <summary>The hyperparameters, as the options record declares them.</summary>
    public abstract OptionSchema Schema { get; }

    /// <summary>The options a group gets from the constructor's defaults.</summary>
    public abstract OptimizerOptions DefaultOptions { get; }

    /// <summary>
    /// Whether it has a fused kernel (<see cref="Implementation.Fused"/> is accepted): ATen's, or for an algorithm ATen
    /// has none for, this library's single-pass C# CPU kernel (<see cref="FusedKernelIsCSharp"/>).
    /// </summary>
    public bool HasFusedKernel { get; }

    /// <summary>
    /// Whether its fused kernel is this library's C# CPU kernel rather than ATen's: it then serves contiguous float32
    /// and float64 CPU tensors only (no CUDA, float16 or bfloat16), and rounds like ATen's fused kernels do, a few ulp
    /// off the for-loop.
    /// </summary>
    public abstract bool FusedKernelIsCSharp { get; }

    /// <summary>Whether it has a foreach path (<see cref="Implementation.Foreach"/> is accepted).</summary>
    public bool HasForeach { get; }

    /// <summary>
    /// Whether <c>step</c> requires a closure that re-evaluates the model and returns the loss (LBFGS): the algorithm
    /// steps through its closure, not through gradients set beforehand, and <c>GradScaler</c> refuses it (as PyTorch's).
    /// </summary>
    public bool RequiresClosure { get; }

    /// <summary>
    /// Whether its gradients must be sparse (SparseAdam, for <c>torch.nn.Embedding(..., sparse: true)</c>): <c>step</c>
    /// refuses a dense gradient with PyTorch's message, where every other algorithm refuses sparse ones.
    /// </summary>
    public bool RequiresSparseGradients { get; }

    /// <summary>
    /// Whether it takes 2-D parameters only (Muon): a parameter of another shape is refused when it joins a group and
    /// before a step. Catalog-driven code gives it matrices.
    /// </summary>
    public bool RequiresMatrices { get; }

    /// <summary>Whether it takes one parameter group only (LBFGS, as PyTorch's): adding a second one throws.</summary>
    public bool SingleGroupOnly { get; }

    /// <summary>
    /// Whether it has the <c>implementation</c> option (a choice of for-loop, foreach, fused or auto paths); false where
    /// its step is one path of its own (LBFGS), and then <see cref="HasForeach"/> and <see cref="HasFusedKernel"/> are false.
    /// </summary>
    public bool HasImplementations { get; }

    /// <summary>Whether its foreach path gives the for-loop's bits on CPU (false where PyTorch's own foreach orders ops differently).</summary>
    public bool ForeachMatchesForLoop { get; }

    /// <summary>
    /// How its state maps to the checkpoint format of TorchSharp's optimizer of the same algorithm, or null where
    /// TorchSharp has no such optimizer (then <c>SaveTorchSharp</c>/<c>LoadTorchSharp</c> throw <see cref="NotSupportedException"/>).
    /// </summary>
    public ITorchSharpLayout? TorchSharpLayout { get; }

    /// <summary>
    /// Creates the optimizer over one group of <paramref name="parameters"/> with the constructor's defaults, except the
    /// hyperparameters named in <paramref name="options"/> (PyTorch's names, values of their declared types).
    /// </summary>
    /// <param name="parameters">The parameters.</param>
    /// <param name="options">Hyperparameters that differ from the defaults, or null.</param>
    /// <exception cref="ArgumentException">An unknown or invalid hyperparameter.</exception>
    public abstract Optimizer Create(IEnumerable<Parameter> parameters, IEnumerable<KeyValuePair<string, object?>>? options = null);

    /// <summary>
    /// <see cref="Create(IEnumerable{Parameter}, IEnumerable{KeyValuePair{string, object}}?)"/>, with flat parameters
    /// when <paramref name="flat"/> (the constructors' <c>flat</c> argument, see <see cref="Optimizer{TOptions}.Flat"/>).
    /// </summary>
    /// <param name="parameters">The parameters.</param>
    /// <param name="options">Hyperparameters that differ from the defaults, or null.</param>
    /// <param name="flat">Keep the parameters, gradients and state in flat buffers.</param>
    /// <exception cref="ArgumentException">An unknown or invalid hyperparameter.</exception>
    public abstract Optimizer Create(IEnumerable<Parameter> parameters, IEnumerable<KeyValuePair<string, object?>>? options, bool flat);

    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>Declares an algorithm.</summary>
    /// <typeparam name="TOptimizer">The optimizer class.</typeparam>
    /// <typeparam name="TOptions">Its options record.</typeparam>
    /// <param name="name">Its name.</param>
    /// <param name="create">Its constructor over parameter groups, with every other argument at its default.</param>
    /// <param name="hasFusedKernel">Whether ATen has a fused kernel for it.</param>
    /// <param name="foreachMatchesForLoop">Whether its foreach path gives the for-loop's bits on CPU.</param>
    /// <param name="hasForeach">Whether it has a foreach path.</param>
    /// <param name="torchSharpLayout">Its TorchSharp checkpoint layout, where TorchSharp has the algorithm.</param>
    /// <param name="requiresClosure">Whether <c>step</c> requires a closure (see <see cref="RequiresClosure"/>).</param>
    /// <param name="singleGroupOnly">Whether it takes one parameter group only.</param>
    /// <param name="hasImplementations">Whether it has the <c>implementation</c> option; false requires <paramref name="hasForeach"/> false.</param>
    /// <param name="requiresSparseGradients">Whether its gradients must be sparse (see <see cref="RequiresSparseGradients"/>).</param>
    /// <param name="requiresMatrices">Whether it takes 2-D parameters only (see <see cref="RequiresMatrices"/>).</param>
    /// <exception cref="ArgumentException">An algorithm without implementations declares a foreach or fused path.</exception>
    public static AlgorithmInfo<TOptions> Of<TOptimizer, TOptions>(string name, Func<IEnumerable<ParamGroupSpec<TOptions>>, TOptimizer> create,
        bool hasFusedKernel = false, bool foreachMatchesForLoop = true, bool hasForeach = true, ITorchSharpLayout? torchSharpLayout = null,
        bool requiresClosure = false, bool singleGroupOnly = false, bool hasImplementations = true, bool requiresSparseGradients = false,
        bool requiresMatrices = false)
        where TOptimizer : Optimizer<TOptions> where TOptions : OptimizerOptions =>
        new(name, typeof(TOptimizer), groups => create(groups), hasFusedKernel, foreachMatchesForLoop, hasForeach, torchSharpLayout,
            requiresClosure, singleGroupOnly, hasImplementations, requiresSparseGradients, requiresMatrices);
}

/// <summary>An algorithm whose options are <typeparamref name="TOptions"/>.</summary>
/// <typeparam name="TOptions">The options record.</typeparam>
public sealed class AlgorithmInfo<TOptions> : AlgorithmInfo where TOptions : OptimizerOptions
{
    private readonly Func<IEnumerable<ParamGroupSpec<TOptions>>, Optimizer<TOptions>> _create;
    private TOptions? _defaults;
    private bool? _fusedKernelIsCSharp;

    internal AlgorithmInfo(string name, Type optimizerType, Func<IEnumerable<ParamGroupSpec<TOptions>>, Optimizer<TOptions>> create,
        bool hasFusedKernel, bool foreachMatchesForLoop, bool hasForeach, ITorchSharpLayout? torchSharpLayout, bool requiresClosure,
        bool singleGroupOnly, bool hasImplementations, bool requiresSparseGradients, bool requiresMatrices)
        : base(name, optimizerType, hasFusedKernel, foreachMatchesForLoop, hasForeach, torchSharpLayout, requiresClosure, singleGroupOnly,
            hasImplementations, requiresSparseGradients, requiresMatrices) => _create = create;

    /// <inheritdoc/>
    public override Type OptionsType => typeof(TOptions);

    /// <inheritdoc/>
    public override OptionSchema Schema => DefaultOptions.GetSchema();

    /// <inheritdoc/>
    public override OptimizerOptions DefaultOptions
    {
        get
        {
            if (_defaults is null) Probe();
            return _defaults!;
        }
    }

    /// <inheritdoc/>
    public override bool FusedKernelIsCSharp
    {
        get
        {
            if (_fusedKernelIsCSharp is null) Probe();
            return _fusedKernelIsCSharp!.Value;
        }
    }

    // What only an instance says: its defaults and which fused kernel it runs.
    private void Probe()
    {
        // A matrix: every algorithm takes one (Muon takes nothing else).
        using var probe = _create(new[] { new ParamGroupSpec<TOptions>(new[] { new Parameter(TorchSharp.torch.zeros(1, 1)) }) });
        _defaults = probe.Defaults;
        _fusedKernelIsCSharp = HasFusedKernel && probe.FusedKernelIsCSharp;
    }

    /// <inheritdoc/>
    public override Optimizer Create(IEnumerable<Parameter> parameters, IEnumerable<KeyValuePair<string, object?>>? options = null) =>
        CreateGroups(new[] { new ParamGroupSpec<TOptions>(parameters, options is null ? null : o => (TOptions)o.WithHyperparameters(options)) });

    /// <inheritdoc/>
    public override Optimizer Create(IEnumerable<Parameter> parameters, IEnumerable<KeyValuePair<string, object?>>? options, bool flat)
    {
        var optimizer = (Optimizer<TOptions>)Create(parameters, options);
        optimizer.EnableFlat(flat);
        return optimizer;
    }

    /// <summary>Creates the optimizer over parameter groups, every constructor argument at its default.</summary>
    /// <param name="groups">The groups.</param>
    public Optimizer<TOptions> CreateGroups(IEnumerable<ParamGroupSpec<TOptions>> groups) => _create(groups);
}
