using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// SparseAdam on sparse embeddings: tools/golden/sparse_adam.py (Debian's PyTorch 1.13's own SparseAdam, whose ops are
/// 2.x's) replayed through <c>torch.nn.Embedding(..., sparse: true)</c> lookups with repeated indices, checkpoint resume,
/// training, and the gradients it refuses.
/// </summary>
/// <remarks>
/// The goldens are compared within <see cref="Tolerances"/> (about 2 ulp): the same ops in the same order give 1.13's
/// bits in half the cases and differ by 1-2 ulp in the others, as 1.13's sqrt/div and sparse kernels do from libtorch
/// 2.10's in the dense algorithms (measured worst in the test output).
/// </remarks>
public class SparseAdamTests(ITestOutputHelper output)
{
    private static readonly JsonElement Goldens = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Goldens",
            GoldenFile.All.Single(f => f.SparseGradients && f.Algorithm == SparseAdam.Info.Name).File)))
        .RootElement.GetProperty("cases");

    public static TheoryData<string> Cases() => new(Goldens.EnumerateArray().Select(c => c.GetProperty("name").GetString()!));

    private static double[] Doubles(JsonElement e) => e.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    // A golden case: its embedding tables at their initial values and its lookups.
    private sealed class Case
    {
        public Case(string name)
        {
            Json = Goldens.EnumerateArray().First(c => c.GetProperty("name").GetString() == name);
            Dtype = Json.GetProperty("dtype").GetString() == "float64" ? ScalarType.Float64 : ScalarType.Float32;
            var shapes = Json.GetProperty("shapes").EnumerateArray().Select(s => s.EnumerateArray().Select(d => d.GetInt64()).ToArray()).ToList();
            var initial = Json.GetProperty("initial").EnumerateArray().Select(Doubles).ToList();
            Tables = shapes.Select((s, i) => torch.nn.Embedding_from_pretrained(torch.tensor(initial[i]).to(Dtype).reshape(s), freeze: false, sparse: true))
                .ToList();
            Steps = Json.GetProperty("steps").EnumerateArray().ToList();
            // TorchSharp's weight getter wraps the handle anew on every call; the optimizer keys state by the object.
            Parameters = Tables.Select(t => t.weight!).ToList();
        }

        public JsonElement Json { get; }
        public ScalarType Dtype { get; }
        public List<Embedding> Tables { get; }
        public List<JsonElement> Steps { get; }
        public List<Parameter> Parameters { get; }

        public SparseAdam Create() => (SparseAdam)SparseAdam.Info.Create(Parameters,
            Json.GetProperty("options").EnumerateObject().Select(o => new KeyValuePair<string, object?>(o.Name,
                GoldenCase.FromJson(SparseAdam.Info.Schema.Find(o.Name)!, o.Value))));

        // The step's lookups: each table's gradient is the sparse gradient of sum(table(indices) * upstream).
        public void Backward(int step)
        {
            var s = Steps[step];
            for (var i = 0; i < Tables.Count; i++)
            {
                Parameters[i].grad = null;
                var indices = s.GetProperty("indices")[i];
                if (indices.ValueKind == JsonValueKind.Null) continue;
                using var scope = NewDisposeScope();
                var idx = torch.tensor(indices.EnumerateArray().Select(v => v.GetInt64()).ToArray(), ScalarType.Int64);
                var up = torch.tensor(Doubles(s.GetProperty("upstream")[i])).to(Dtype).reshape(idx.shape[0], Parameters[i].shape[1]);
                (Tables[i].forward(idx) * up).sum().backward();
            }
        }

        public double[][] Expected(int step) => Steps[step].GetProperty("params").EnumerateArray().Select(Doubles).ToArray();

        public double[][] Actual() => Parameters.Select(p => GoldenCase.Values(p)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_PyTorch_on_sparse_embedding_lookups(string name)
    {
        var c = new Case(name);
        using var opt = c.Create();
        var actual = new List<double[][]>();
        for (var s = 0; s < c.Steps.Count; s++)
        {
            c.Backward(s);
            c.Parameters.ForEach(p => p.grad?.is_sparse.Should().BeTrue());
            opt.step();
            actual.Add(c.Actual());
            // PyTorch's step counts: a table on a step without a lookup keeps its count; an empty lookup counts.
            var counts = c.Steps[s].GetProperty("step");
            for (var i = 0; i < c.Tables.Count; i++)
            {
                if (counts[i].ValueKind == JsonValueKind.Null) opt.State.ContainsKey(c.Parameters[i]).Should().BeFalse();
                else opt.State[c.Parameters[i]]["step"].ToDouble().Should().Be(counts[i].GetInt64());
            }
        }
        var worst = Trajectories.ShouldBeClose(actual, Enumerable.Range(0, c.Steps.Count).Select(c.Expected).ToList(),
            Tolerances.Atol(c.Dtype), Tolerances.Rtol(c.Dtype));
        output.WriteLine($"{name}: max |error| {worst:E2}{(worst == 0 ? " (bit for bit)" : "")}");
    }

    [Theory]
    [InlineData("all_float32")]
    [InlineData("default_float64")]
    public void A_resumed_run_continues_bit_for_bit(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), $"sparse-adam-{Guid.NewGuid():N}.ckpt");
        try
        {
            var whole = new Case(name);
            using var straight = whole.Create();
            var first = new Case(name);
            using (var before = first.Create())
            {
                for (var s = 0; s < 8; s++)
                {
                    whole.Backward(s);
                    straight.step();
                    first.Backward(s);
                    before.step();
                }
                before.Save(path);
            }
            using var resumed = first.Create();
            resumed.Load(path);
            for (var s = 8; s < whole.Steps.Count; s++)
            {
                whole.Backward(s);
                straight.step();
                first.Backward(s);
                resumed.step();
                Trajectories.ShouldBeBitwise(new[] { first.Actual() }, new[] { whole.Actual() }, $"step {s}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Trains_a_sparse_embedding()
    {
        torch.manual_seed(7);
        using var table = torch.nn.Embedding(50, 8, sparse: true);
        using var target = torch.randn(50, 8);
        using var opt = new SparseAdam(table.parameters(), lr: 0.05);
        double Loss()
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            return torch.nn.functional.mse_loss(table.weight!, target).item<float>();
        }
        var initial = Loss();
        for (var step = 0; step < 300; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var idx = torch.randint(0, 50, new long[] { 16 }, dtype: ScalarType.Int64);
            torch.nn.functional.mse_loss(table.forward(idx), target.index_select(0, idx)).backward();
            table.weight!.grad!.is_sparse.Should().BeTrue();
            opt.step();
        }
        var final = Loss();
        output.WriteLine($"mse {initial:G4} -> {final:G4}");
        final.Should().BeLessThan(initial / 20);
    }

    [Fact]
    public void A_dense_gradient_is_refused_with_PyTorchs_message_and_nothing_changes()
    {
        using var sparse = torch.nn.Embedding(5, 3, sparse: true);
        using var dense = torch.nn.Embedding(4, 3);
        using var opt = new SparseAdam(sparse.parameters().Concat(dense.parameters()));
        (sparse.forward(torch.tensor(new long[] { 1, 1, 3 })).sum() + dense.forward(torch.tensor(new long[] { 2 })).sum()).backward();
        var before = opt.parameters().Select(p => p.clone()).ToList();
        var act = () => opt.step();
        act.Should().Throw<NotSupportedException>().WithMessage("SparseAdam does not support dense gradients, please consider Adam instead");
        opt.State.Should().BeEmpty();
        opt.parameters().Zip(before).Should().OnlyContain(e => Trajectories.BitwiseEqual(e.First, e.Second));
    }

    [Fact]
    public void Other_algorithms_refuse_sparse_gradients()
    {
        foreach (var algorithm in AlgorithmCatalog.All.Where(a => !a.RequiresSparseGradients))
        {
            using var table = torch.nn.Embedding(5, 3, sparse: true);
            using var opt = algorithm.Create(table.parameters());
            table.forward(torch.tensor(new long[] { 1, 2 })).sum().backward();
            var act = () => Algorithms.Step(opt);
            act.Should().Throw<NotSupportedException>(algorithm.Name).WithMessage("*does not support sparse gradients*");
        }
    }

    [Theory]
    [InlineData("lr", 0.0, "Invalid learning rate: 0.0")]
    [InlineData("eps", 0.0, "Invalid epsilon value: 0.0")]
    [InlineData("beta1", 1.0, "Invalid beta parameter at index 0: 1.0")]
    [InlineData("beta2", -0.5, "Invalid beta parameter at index 1: -0.5")]
    public void Invalid_arguments_get_PyTorchs_messages(string argument, double value, string message)
    {
        using var table = torch.nn.Embedding(5, 3, sparse: true);
        var act = () => SparseAdam.Info.Create(table.parameters(), new[] { new KeyValuePair<string, object?>(argument, value) });
        act.Should().Throw<ArgumentException>().WithMessage(message + "*");
    }

    [Fact]
    public void Complex_parameters_are_refused()
    {
        var act = () => new SparseAdam(new[] { new Parameter(torch.zeros(3, ScalarType.ComplexFloat32)) });
        act.Should().Throw<ArgumentException>().WithMessage("SparseAdam does not support complex parameters*");
    }
}
