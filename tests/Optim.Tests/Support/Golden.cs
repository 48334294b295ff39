using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Support;

/// <summary>One golden trajectory written by tools/golden/generate.py from real PyTorch.</summary>
public sealed record GoldenCase(
    string Algorithm,
    string TorchVersion,
    string Name,
    ScalarType Dtype,
    IReadOnlyDictionary<string, JsonElement> Options,
    long[][] Shapes,
    double[][] Initial,
    IReadOnlyList<double[]?[]> Grads,
    IReadOnlyList<double[][]> Expected,
    IReadOnlyList<IReadOnlyDictionary<string, double[]?[]>>? ExpectedState = null)
{
    public override string ToString() => $"{Name} ({Dtype})";

    /// <summary>The algorithm's catalog entry.</summary>
    public AlgorithmInfo Info => AlgorithmCatalog.Get(Algorithm);

    /// <summary>
    /// The options PyTorch ran with (only those that differ from its defaults), each converted to the type the
    /// algorithm's schema declares for it.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, object?>> Hyperparameters()
    {
        var schema = Info.Schema;
        return Options.Select(o => new KeyValuePair<string, object?>(o.Key, FromJson(
            schema.Find(o.Key) ?? throw new InvalidOperationException($"{Algorithm} has no hyperparameter '{o.Key}' (golden case {Name})"),
            o.Value))).ToList();
    }

    /// <summary>
    /// Our optimizer for this case: the constructor's defaults, the case's options, and <paramref name="impl"/> (which an
    /// algorithm without the <c>implementation</c> option, one path of its own, does not take).
    /// </summary>
    public Optimizer Create(IEnumerable<Parameter> parameters, Implementation impl = Implementation.ForLoop) =>
        Info.Create(parameters, Info.HasImplementations
            ? Hyperparameters().Append(new KeyValuePair<string, object?>("implementation", impl))
            : Hyperparameters());

    /// <summary>The case's options applied to the algorithm's defaults.</summary>
    public OptimizerOptions OptionsRecord() => Info.DefaultOptions.WithHyperparameters(Hyperparameters());

    /// <summary>A JSON value as the declared type of <paramref name="hyperparameter"/>.</summary>
    public static object? FromJson(Hyperparameter hyperparameter, JsonElement value) => hyperparameter.Type switch
    {
        HyperparameterType.Double => value.ValueKind == JsonValueKind.Null ? null : value.GetDouble(),
        HyperparameterType.Bool => value.GetBoolean(),
        HyperparameterType.Int => value.GetInt32(),
        HyperparameterType.Long => value.GetInt64(),
        HyperparameterType.String => value.ValueKind == JsonValueKind.Null ? null : value.GetString(),
        HyperparameterType.Enum => Enum.Parse(hyperparameter.ValueType, value.GetString()!, ignoreCase: true),
        HyperparameterType.DoublePair => (value[0].GetDouble(), value[1].GetDouble()),
        HyperparameterType.DoubleList => value.EnumerateArray().Select(v => v.GetDouble()).ToArray(),
        _ => throw new NotSupportedException($"{hyperparameter.Name}: {hyperparameter.Type}"),
    };

    /// <summary>Fresh parameters holding the initial values.</summary>
    public List<Parameter> MakeParameters() =>
        Initial.Select((values, i) => new Parameter(Tensor(values, Shapes[i]), requires_grad: true)).ToList();

    public Tensor Tensor(double[] values, long[] shape) =>
        Dtype == ScalarType.Float32
            ? torch.tensor(values.Select(v => (float)v).ToArray()).reshape(shape)
            : torch.tensor(values).reshape(shape);

    /// <summary>Sets the gradients of step <paramref name="step"/> (null where PyTorch had none).</summary>
    public void SetGradients(IReadOnlyList<Parameter> parameters, int step)
    {
        for (var i = 0; i < parameters.Count; i++)
        {
            var g = Grads[step][i];
            // On the parameter's device (the CUDA tests run the cases there).
            parameters[i].grad = g is null ? null
                : parameters[i].device_type == DeviceType.CPU ? Tensor(g, Shapes[i]) : Tensor(g, Shapes[i]).to(parameters[i].device);
        }
    }

    /// <summary>Runs <paramref name="optimizer"/> over all steps and returns the parameters after each.</summary>
    public List<double[][]> Run(IReadOnlyList<Parameter> parameters, torch.optim.Optimizer optimizer, int from = 0, int? to = null)
    {
        var trajectory = new List<double[][]>();
        for (var s = from; s < (to ?? Grads.Count); s++)
        {
            SetGradients(parameters, s);
            optimizer.step();
            trajectory.Add(parameters.Select(Values).ToArray());
        }
        return trajectory;
    }

    public static double[] Values(Tensor t) =>
        t.dtype == ScalarType.Float32
            ? t.detach().cpu().data<float>().ToArray().Select(v => (double)v).ToArray()
            : t.detach().cpu().to(ScalarType.Float64).data<double>().ToArray();

    /// <summary>All golden cases of one algorithm's file.</summary>
    public static IEnumerable<GoldenCase> Load(string file)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Goldens", file);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var algorithm = root.GetProperty("algorithm").GetString()!;
        var version = root.GetProperty("torch_version").GetString()!;
        foreach (var c in root.GetProperty("cases").EnumerateArray())
        {
            var steps = c.GetProperty("steps").EnumerateArray().ToList();
            yield return new GoldenCase(
                algorithm,
                version,
                c.GetProperty("name").GetString()!,
                c.GetProperty("dtype").GetString() == "float32" ? ScalarType.Float32 : ScalarType.Float64,
                c.GetProperty("options").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone()),
                c.GetProperty("shapes").EnumerateArray().Select(s => s.EnumerateArray().Select(d => d.GetInt64()).ToArray()).ToArray(),
                c.GetProperty("initial").EnumerateArray().Select(Doubles).ToArray(),
                steps.Select(s => s.GetProperty("grads").EnumerateArray().Select(g => g.ValueKind == JsonValueKind.Null ? null : Doubles(g)).ToArray()).ToList(),
                steps.Select(s => s.GetProperty("params").EnumerateArray().Select(Doubles).ToArray()).ToList(),
                steps.All(s => s.TryGetProperty("state", out _))
                    ? steps.Select(s => (IReadOnlyDictionary<string, double[]?[]>)s.GetProperty("state").EnumerateObject().ToDictionary(
                        k => k.Name, k => k.Value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.Null ? null : Doubles(v)).ToArray())).ToList()
                    : null);
        }
    }

    private static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    /// <summary>xunit theory data: one row per case name + dtype.</summary>
    public static TheoryData<string> Names(string file)
    {
        var data = new TheoryData<string>();
        foreach (var c in Load(file)) data.Add(c.ToString());
        return data;
    }

    public static GoldenCase Get(string file, string id) => Cached(file).Single(c => c.ToString() == id);

    private static readonly Dictionary<string, IReadOnlyList<GoldenCase>> Cache = new();

    // Each theory row reads one case; parse every file once per test run.
    private static IReadOnlyList<GoldenCase> Cached(string file)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(file, out var cases)) Cache[file] = cases = Load(file).ToList();
            return cases;
        }
    }
}
