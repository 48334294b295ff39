using System.Collections.Generic;
using TorchSharp.Modules;

namespace Optim;

/// <summary>
/// Adam with decoupled weight decay (the parameter is scaled by <c>1 - lr * weight_decay</c> before the Adam update):
/// PyTorch 2.x's <c>torch.optim.AdamW</c>, which is Adam with <c>decoupled_weight_decay=True</c>. Its options are
/// <see cref="AdamOptions"/>; only the weight-decay default (1e-2) differs from <see cref="Adam"/>.
/// </summary>
public sealed class AdamW : Adam
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static new AlgorithmInfo<AdamOptions> Info { get; } = AlgorithmInfo.Of<AdamW, AdamOptions>("AdamW", g => new AdamW(g), hasFusedKernel: true,
        torchSharpLayout: new AdamTorchSharpLayout("AdamW"));

    /// <summary>Creates AdamW over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.AdamW</c>.</summary>
    /// <param name="parameters">The parameters to optimize.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="beta1">Coefficient of the running average of the gradient.</param>
    /// <param name="beta2">Coefficient of the running average of the squared gradient.</param>
    /// <param name="eps">Term added to the denominator for numerical stability.</param>
    /// <param name="weight_decay">Decoupled weight decay coefficient.</param>
    /// <param name="amsgrad">Use the AMSGrad variant.</param>
    /// <param name="maximize">Maximize the objective.</param>
    /// <param name="implementation">Which kernels to run.</param>
    /// <param name="flat">Keep each group's parameters, gradients and state in flat buffers (see <see cref="Optimizer{TOptions}.Flat"/>).</param>
    public AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 1e-2, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Single<AdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation, flat) { }

    /// <summary>Creates AdamW over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="AdamW(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public AdamW(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 1e-2, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.Named<AdamOptions>(parameters), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation, flat) { }

    /// <summary>Creates AdamW over parameter groups; the arguments are the defaults the groups start from.</summary>
    /// <param name="groups">The parameter groups.</param>
    /// <inheritdoc cref="AdamW(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public AdamW(IEnumerable<ParamGroupSpec<AdamOptions>> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 1e-2, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : base(groups, AdamOptions.Create(lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation), decoupledWeightDecay: true) => UseFlatParameters(flat);

    /// <summary>
    /// Creates AdamW over TorchSharp's parameter groups (<c>new AdamW.ParamGroup[] { ... }</c> written for
    /// <c>torch.optim.AdamW</c>): as TorchSharp applies them, each group's options that are set override the arguments.
    /// </summary>
    /// <param name="groups">TorchSharp's parameter groups.</param>
    /// <inheritdoc cref="AdamW(IEnumerable{Parameter}, double, double, double, double, double, bool, bool, Implementation, bool)"/>
    public AdamW(IEnumerable<TorchSharp.Modules.ParamGroup<TorchSharp.Modules.AdamW.Options>> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 1e-2, bool amsgrad = false, bool maximize = false, Implementation implementation = Implementation.Auto, bool flat = false)
        : this(Groups.FromTorchSharp<AdamOptions, TorchSharp.Modules.AdamW.Options>(groups, (o, t) => o with
        {
            Beta1 = t.beta1 ?? o.Beta1, Beta2 = t.beta2 ?? o.Beta2, Eps = t.eps ?? o.Eps, WeightDecay = t.weight_decay ?? o.WeightDecay,
            Amsgrad = t.amsgrad ?? o.Amsgrad, Maximize = t.maximize ?? o.Maximize,
        }), lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, implementation, flat) { }

    /// <inheritdoc/>
    protected override string SparseGradientMessage => "AdamW does not support sparse gradients";
}
