using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Reliability;

/// <summary>
/// Training steps of one algorithm, on every path, while another thread collects garbage and runs finalizers without
/// pause. A native object that our code (or a TorchSharp overload it calls) lets become unreachable while a native call
/// still reads it, such as a temporary <see cref="TorchSharp.Scalar"/>, is then freed under that call and the process
/// aborts. Runs in a child process (see <see cref="GcStressTests"/>).
/// </summary>
public static class GcStress
{
    /// <summary>
    /// Steps <paramref name="algorithm"/> on each path for <paramref name="milliseconds"/> in all, then runs a few of the
    /// fuzz worker's tamperings (state dicts, checkpoints, <see cref="Tamper"/>); returns the steps taken and the
    /// tampering's violations.
    /// </summary>
    public static (int Steps, List<string> Violations) Run(AlgorithmInfo algorithm, int milliseconds)
    {
        using var collection = new ConstantCollection();
        var paths = Support.Algorithms.Paths(algorithm).ToList();
        var steps = 0;
        using var generator = new Generator(7);
        foreach (var path in paths)
        {
            var clock = Stopwatch.StartNew();
            var ps = new List<Parameter>
            {
                new(randn(Support.Algorithms.Shape(algorithm, 4, 3), generator: generator)),
                new(randn(Support.Algorithms.Shape(algorithm, 5), generator: generator)),
                new(randn(Support.Algorithms.Shape(algorithm), generator: generator)),
            };
            using var opt = Support.Algorithms.Create(algorithm, ps, path);
            while (clock.ElapsedMilliseconds < milliseconds / paths.Count)
            {
                // No DisposeScope here: the library's own code must keep its temporaries alive. This loop keeps
                // its own (`using`): a tensor that is only an argument can be finalized during the native call.
                foreach (var p in ps)
                {
                    using var raw = randn(p.shape, generator: generator);
                    using var grad = Support.Algorithms.Gradient(algorithm, raw);
                    p.grad = grad;
                }
                Support.Algorithms.Step(opt);
                steps++;
            }
            foreach (var p in ps) p.Dispose();
        }
        return (steps, Tamper.Run(algorithm, 20251130, 3));
    }
}

/// <summary>
/// A thread that collects garbage and runs finalizers without pause, from construction until disposed: a native object
/// whose wrapper nothing references is then freed at once, even while a native call still reads it.
/// </summary>
public sealed class ConstantCollection : IDisposable
{
    private readonly ManualResetEventSlim _stop = new();
    private readonly Thread _collector;

    /// <summary>Starts the collecting thread.</summary>
    public ConstantCollection()
    {
        _collector = new Thread(() =>
        {
            while (!_stop.IsSet)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        _collector.Start();
    }

    /// <summary>Stops the collecting thread and waits for it.</summary>
    public void Dispose()
    {
        _stop.Set();
        _collector.Join();
        _stop.Dispose();
    }
}
