using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim.Swa;

/// <summary>
/// PyTorch's <c>avg_fn</c>: the new value of one averaged parameter from its current value, the model's parameter and
/// the number of models averaged so far (a 0-dim long tensor on the parameter's device).
/// </summary>
/// <param name="averaged_param">The averaged parameter (detached).</param>
/// <param name="current_param">The model's parameter (detached, on the averaged parameter's device).</param>
/// <param name="num_averaged">The number of models averaged so far.</param>
public delegate Tensor AvgFn(Tensor averaged_param, Tensor current_param, Tensor num_averaged);

/// <summary>
/// PyTorch's <c>multi_avg_fn</c>: updates a list of averaged parameters in place from the model's, for one (device,
/// dtype) bucket at a time (PyTorch's foreach path).
/// </summary>
/// <param name="averaged_params">The averaged parameters (detached), updated in place.</param>
/// <param name="current_params">The model's parameters (detached), in the same order.</param>
/// <param name="num_averaged">The number of models averaged so far (a 0-dim long tensor on the bucket's device).</param>
public delegate void MultiAvgFn(IReadOnlyList<Tensor> averaged_params, IReadOnlyList<Tensor> current_params, Tensor num_averaged);

/// <summary>
/// PyTorch's <c>torch.optim.swa_utils.AveragedModel</c>: a copy of a model whose parameters (and, with
/// <c>use_buffers</c>, buffers) are running averages of the model's: equal weights (SWA) by default, or an exponential
/// moving average with <see cref="SwaUtils.get_ema_multi_avg_fn"/>.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp cannot deep-copy a module, so the copy is passed in: a second instance of the same architecture
/// (<c>new AveragedModel(model, copy: new Net())</c>). The constructor copies the model's parameters and buffers into
/// it (PyTorch's <c>deepcopy</c>), checking that names and shapes match.
/// </para>
/// <para>
/// Its state dict is PyTorch's: the copy's entries under <c>module.</c> and the <c>n_averaged</c> buffer; saving and
/// loading it (TorchSharp's <c>save</c>/<c>load</c> or <c>state_dict</c>/<c>load_state_dict</c>) resumes the average.
/// The averaging functions are not saved, as in PyTorch.
/// </para>
/// </remarks>
public sealed class AveragedModel : nn.Module<Tensor, Tensor>
{
    private readonly AvgFn? _avgFn;
    private readonly MultiAvgFn? _multiAvgFn;

    /// <summary>Wraps <paramref name="copy"/> as the average of <paramref name="model"/>.</summary>
    /// <param name="model">The model to average.</param>
    /// <param name="copy">A separate instance of the same architecture; it becomes <see cref="module"/>.</param>
    /// <param name="device">Where to keep the average; by default where the copy is.</param>
    /// <param name="avg_fn">A per-parameter averaging function; default: equal weights.</param>
    /// <param name="multi_avg_fn">A per-bucket in-place averaging function; default: equal weights.</param>
    /// <param name="use_buffers">Average the buffers too (else they are copied from the model at each update).</param>
    public AveragedModel(
        nn.Module<Tensor, Tensor> model, nn.Module<Tensor, Tensor> copy, Device? device = null, AvgFn? avg_fn = null,
        MultiAvgFn? multi_avg_fn = null, bool use_buffers = false)
        : base(nameof(AveragedModel))
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(copy);
        if (avg_fn is not null && multi_avg_fn is not null)
            throw new ArgumentException("Only one of avg_fn and multi_avg_fn should be provided", nameof(multi_avg_fn));
        if (ReferenceEquals(model, copy)) throw new ArgumentException("The copy must be a separate module of the same architecture.", nameof(copy));
        CopyState(model, copy);
        module = device is null ? copy : copy.to(device);
        var count = torch.tensor(0L, device: device ?? FirstDevice(copy));
        _avgFn = avg_fn;
        _multiAvgFn = multi_avg_fn;
        this.use_buffers = use_buffers;
        register_module("module", module);
        register_buffer("n_averaged", count);
    }

    /// <summary>The averaged copy of the model.</summary>
    public nn.Module<Tensor, Tensor> module { get; }

    /// <summary>How many models have been averaged (the 0-dim long buffer, looked up so it follows <c>to(device)</c> and loads).</summary>
    public Tensor n_averaged => named_buffers(recurse: false).First(b => b.Item1 == "n_averaged").Item2;

    /// <summary>Whether buffers are averaged too.</summary>
    public bool use_buffers { get; }

    /// <summary>Runs the averaged model.</summary>
    /// <param name="input">The input.</param>
    public override Tensor forward(Tensor input) => module.call(input);

    /// <summary>
    /// Folds <paramref name="model"/>'s current parameters into the average: the first call copies them; later calls
    /// apply the averaging function. Without <see cref="use_buffers"/> the buffers are copied from the model.
    /// </summary>
    /// <param name="model">The model being trained (same architecture).</param>
    public void update_parameters(nn.Module<Tensor, Tensor> model)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var selfParams = use_buffers ? module.parameters().Cast<Tensor>().Concat(module.buffers()).ToList() : module.parameters().Cast<Tensor>().ToList();
        var modelParams = use_buffers ? model.parameters().Cast<Tensor>().Concat(model.buffers()).ToList() : model.parameters().Cast<Tensor>().ToList();
        if (selfParams.Count != modelParams.Count)
            throw new ArgumentException($"The model has {modelParams.Count} tensors to average, the averaged model {selfParams.Count}.", nameof(model));

        var selfDetached = new List<Tensor>(selfParams.Count);
        var modelDetached = new List<Tensor>(selfParams.Count);
        var numAveraged = n_averaged;
        var count = numAveraged.item<long>();
        for (var i = 0; i < selfParams.Count; i++)
        {
            var averaged = selfParams[i].detach();
            var current = modelParams[i].detach().to(averaged.device);
            selfDetached.Add(averaged);
            modelDetached.Add(current);
            if (count == 0) averaged.copy_(current);
        }

        if (count > 0)
        {
            if (_multiAvgFn is not null || _avgFn is null)
            {
                foreach (var bucket in Enumerable.Range(0, selfDetached.Count).GroupBy(i => (selfDetached[i].device.ToString(), selfDetached[i].dtype)))
                {
                    var averaged = bucket.Select(i => selfDetached[i]).ToList();
                    var current = bucket.Select(i => modelDetached[i]).ToList();
                    var n = numAveraged.to(averaged[0].device);
                    if (_multiAvgFn is not null) _multiAvgFn(averaged, current, n);
                    else if (averaged[0].device_type == DeviceType.CUDA) SwaUtils.get_swa_multi_avg_fn()(averaged, current, n);
                    else
                    {
                        var avg = SwaUtils.get_swa_avg_fn();
                        for (var j = 0; j < averaged.Count; j++) averaged[j].copy_(avg(averaged[j], current[j], n));
                    }
                }
            }
            else
            {
                for (var i = 0; i < selfDetached.Count; i++)
                    selfDetached[i].copy_(_avgFn(selfDetached[i], modelDetached[i], numAveraged.to(selfDetached[i].device)));
            }
        }

        if (!use_buffers)
        {
            // Without averaging them, keep the buffers in sync with the model.
            foreach (var (swa, source) in module.buffers().Zip(model.buffers()))
                swa.detach().copy_(source.detach().to(swa.device));
        }

        numAveraged.add_(S(1), One);
    }

    private static Device FirstDevice(nn.Module module) =>
        module.parameters().Select(p => p.device).FirstOrDefault() ?? torch.CPU;

    private static void CopyState(nn.Module model, nn.Module copy)
    {
        using var noGrad = torch.no_grad();
        var source = model.state_dict();
        var target = copy.state_dict();
        if (!source.Keys.Order().SequenceEqual(target.Keys.Order()))
            throw new ArgumentException("The copy must have the model's architecture: their state dicts have different keys.", nameof(copy));
        foreach (var (name, tensor) in source)
        {
            var destination = target[name];
            if (!destination.shape.SequenceEqual(tensor.shape))
                throw new ArgumentException($"The copy must have the model's architecture: '{name}' has shape [{string.Join(", ", destination.shape)}], the model's [{string.Join(", ", tensor.shape)}].", nameof(copy));
            destination.copy_(tensor);
        }
    }
}

/// <summary>PyTorch's <c>torch.optim.swa_utils</c> functions.</summary>
public static class SwaUtils
{
    /// <summary>
    /// PyTorch's <c>get_ema_multi_avg_fn</c>: an exponential moving average, <c>ema = decay·ema + (1 − decay)·param</c>,
    /// as <c>lerp_(param, 1 − decay)</c> for floating-point tensors (PyTorch's <c>_foreach_lerp_</c>, whose CPU kernel
    /// is the per-tensor <c>lerp_</c>).
    /// </summary>
    /// <param name="decay">The decay, in [0, 1].</param>
    public static MultiAvgFn get_ema_multi_avg_fn(double decay = 0.999)
    {
        if (!(decay >= 0.0 && decay <= 1.0))
            throw new ArgumentException($"Invalid decay value {decay} provided. Please provide a value in [0,1] range.", nameof(decay));
        return (emaParams, currentParams, _) =>
        {
            using var noGrad = torch.no_grad();
            using var scope = NewDisposeScope();
            for (var i = 0; i < emaParams.Count; i++)
            {
                if (emaParams[i].is_floating_point() || emaParams[i].is_complex()) emaParams[i].lerp_(currentParams[i], 1 - decay);
                else emaParams[i].copy_(emaParams[i].mul(S(decay)).add(currentParams[i].mul(S(1 - decay)), One));
            }
        };
    }

    /// <summary>PyTorch's <c>get_ema_avg_fn</c>: <c>decay·ema + (1 − decay)·param</c> for one parameter.</summary>
    /// <param name="decay">The decay, in [0, 1].</param>
    public static AvgFn get_ema_avg_fn(double decay = 0.999)
    {
        if (!(decay >= 0.0 && decay <= 1.0))
            throw new ArgumentException($"Invalid decay value {decay} provided. Please provide a value in [0,1] range.", nameof(decay));
        return (ema, current, _) =>
        {
            // The temporary product stays in the scope (alive) until add has read it.
            using var scope = NewDisposeScope();
            return scope.MoveToOuter(ema.mul(S(decay)).add(current.mul(S(1 - decay)), One));
        };
    }

    /// <summary>
    /// PyTorch's <c>get_swa_multi_avg_fn</c>: the equal-weight running mean as <c>lerp_(param, 1 / (n + 1))</c>, the
    /// weight computed as PyTorch does (<c>1 / (n + 1)</c> on the long tensor, in float32).
    /// </summary>
    public static MultiAvgFn get_swa_multi_avg_fn() => (averagedParams, currentParams, numAveraged) =>
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        if (averagedParams.Count == 0) return;
        if (averagedParams[0].is_floating_point() || averagedParams[0].is_complex())
        {
            var weight = numAveraged.add(S(1), One).reciprocal().item<float>();
            foreach (var (averaged, current) in averagedParams.Zip(currentParams)) averaged.lerp_(current, weight);
        }
        else
        {
            foreach (var (averaged, current) in averagedParams.Zip(currentParams)) averaged.addcdiv_(current - averaged, numAveraged.add(S(1), One), One);
        }
    };

    /// <summary>PyTorch's <c>get_swa_avg_fn</c>: <c>averaged + (param − averaged) / (n + 1)</c>.</summary>
    public static AvgFn get_swa_avg_fn() => (averaged, current, numAveraged) =>
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(averaged.add((current - averaged) / numAveraged.add(S(1), One), One));
    };

    /// <summary>
    /// PyTorch's <c>update_bn</c>: recomputes the running mean and variance of every batch-norm layer of
    /// <paramref name="model"/> with one pass over <paramref name="loader"/> (a cumulative average: momentum None),
    /// then restores the layers' momenta and the model's training mode.
    /// </summary>
    /// <param name="loader">The batches of inputs.</param>
    /// <param name="model">The model (e.g. an <see cref="AveragedModel"/>).</param>
    /// <param name="device">Where to move each batch first, if given.</param>
    public static void update_bn(IEnumerable<Tensor> loader, nn.Module<Tensor, Tensor> model, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(loader);
        ArgumentNullException.ThrowIfNull(model);
        using var noGrad = torch.no_grad();
        var momenta = new Dictionary<BatchNorm, double?>();
        foreach (var layer in model.modules().OfType<BatchNorm>())
        {
            layer.reset_running_stats();
            momenta[layer] = layer.momentum;
        }

        if (momenta.Count == 0) return;
        var wasTraining = model.training;
        model.train();
        foreach (var layer in momenta.Keys) layer.momentum = null;
        foreach (var batch in loader)
        {
            using var scope = NewDisposeScope();
            model.call(device is null ? batch : batch.to(device));
        }

        foreach (var (layer, momentum) in momenta) layer.momentum = momentum;
        model.train(wasTraining);
    }

    /// <summary><see cref="update_bn(IEnumerable{Tensor}, nn.Module{Tensor, Tensor}, Device?)"/> for (input, target) batches: the input is used.</summary>
    /// <param name="loader">The batches.</param>
    /// <param name="model">The model.</param>
    /// <param name="device">Where to move each batch first, if given.</param>
    public static void update_bn(IEnumerable<(Tensor Input, Tensor Target)> loader, nn.Module<Tensor, Tensor> model, Device? device = null) =>
        update_bn(loader.Select(b => b.Input), model, device);
}
