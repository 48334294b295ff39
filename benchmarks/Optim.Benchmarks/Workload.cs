using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Benchmarks;

/// <summary>
/// One shape's fp32 parameters and gradients (on <see cref="BenchDevice.Current"/>), random and made once. Every optimizer gets its own copy of the
/// parameters (so its state and trajectory are its own) whose gradients are the shared gradient tensors: the
/// optimizers never write to gradients, so every measured step sees the same ones.
/// </summary>
public sealed class Workload : IDisposable
{
    private readonly Tensor[] _initial;
    private readonly Tensor[] _grads;

    /// <summary>Makes the parameters and gradients of <paramref name="shape"/> (seeded, so every run sees the same numbers).</summary>
    public Workload(Shape shape)
    {
        Shape = shape;
        torch.manual_seed(0);
        _initial = new Tensor[shape.Tensors];
        _grads = new Tensor[shape.Tensors];
        for (var i = 0; i < shape.Tensors; i++)
        {
            _initial[i] = BenchDevice.Move(torch.randn(shape.SizeOf(i), dtype: ScalarType.Float32));
            _grads[i] = BenchDevice.Move(torch.randn(shape.SizeOf(i), dtype: ScalarType.Float32));
        }
    }

    /// <summary>The shape.</summary>
    public Shape Shape { get; }

    /// <summary>
    /// A fresh copy of the initial parameters, each with its shared gradient set; for an algorithm that takes matrices
    /// only (Muon) each is a matrix of the same elements (<see cref="MatrixOf"/>).
    /// </summary>
    public Parameter[] NewParameters(AlgorithmInfo algorithm)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        var ps = new Parameter[_initial.Length];
        using (torch.no_grad())
        {
            for (var i = 0; i < ps.Length; i++)
            {
                // Shapes may list tensors of different sizes (the transformer's).
                var elements = _initial[i].numel();
                var shape = algorithm.RequiresMatrices ? MatrixOf(elements) : new[] { elements };
                ps[i] = new Parameter(_initial[i].clone().reshape(shape));
                ps[i].grad = algorithm.RequiresMatrices ? _grads[i].view(shape) : _grads[i];
            }
        }
        return ps;
    }

    /// <summary>
    /// A matrix of <paramref name="elements"/>: rows the largest divisor up to 16 (and the square root), the rest columns.
    /// Muon's Newton–Schulz products cost rows² · columns per iteration in bfloat16, which CPUs run slowly: square
    /// 1,000 × 1,000 matrices would take minutes per step of the largest shape, beyond the quick run's budget.
    /// </summary>
    public static long[] MatrixOf(long elements)
    {
        var rows = 1L;
        for (var r = 2L; r <= 16 && r * r <= elements; r++)
        {
            if (elements % r == 0) rows = r;
        }
        return new[] { rows, elements / rows };
    }

    /// <summary>Frees parameters made by <see cref="NewParameters"/> (not the shared gradients).</summary>
    public static void Free(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        foreach (var p in parameters)
        {
            p.grad = null;
            p.Dispose();
        }
    }

    /// <summary>Copy bandwidth over buffers of this shape's size (see <see cref="CopyProbe"/>): median of about <paramref name="budget"/> of copies, bytes per second.</summary>
    public double CopyBandwidth(TimeSpan budget)
    {
        using var probe = new CopyProbe(Shape.Parameters);
        var reps = (int)Math.Clamp(budget.TotalSeconds / Math.Max(probe.Warm(), 1e-7), 11, 301);
        var seconds = new double[reps];
        for (var i = 0; i < reps; i++) seconds[i] = probe.Time();
        return 2.0 * sizeof(float) * Shape.Parameters / Stats.Median(seconds);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in _initial.Concat(_grads)) t.Dispose();
    }
}

/// <summary>
/// The device the quick harness measures on (<c>--device</c>; the CPU unless told). On a GPU a step only queues
/// kernels, so every timed step and copy waits for the device to finish (<see cref="Synchronize"/>).
/// </summary>
public static class BenchDevice
{
    /// <summary>The device.</summary>
    public static Device Current { get; private set; } = torch.CPU;

    /// <summary>Measures on the device named <paramref name="name"/> (<c>cpu</c>, <c>cuda</c>, <c>cuda:1</c>); a CUDA device must exist.</summary>
    public static void Use(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) && !torch.cuda.is_available())
            throw new ArgumentException($"--device {name}: no CUDA device here (TorchSharp-cpu, or no GPU).", nameof(name));
        Current = torch.device(name);
    }

    /// <summary><paramref name="t"/> on the device (itself on the CPU; a CPU original is freed).</summary>
    public static Tensor Move(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (Current.type == DeviceType.CPU) return t;
        using (t) return t.to(Current);
    }

    /// <summary>Waits for the device's queued work (nothing on the CPU, whose ops finish when they return).</summary>
    public static void Synchronize()
    {
        if (Current.type == DeviceType.CUDA) torch.cuda.synchronize(Current);
    }
}

/// <summary>Small statistics helpers.</summary>
public static class Stats
{
    /// <summary>The median (mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
