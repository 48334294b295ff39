using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Optim.Amp;
using Optim.Formats;
using Optim.Formats.PyTorch;
using Optim.Schedulers;
using Optim.Swa;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Reliability;

/// <summary>
/// The code around the steps, while another thread collects garbage and runs finalizers without pause, as
/// <see cref="GcStress"/> does for the steps: state dicts, Optim's, TorchSharp's and PyTorch's checkpoint formats,
/// training checkpoints, a scheduler's and a scaler's state dicts, and an exponential moving average of a model. A
/// temporary tensor or Scalar that the library lets become unreachable while a native call still reads it aborts the
/// process (exit code 134) or makes a round trip change the state, which is reported. Runs in a child process (see
/// <see cref="GcStressTests"/>).
/// </summary>
public static class GcStressIo
{
    /// <summary>
    /// Loops over the round trips for <paramref name="milliseconds"/> with <paramref name="algorithm"/> (on its default
    /// path, after a few steps); returns the rounds done and the round trips that did not restore the state.
    /// </summary>
    public static (int Rounds, List<string> Violations) Run(AlgorithmInfo algorithm, int milliseconds)
    {
        var violations = new List<string>();
        var directory = Directory.CreateTempSubdirectory("optim-gcstress-io-");
        try
        {
            using var collection = new ConstantCollection();
            using var generator = new Generator(11);
            var ps = new List<Parameter>
            {
                new(randn(Support.Algorithms.Shape(algorithm, 4, 3), generator: generator)),
                new(randn(Support.Algorithms.Shape(algorithm, 5), generator: generator)),
            };
            using var opt = Support.Algorithms.Create(algorithm, ps, Implementation.Auto);
            for (var i = 0; i < 3; i++)
            {
                foreach (var p in ps)
                {
                    using var raw = randn(p.shape, generator: generator);
                    using var grad = Support.Algorithms.Gradient(algorithm, raw);
                    p.grad = grad;
                }
                Support.Algorithms.Step(opt);
            }
            var scheduler = new StepLR(opt, step_size: 2, gamma: 0.5);
            scheduler.step();
            using var scaler = new GradScaler(init_scale: 1024.0);
            using var model = nn.Sequential(("fc", nn.Linear(3, 4)), ("bn", nn.BatchNorm1d(4)));
            using var copy = nn.Sequential(("fc", nn.Linear(3, 4)), ("bn", nn.BatchNorm1d(4)));
            using var ema = new AveragedModel(model, copy, multi_avg_fn: SwaUtils.get_ema_multi_avg_fn(0.9), use_buffers: true);
            using var batch = randn(new long[] { 8, 3 }, generator: generator);
            var batches = new[] { batch };
            var hasTorchSharp = TorchSharpTakes(opt);

            // Master weights (not for closure-driven algorithms): a state without the float32 copies gets them from the
            // parameters on load, outside any step.
            var halfPs = new[] { Support.Algorithms.Shape(algorithm, 3, 2), Support.Algorithms.Shape(algorithm, 4) }.Select(shape =>
            {
                using var values = randn(shape, generator: generator);
                return new Parameter(values.to(ScalarType.BFloat16));
            }).ToList();
            using var halfOpt = algorithm.RequiresClosure ? null : Support.Algorithms.Create(algorithm, halfPs, Implementation.ForLoop);
            OptimizerStateDict? withoutMasters = null;
            if (halfOpt is not null)
            {
                halfOpt.MasterWeights = true;
                foreach (var p in halfPs)
                {
                    using var raw = randn(p.shape, generator: generator);
                    using var half = raw.to(ScalarType.BFloat16);
                    using var grad = Support.Algorithms.Gradient(algorithm, half);
                    p.grad = grad;
                }
                halfOpt.step();
                var saved = halfOpt.StateDict().DeepCopy();
                withoutMasters = saved with
                {
                    State = saved.State.ToDictionary(s => s.Key,
                        s => (IReadOnlyDictionary<string, Tensor>)s.Value.Where(e => e.Key != Optimizer.MasterWeightsKey).ToDictionary(e => e.Key, e => e.Value)),
                };
                foreach (var entries in saved.State.Values) entries[Optimizer.MasterWeightsKey].Dispose();
            }

            var reference = Snapshot(opt);
            var rounds = 0;
            var clock = Stopwatch.StartNew();
            while (clock.ElapsedMilliseconds < milliseconds)
            {
                var file = Path.Combine(directory.FullName, "state");

                var copied = opt.StateDict().DeepCopy();
                opt.LoadStateDict(copied);
                copied.DisposeTensors();
                Check(opt, reference, "StateDict/LoadStateDict", violations);

                opt.Save(file);
                opt.Load(file);
                Check(opt, reference, "Save/Load", violations);

                using (var memory = new MemoryStream())
                {
                    opt.SavePyTorch(memory);
                    memory.Position = 0;
                    opt.LoadPyTorch(memory);
                }
                Check(opt, reference, "SavePyTorch/LoadPyTorch", violations);

                if (hasTorchSharp)
                {
                    opt.SaveTorchSharp(file);
                    opt.LoadTorchSharp(file);
                    Check(opt, reference, "SaveTorchSharp/LoadTorchSharp", violations);
                    var dict = opt.state_dict();
                    opt.load_state_dict(dict);
                    // TorchSharp's state objects are not disposable: their tensors are left to the finalizer, more for the collector.
                    Check(opt, reference, "state_dict/load_state_dict", violations);
                }

                scheduler.LoadStateDict(scheduler.StateDict());
                scheduler.SavePyTorch(file);
                scheduler.LoadPyTorch(file);
                scaler.SavePyTorch(file);
                scaler.LoadPyTorch(file);

                TrainingCheckpoint.Save(file, model, opt, [scheduler], scaler, rngState: true);
                TrainingCheckpoint.Load(file, model, opt, [scheduler], scaler);
                Check(opt, reference, "TrainingCheckpoint", violations);
                PyTorchTrainingCheckpoint.Save(file, model, opt, scheduler, scaler);
                PyTorchTrainingCheckpoint.Load(file, model, opt, scheduler, scaler);
                Check(opt, reference, "PyTorchTrainingCheckpoint", violations);

                if (halfOpt is not null)
                {
                    halfOpt.LoadStateDict(withoutMasters!);
                    foreach (var p in halfPs)
                    {
                        using var expected = p.to(ScalarType.Float32);
                        using var equal = halfOpt.State[p][Optimizer.MasterWeightsKey].eq(expected);
                        using var same = equal.all();
                        if (!same.item<bool>()) violations.Add("LoadStateDict without master weights: a copy is not its parameter");
                    }
                }

                ema.update_parameters(model);
                SwaUtils.update_bn(batches, ema);
                rounds++;
                if (violations.Count > 0) break;
            }
            foreach (var t in reference.Values) t.Dispose();
            withoutMasters?.DisposeTensors();
            foreach (var p in ps.Concat(halfPs)) p.Dispose();
            return (rounds, violations);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    // Whether TorchSharp's format holds this optimizer: an algorithm TorchSharp has, with options its optimizer has.
    private static bool TorchSharpTakes(Optimizer opt)
    {
        try
        {
            opt.SaveTorchSharp(Stream.Null);
            return true;
        }
        catch (NotSupportedException)
        {
            return false;
        }
    }

    // A copy of every state tensor, by parameter id and key, then the optimizer-wide ones in order.
    private static Dictionary<string, Tensor> Snapshot(Optimizer opt)
    {
        var copies = new Dictionary<string, Tensor>();
        var sd = opt.StateDict();
        foreach (var (id, entries) in sd.State)
        {
            foreach (var (key, tensor) in entries) copies[$"{id}.{key}"] = Copy(tensor);
        }
        var global = 0;
        foreach (var tensor in sd.Tensors().Skip(copies.Count)) copies[$"global {global++}"] = Copy(tensor);
        return copies;

        static Tensor Copy(Tensor tensor)
        {
            using var detached = tensor.detach();
            return detached.clone();
        }
    }

    private static void Check(Optimizer opt, Dictionary<string, Tensor> reference, string what, List<string> violations)
    {
        var now = Snapshot(opt);
        try
        {
            if (!now.Keys.OrderBy(k => k, StringComparer.Ordinal).SequenceEqual(reference.Keys.OrderBy(k => k, StringComparer.Ordinal)))
            {
                violations.Add($"{what}: state keys changed ({string.Join(", ", now.Keys)})");
                return;
            }
            foreach (var (key, tensor) in now)
            {
                var expected = reference[key];
                if (tensor.dtype != expected.dtype || !tensor.shape.SequenceEqual(expected.shape))
                {
                    violations.Add($"{what}: state '{key}' changed its dtype or shape");
                    continue;
                }
                using var close = tensor.isclose(expected, rtol: 0, atol: 0, nanEqual: true);
                using var same = close.all();
                if (!same.item<bool>()) violations.Add($"{what}: state '{key}' changed");
            }
        }
        finally
        {
            foreach (var t in now.Values) t.Dispose();
        }
    }
}
