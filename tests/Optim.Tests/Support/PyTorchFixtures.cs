using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Support;

/// <summary>
/// The PyTorch checkpoints <c>tools/golden/pytorch_checkpoints.py</c> wrote (Fixtures/PyTorch): per case the file, the
/// parameters when it was saved, the gradients of the steps after it and the parameters PyTorch reached with them.
/// </summary>
public static class PyTorchFixtures
{
    public sealed record Case(string Name, string Algorithm, string File, string Reference, long[][] Shapes, double[][] Params,
        double[][][] Grads, double[][] Targets, double[][] Weights, double[][][] Trajectory)
    {
        public override string ToString() => Name;

        public string Path => System.IO.Path.Combine(Folder, File);

        public List<Parameter> Parameters() =>
            Params.Select((v, i) => new Parameter(tensor(v, ScalarType.Float64).reshape(Shapes[i]))).ToList();

        /// <summary>Steps <paramref name="optimizer"/> as the generator stepped PyTorch's; the parameters after each step.</summary>
        public List<double[][]> Continue(Optimizer optimizer, IReadOnlyList<Parameter> ps)
        {
            var trajectory = new List<double[][]>();
            foreach (var grads in Grads)
            {
                if (Algorithm == "LBFGS")
                {
                    using var loss = optimizer.step(Closure(ps));
                }
                else
                {
                    // SparseAdam's gradients are sparse, as the generator built them (dense.to_sparse(1)).
                    for (var i = 0; i < ps.Count; i++) ps[i].grad = Algorithms.Gradient(optimizer, tensor(grads[i], ScalarType.Float64).reshape(Shapes[i]));
                    optimizer.step();
                }
                trajectory.Add(ps.Select(p => p.detach().reshape(-1).data<double>().ToArray()).ToArray());
            }
            return trajectory;
        }

        // The generator's LBFGS loss: sum_i sum(weights_i * (p_i - targets_i)^2) + 0.1 * sum(p_i^4).
        private Func<Tensor> Closure(IReadOnlyList<Parameter> ps) => () =>
        {
            foreach (var p in ps) p.grad = null;
            Tensor? loss = null;
            for (var i = 0; i < ps.Count; i++)
            {
                using var t = tensor(Targets[i], ScalarType.Float64).reshape(Shapes[i]);
                using var w = tensor(Weights[i], ScalarType.Float64).reshape(Shapes[i]);
                var term = (w * (ps[i] - t).pow(2)).sum() + 0.1 * ps[i].pow(4).sum();
                loss = loss is null ? term : loss + term;
            }
            loss!.backward();
            return loss;
        };
    }

    public static string Folder => System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", "PyTorch");

    public static IReadOnlyList<Case> All { get; } = Load();

    public static TheoryData<string> Names() => new(All.Select(c => c.Name));

    public static Case Get(string name) => All.Single(c => c.Name == name);

    private static List<Case> Load()
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(System.IO.Path.Combine(Folder, "pytorch_checkpoints.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new Case(
            c.GetProperty("case").GetString()!,
            c.GetProperty("algorithm").GetString()!,
            c.GetProperty("file").GetString()!,
            c.GetProperty("reference").GetString()!,
            c.GetProperty("shapes").EnumerateArray().Select(s => s.EnumerateArray().Select(d => d.GetInt64()).ToArray()).ToArray(),
            Matrix(c.GetProperty("params")),
            c.GetProperty("grads").EnumerateArray().Select(Matrix).ToArray(),
            Matrix(c.GetProperty("targets")),
            Matrix(c.GetProperty("weights")),
            c.GetProperty("trajectory").EnumerateArray().Select(Matrix).ToArray())).ToList();
    }

    public static double[][] Matrix(JsonElement e) => e.EnumerateArray().Select(r => r.EnumerateArray().Select(d => d.GetDouble()).ToArray()).ToArray();

    /// <summary>Whether <c>/usr/bin/python3</c> imports torch here (then the generator's resume mode can run).</summary>
    public static bool PythonTorchAvailable => PythonTorch.Value;

    private static readonly Lazy<bool> PythonTorch = new(() =>
    {
        if (!System.IO.File.Exists(PythonPath)) return false;
        try
        {
            using var p = Process.Start(new ProcessStartInfo(PythonPath, "-c \"import torch\"") { RedirectStandardError = true, RedirectStandardOutput = true })!;
            p.WaitForExit(60_000);
            return p.HasExited && p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    public const string PythonPath = "/usr/bin/python3";

    /// <summary>The generator script, found from the test's folder up to the repository.</summary>
    public static string? Script()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "tools", "golden", "pytorch_checkpoints.py");
            if (System.IO.File.Exists(candidate)) return candidate;
        }
        return null;
    }
}

/// <summary>A fact that runs where <c>/usr/bin/python3</c> has torch and the repository's tools are at hand.</summary>
public sealed class PythonTorchFactAttribute : FactAttribute
{
    public PythonTorchFactAttribute()
    {
        if (!PyTorchFixtures.PythonTorchAvailable) Skip = "/usr/bin/python3 with torch is not installed (Debian: apt-get install python3-torch)";
        else if (PyTorchFixtures.Script() is null) Skip = "tools/golden/pytorch_checkpoints.py is not above the test's folder";
    }
}
