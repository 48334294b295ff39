using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json;
using Optim.Formats.PyTorch;
using Optim.Schedulers;
using Optim.Tests.Support;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// PyTorch's checkpoints in and out: files <c>torch.save(optimizer.state_dict())</c> wrote (Fixtures/PyTorch, from
/// tools/golden/pytorch_checkpoints.py and PyTorch 1.13) resume on PyTorch's trajectory, and PyTorch resumes ours.
/// </summary>
public class PyTorchCheckpointTests(ITestOutputHelper output)
{
    // Measured: every algorithm continues float64 checkpoints bit for bit, except Adam, which 1.13 runs with
    // mul_().add_() where 2.x (and Optim) runs lerp_ (7e-18 apart after 3 steps), and Adafactor, whose transcription
    // reduces its norms in another order than libtorch 2.10 (1.4e-17): those two within the fp64 golden tolerance.
    private static bool Bitwise(string algorithm) => algorithm is not ("Adam" or "Adafactor");

    private static readonly double Atol = Tolerances.Atol(ScalarType.Float64), Rtol = Tolerances.Rtol(ScalarType.Float64);

    [Fact]
    public void Every_algorithm_has_a_PyTorch_fixture()
    {
        PyTorchFixtures.All.Select(c => c.Algorithm).Should().BeEquivalentTo(AlgorithmCatalog.All.Select(a => a.Name));
    }

    [Theory]
    [MemberData(nameof(PyTorchFixtures.Names), MemberType = typeof(PyTorchFixtures))]
    public void A_PyTorch_checkpoint_resumes_on_PyTorchs_trajectory(string name)
    {
        var c = PyTorchFixtures.Get(name);
        var ps = c.Parameters();
        using var optimizer = AlgorithmCatalog.Get(c.Algorithm).Create(ps);
        optimizer.LoadPyTorch(c.Path);
        var trajectory = c.Continue(optimizer, ps);
        if (Bitwise(c.Algorithm)) Trajectories.ShouldBeBitwise(trajectory, c.Trajectory, c.Reference);
        else output.WriteLine($"{name}: worst |difference| {Trajectories.ShouldBeClose(trajectory, c.Trajectory, Atol, Rtol, c.Reference):E2}");
    }

    [Fact]
    public void A_checkpoint_takes_PyTorchs_hyperparameters_and_old_plain_number_steps()
    {
        var c = PyTorchFixtures.Get("rmsprop"); // PyTorch 1.13 saved RMSprop's step as a plain int
        var ps = c.Parameters();
        using var optimizer = new RMSprop(ps);
        optimizer.LoadPyTorch(c.Path);
        var group = optimizer.ParamGroups[0].Options;
        group.Lr.Should().Be(0.01);
        group.Momentum.Should().Be(0.5);
        group.Centered.Should().BeTrue();
        group.Implementation.Should().Be(Implementation.Auto, "foreach None is PyTorch's default choice");
        var step = optimizer.State[ps[0]]["step"];
        step.dtype.Should().Be(ScalarType.Float32);
        step.item<float>().Should().Be(3);

        var adam = PyTorchFixtures.Get("adam");
        var aps = adam.Parameters();
        using var a = new Adam(aps);
        a.LoadPyTorch(adam.Path);
        a.ParamGroups[0].Options.Should().Match<AdamOptions>(o => o.Beta1 == 0.8 && o.Beta2 == 0.99 && o.Amsgrad && o.WeightDecay == 0.1);
    }

    [Fact]
    public void Muons_and_SparseAdams_options_load_from_PyTorchs_names_and_save_back_to_them()
    {
        var muon = PyTorchFixtures.Get("muon");
        var mps = muon.Parameters();
        using var m = new Muon(mps);
        m.LoadPyTorch(muon.Path);
        var mo = m.ParamGroups[0].Options;
        mo.NsCoefficients.Should().Equal(3.0, -3.2, 1.2);
        mo.AdjustLrFn.Should().Be(MuonOptions.MatchRmsAdamW);
        mo.NsSteps.Should().Be(0);
        var group = Group(m);
        group.TryGetValue("ns_coefficients", out var coefficients).Should().BeTrue();
        coefficients.Should().BeOfType<Formats.PyTorch.PyTuple>().Which.Items.Should().Equal(3.0, -3.2, 1.2);
        group.ContainsKey("capturable").Should().BeFalse("PyTorch's Muon has no such flag");
        m.ParamGroups[0].Options = mo with { AdjustLrFn = null };
        Group(m).TryGetValue("adjust_lr_fn", out var fn).Should().BeTrue();
        fn.Should().BeNull();

        var sparse = PyTorchFixtures.Get("sparseadam");
        var sps = sparse.Parameters();
        using var s = new SparseAdam(sps);
        s.LoadPyTorch(sparse.Path);
        s.ParamGroups[0].Options.Should().Match<SparseAdamOptions>(o => o.Beta1 == 0.8 && o.Beta2 == 0.99 && o.Eps == 1e-6 && o.Maximize);
        var root = (Formats.PyTorch.PyDict)Formats.PyTorch.OptimizerLayout.ToPyTorch(s.StateDict());
        root.TryGetValue("state", out var state).Should().BeTrue();
        ((Formats.PyTorch.PyDict)state!).TryGetValue(0L, out var first).Should().BeTrue();
        ((Formats.PyTorch.PyDict)first!).TryGetValue("step", out var step).Should().BeTrue();
        step.Should().Be(3L, "PyTorch's SparseAdam counts in a Python int");
        Group(s).TryGetValue("betas", out var betas).Should().BeTrue();
        ((Formats.PyTorch.PyTuple)betas!).Items.Should().Equal(0.8, 0.99);

        static Formats.PyTorch.PyDict Group(Optimizer o)
        {
            var root = (Formats.PyTorch.PyDict)Formats.PyTorch.OptimizerLayout.ToPyTorch(o.StateDict());
            root.TryGetValue("param_groups", out var groups).Should().BeTrue();
            return (Formats.PyTorch.PyDict)((List<object?>)groups!)[0]!;
        }
    }

    // PyTorch 2.x writes param_names in each group of an optimizer built from named parameters; a load takes them
    // (positions, not names, match parameters, as in PyTorch).
    [Fact]
    public void Parameter_names_travel_as_PyTorchs_param_names()
    {
        var ps = new[] { new Parameter(ones(3)), new Parameter(ones(2, 2)) };
        using var named = new Adam(new[] { ("encoder.weight", ps[0]), ("head.bias", ps[1]) }, lr: 0.1);
        foreach (var p in ps) p.grad = ones_like(p);
        named.step();
        var file = Path.Combine(Path.GetTempPath(), $"optim-names-{Guid.NewGuid():N}.pt");
        try
        {
            named.SavePyTorch(file);
            var copies = ps.Select(p => new Parameter(p.detach().clone())).ToArray();
            using var other = new Adam(new[] { ("a", copies[0]), ("b", copies[1]) }, lr: 0.1);
            other.LoadPyTorch(file);
            other.ParamGroups[0].ParamNames.Should().Equal("encoder.weight", "head.bias");
            other.StateDict().ParamGroups[0].ParamNames.Should().Equal("encoder.weight", "head.bias");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void A_learning_rate_and_betas_saved_as_tensors_load_as_their_values()
    {
        // PyTorch 2.x accepts lr=torch.tensor(0.01) and tensor betas; the state dict then holds the tensors.
        var c = PyTorchFixtures.Get("adam");
        var ps = c.Parameters();
        using var adam = new Adam(ps);
        adam.LoadPyTorch(c.Path);
        var root = (Formats.PyTorch.PyDict)Formats.PyTorch.OptimizerLayout.ToPyTorch(adam.StateDict());
        root.TryGetValue("param_groups", out var groups).Should().BeTrue();
        var group = (Formats.PyTorch.PyDict)((List<object?>)groups!)[0]!;
        group.Set("lr", tensor(0.25, ScalarType.Float64));
        group.Set("betas", Formats.PyTorch.PyTuple.Of(tensor(0.5, ScalarType.Float64), 0.75));
        using var file = new MemoryStream();
        Formats.PyTorch.TorchArchive.Write(file, root);
        file.Position = 0;
        adam.LoadPyTorch(file);
        adam.ParamGroups[0].Options.Should().Match<AdamOptions>(o => o.Lr == 0.25 && o.Beta1 == 0.5 && o.Beta2 == 0.75);
    }

    [Fact]
    public void A_checkpoint_of_another_algorithm_or_layout_is_refused_and_changes_nothing()
    {
        var sgd = PyTorchFixtures.Get("sgd");
        var ps = sgd.Parameters();
        using var adam = new Adam(ps, lr: 0.5);
        Algorithms.Step(StepOnce(adam, ps));
        var before = StateSnapshot.Of(adam, ps);
        adam.Invoking(o => o.LoadPyTorch(sgd.Path)).Should().Throw<ArgumentException>().WithMessage("*'momentum'*Adam*another algorithm*");
        // PyTorch 2.x's groups say decoupled_weight_decay (1.13's AdamW groups look like Adam's, as PyTorch itself allows).
        using var adamW = new AdamW(ps);
        using var adamWFile = new MemoryStream();
        adamW.SavePyTorch(adamWFile);
        adamWFile.Position = 0;
        adam.Invoking(o => o.LoadPyTorch(adamWFile)).Should().Throw<ArgumentException>().WithMessage("*decoupled_weight_decay=True*AdamW*");
        StateSnapshot.Of(adam, ps).Should().Equal(before);

        // Same algorithm, parameters of other shapes.
        var other = new List<Parameter> { new(zeros(4, ScalarType.Float64)), new(zeros(3, 4, ScalarType.Float64)) };
        using var wrongShape = new SGD(other, lr: 0.1, momentum: 0.9);
        var wrongBefore = StateSnapshot.Of(wrongShape, other);
        wrongShape.Invoking(o => o.LoadPyTorch(sgd.Path)).Should().Throw<ArgumentException>().WithMessage("*shape*");
        StateSnapshot.Of(wrongShape, other).Should().Equal(wrongBefore);

        // Another parameter count.
        using var fewer = new SGD(ps.Take(1), lr: 0.1, momentum: 0.9);
        fewer.Invoking(o => o.LoadPyTorch(sgd.Path)).Should().Throw<ArgumentException>().WithMessage("*size*");
    }

    private static Optimizer StepOnce(Optimizer optimizer, IReadOnlyList<Parameter> ps)
    {
        foreach (var p in ps) p.grad = ones_like(p);
        return optimizer;
    }

    public static TheoryData<string, Implementation> AlgorithmsAndPaths() => Algorithms.AlgorithmsAndPaths();

    [Theory]
    [MemberData(nameof(AlgorithmsAndPaths))]
    public void Saving_and_loading_round_trips_every_algorithm_bit_for_bit(string name, Implementation implementation)
    {
        var algorithm = AlgorithmCatalog.Get(name);
        var ps = new List<Parameter> { new(randn(Algorithms.Shape(algorithm, 5))), new(randn(Algorithms.Shape(algorithm, 3, 4))) };
        using var original = Algorithms.Create(algorithm, ps, implementation);
        for (var s = 0; s < 3; s++)
        {
            foreach (var p in ps) p.grad = Algorithms.Gradient(algorithm, randn_like(p));
            Algorithms.Step(original);
        }
        using var file = new MemoryStream();
        original.SavePyTorch(file);
        file.Position = 0;
        var copies = ps.Select(p => new Parameter(p.detach().clone())).ToList();
        using var loaded = algorithm.Create(copies);
        loaded.LoadPyTorch(file);
        StateSnapshot.Of(loaded, copies).Should().Equal(StateSnapshot.Of(original, ps));
    }

    [PythonTorchFact]
    public void PyTorch_resumes_checkpoints_written_here()
    {
        var dir = Directory.CreateTempSubdirectory("optim-pytorch-");
        try
        {
            var expected = new Dictionary<string, List<double[][]>>();
            var cases = new List<object>();
            foreach (var c in PyTorchFixtures.All)
            {
                // Ours: PyTorch's checkpoint loaded, then written by SavePyTorch; the .NET run continues from it.
                var ps = c.Parameters();
                using var optimizer = AlgorithmCatalog.Get(c.Algorithm).Create(ps);
                optimizer.LoadPyTorch(c.Path);
                var file = Path.Combine(dir.FullName, c.File);
                optimizer.SavePyTorch(file);
                expected[c.Name] = c.Continue(optimizer, ps);
                cases.Add(new { @case = c.Name, algorithm = c.Algorithm, file, shapes = c.Shapes, @params = c.Params, grads = c.Grads, targets = c.Targets, weights = c.Weights });
            }
            // A training checkpoint: Python's, loaded here, written by PyTorchTrainingCheckpoint, continued on both sides.
            using var model = PyTorchSchedulerCheckpointTests.Model();
            using var adam = new Adam(model.parameters());
            var stepLR = new StepLR(adam, step_size: 2, gamma: 0.5);
            var training = PyTorchSchedulerCheckpointTests.Training;
            PyTorchTrainingCheckpoint.Load(Path.Combine(PyTorchFixtures.Folder, training.GetProperty("file").GetString()!), model, adam, stepLR);
            var trainingFile = Path.Combine(dir.FullName, "training.pt");
            PyTorchTrainingCheckpoint.Save(trainingFile, model, adam, stepLR, extra: new Dictionary<string, object?> { ["epoch"] = 3 });
            PyTorchSchedulerCheckpointTests.ContinueTraining(model, adam, stepLR);

            var result = Path.Combine(dir.FullName, "result.json");
            var manifest = Path.Combine(dir.FullName, "manifest.json");
            File.WriteAllText(manifest, JsonSerializer.Serialize(new
            {
                result,
                cases,
                training = new { file = trainingFile, x = training.GetProperty("x"), y = training.GetProperty("y"), steps = training.GetProperty("steps") },
            }));
            var run = Process.Start(new ProcessStartInfo(PyTorchFixtures.PythonPath, [PyTorchFixtures.Script()!, "resume", manifest])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            })!;
            var stderr = run.StandardError.ReadToEnd();
            run.WaitForExit(300_000).Should().BeTrue();
            run.ExitCode.Should().Be(0, stderr);

            using var doc = JsonDocument.Parse(File.ReadAllText(result));
            var trajectories = doc.RootElement.GetProperty("trajectories");
            foreach (var c in PyTorchFixtures.All)
            {
                var theirs = trajectories.GetProperty(c.Name).EnumerateArray().Select(PyTorchFixtures.Matrix).ToList();
                if (Bitwise(c.Algorithm)) Trajectories.ShouldBeBitwise(expected[c.Name], theirs, c.Name);
                else output.WriteLine($"{c.Name}: worst |difference| {Trajectories.ShouldBeClose(expected[c.Name], theirs, Atol, Rtol, c.Name):E2}");
            }
            PyTorchSchedulerCheckpointTests.WeightsShouldBeClose(model, doc.RootElement.GetProperty("training"));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}

/// <summary>Saving and loading PyTorch checkpoints frees everything it makes (see <see cref="LeakTests"/>).</summary>
[Collection(nameof(LeakTests))]
public class PyTorchCheckpointLeakTests
{
    [Theory]
    [MemberData(nameof(Algorithms.NameData), MemberType = typeof(Algorithms))]
    public void Saving_and_loading_keeps_the_native_tensor_count_flat(string name)
    {
        var algorithm = Algorithms.Get(name);
        var ps = new List<Parameter> { new(randn(Algorithms.Shape(algorithm, 10))), new(randn(Algorithms.Shape(algorithm, 3, 3))) };
        using var optimizer = Algorithms.Create(algorithm, ps, Implementation.Auto);
        for (var s = 0; s < 3; s++)
        {
            foreach (var p in ps) p.grad = Algorithms.Gradient(algorithm, randn_like(p)).DetachFromDisposeScope();
            Algorithms.Step(optimizer);
        }
        void RoundTrip()
        {
            using var file = new MemoryStream();
            optimizer.SavePyTorch(file);
            file.Position = 0;
            optimizer.LoadPyTorch(file);
        }
        RoundTrip();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var before = Tensor.TotalCount;
        for (var i = 0; i < 20; i++) RoundTrip();
        (Tensor.TotalCount - before).Should().Be(0);
    }
}
