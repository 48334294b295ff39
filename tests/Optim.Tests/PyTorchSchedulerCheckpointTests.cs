using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using Optim.Amp;
using Optim.Formats.PyTorch;
using Optim.Schedulers;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// Schedulers', the gradient scaler's and whole training runs' PyTorch checkpoints (Fixtures/PyTorch, written by
/// PyTorch 1.13 through tools/golden/pytorch_checkpoints.py): they resume where PyTorch's resume goes, and round-trip.
/// </summary>
public class PyTorchSchedulerCheckpointTests
{
    private static readonly JsonElement Doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(PyTorchFixtures.Folder, "pytorch_checkpoints.json"))).RootElement;

    private static SGD TwoGroups() => new(new[]
    {
        new ParamGroupSpec<SGDOptions>(new[] { new Parameter(zeros(2)) }),
        new ParamGroupSpec<SGDOptions>(new[] { new Parameter(zeros(3)) }, o => o with { Lr = 0.05 }),
    }, lr: 0.1);

    // The generator's schedulers, built the same way.
    private static LRScheduler Create(string name, SGD optimizer) => name switch
    {
        "steplr" => new StepLR(optimizer, step_size: 2, gamma: 0.5),
        "multisteplr" => new MultiStepLR(optimizer, new[] { 2, 4, 4 }, gamma: 0.5),
        "cosineannealinglr" => new CosineAnnealingLR(optimizer, T_max: 10, eta_min: 0.001),
        "sequentiallr" => new SequentialLR(optimizer,
            new LRScheduler[] { new LinearLR(optimizer, start_factor: 0.5, total_iters: 2), new ExponentialLR(optimizer, gamma: 0.9) }, new[] { 2 }),
        _ => throw new ArgumentException(name),
    };

    public static TheoryData<string> Schedulers() => new(Doc.GetProperty("schedulers").EnumerateArray().Select(s => s.GetProperty("case").GetString()!));

    [Theory]
    [MemberData(nameof(Schedulers))]
    public void A_PyTorch_scheduler_checkpoint_resumes_on_PyTorchs_rates(string name)
    {
        var fixture = Doc.GetProperty("schedulers").EnumerateArray().Single(s => s.GetProperty("case").GetString() == name);
        using var optimizer = TwoGroups();
        var scheduler = Create(name, optimizer);
        var lrs = fixture.GetProperty("lrs").EnumerateArray().Select(e => e.GetDouble()).ToList();
        for (var g = 0; g < lrs.Count; g++) optimizer.ParamGroups[g].LearningRate = lrs[g];
        scheduler.LoadPyTorch(Path.Combine(PyTorchFixtures.Folder, fixture.GetProperty("file").GetString()!));
        foreach (var expected in fixture.GetProperty("rates").EnumerateArray())
        {
            optimizer.step();
            scheduler.step();
            optimizer.ParamGroups.Select(g => g.LearningRate).Should().Equal(expected.EnumerateArray().Select(e => e.GetDouble()),
                (a, e) => Math.Abs(a - e) <= 1e-12 * Math.Abs(e), "the rates are computed in double as Python does (the schedulers' goldens: 1e-12)");
        }

        // And ours round-trips: saved, loaded into a fresh scheduler, the same state dict.
        using var file = new MemoryStream();
        scheduler.SavePyTorch(file);
        file.Position = 0;
        using var other = TwoGroups();
        var copy = Create(name, other);
        copy.LoadPyTorch(file);
        copy.StateDict().ToString().Should().Be(scheduler.StateDict().ToString());
    }

    [Fact]
    public void A_scheduler_checkpoint_of_another_class_is_refused_and_changes_nothing()
    {
        using var optimizer = TwoGroups();
        var scheduler = new CosineAnnealingLR(optimizer, T_max: 10);
        var before = scheduler.StateDict().ToString();
        scheduler.Invoking(s => s.LoadPyTorch(Path.Combine(PyTorchFixtures.Folder, "steplr.pt"))).Should().Throw<ArgumentException>();
        scheduler.StateDict().ToString().Should().Be(before);
    }

    [Fact]
    public void A_PyTorch_scaler_checkpoint_loads_and_round_trips()
    {
        using var scaler = new GradScaler();
        scaler.LoadPyTorch(Path.Combine(PyTorchFixtures.Folder, "scaler.pt"));
        scaler.StateDict().Should().Be(new GradScalerState(1024.0, 2.0, 0.5, 100, 7));

        using var file = new MemoryStream();
        scaler.SavePyTorch(file);
        file.Position = 0;
        using var copy = new GradScaler();
        copy.LoadPyTorch(file);
        copy.StateDict().Should().Be(scaler.StateDict());

        // A disabled scaler's empty dict does not load into an enabled one.
        using var disabled = new GradScaler(enabled: false);
        using var empty = new MemoryStream();
        disabled.SavePyTorch(empty);
        empty.Position = 0;
        copy.Invoking(s => s.LoadPyTorch(empty)).Should().Throw<ArgumentException>().WithMessage("*empty*");
        copy.StateDict().Should().Be(scaler.StateDict());
    }

    /// <summary>The generator's model: its names are PyTorch's ("0.weight", ...), its initial weights don't matter.</summary>
    internal static Sequential Model() => nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(ScalarType.Float64);

    internal static JsonElement Training => Doc.GetProperty("training");

    /// <summary>The generator's iterations after the checkpoint: MSE on its fixed batch, step, scheduler step.</summary>
    internal static void ContinueTraining(Sequential model, Optimizer optimizer, LRScheduler scheduler)
    {
        using var x = tensor(Training.GetProperty("x").EnumerateArray().Select(e => e.GetDouble()).ToArray(), ScalarType.Float64).reshape(8, 3);
        using var y = tensor(Training.GetProperty("y").EnumerateArray().Select(e => e.GetDouble()).ToArray(), ScalarType.Float64).reshape(8, 2);
        for (var i = 0; i < Training.GetProperty("steps").GetInt32(); i++)
        {
            optimizer.zero_grad();
            using var loss = nn.functional.mse_loss(model.call(x), y);
            loss.backward();
            optimizer.step();
            scheduler.step();
        }
    }

    /// <summary>
    /// The model's weights equal <paramref name="expected"/> (name → values) within the fp64 golden tolerance: Adam in
    /// 1.13 runs mul_().add_() where 2.x (and Optim) runs lerp_, and autograd's kernels changed by ulps since 1.13.
    /// </summary>
    internal static void WeightsShouldBeClose(Sequential model, JsonElement expected)
    {
        var (atol, rtol) = (Tolerances.Atol(ScalarType.Float64), Tolerances.Rtol(ScalarType.Float64));
        foreach (var (name, weight) in model.state_dict())
        {
            var want = expected.GetProperty(name).EnumerateArray().Select(e => e.GetDouble()).ToArray();
            weight.reshape(-1).data<double>().ToArray().Should().Equal(want, (a, e) => Math.Abs(a - e) <= atol + rtol * Math.Abs(e), name);
        }
    }

    [Fact]
    public void A_Python_training_checkpoint_resumes_on_Pythons_run()
    {
        using var model = Model();
        using var optimizer = new Adam(model.parameters(), lr: 0.5);
        var scheduler = new StepLR(optimizer, step_size: 2, gamma: 0.5);
        using var scaler = new GradScaler();

        var extra = PyTorchTrainingCheckpoint.Load(Path.Combine(PyTorchFixtures.Folder, Training.GetProperty("file").GetString()!), model, optimizer, scheduler, scaler);

        extra.Should().BeEquivalentTo(new Dictionary<string, object?> { ["epoch"] = 3L });
        scaler.StateDict().Should().Be(new GradScalerState(1024.0, 2.0, 0.5, 100, 7));
        ContinueTraining(model, optimizer, scheduler);
        WeightsShouldBeClose(model, Training.GetProperty("weights"));
    }

    [Fact]
    public void A_training_checkpoint_that_does_not_fit_changes_nothing_and_ours_round_trips()
    {
        var path = Path.Combine(PyTorchFixtures.Folder, "training.pt");
        using var wrongModel = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).to(ScalarType.Float64);
        using var optimizer = new Adam(wrongModel.parameters(), lr: 0.5);
        var scheduler = new StepLR(optimizer, step_size: 2, gamma: 0.5);
        var ps = wrongModel.parameters().ToList();
        var before = StateSnapshot.Of(optimizer, ps);
        var schedulerBefore = scheduler.StateDict().ToString();
        FluentActions.Invoking(() => PyTorchTrainingCheckpoint.Load(path, wrongModel, optimizer, scheduler)).Should().Throw<ArgumentException>().WithMessage("*0.weight*");
        StateSnapshot.Of(optimizer, ps).Should().Equal(before);
        scheduler.StateDict().ToString().Should().Be(schedulerBefore);

        // A damaged file changes nothing either, the model included.
        using var rightModel = Model();
        using var rightAdam = new Adam(rightModel.parameters());
        var weightsBefore = StateSnapshot.Of(rightAdam, rightModel.parameters().ToList());
        var bytes = File.ReadAllBytes(path);
        foreach (var n in new[] { 0, 100, bytes.Length / 2, bytes.Length - 1 })
        {
            FluentActions.Invoking(() => PyTorchTrainingCheckpoint.Load(new MemoryStream(bytes, 0, n), rightModel, rightAdam))
                .Should().Throw<InvalidDataException>($"the file cut at {n} bytes");
        }
        StateSnapshot.Of(rightAdam, rightModel.parameters().ToList()).Should().Equal(weightsBefore);

        // Ours: the fixture loaded, saved, loaded again gives the same model, optimizer, scheduler and scaler.
        using var model = Model();
        using var adam = new Adam(model.parameters());
        var stepLR = new StepLR(adam, step_size: 2, gamma: 0.5);
        using var scaler = new GradScaler();
        PyTorchTrainingCheckpoint.Load(path, model, adam, stepLR, scaler);
        using var file = new MemoryStream();
        PyTorchTrainingCheckpoint.Save(file, model, adam, stepLR, scaler, new Dictionary<string, object?> { ["epoch"] = 3, ["note"] = "resumed" });
        file.Position = 0;
        using var model2 = Model();
        using var adam2 = new Adam(model2.parameters());
        var stepLR2 = new StepLR(adam2, step_size: 2, gamma: 0.5);
        using var scaler2 = new GradScaler();
        PyTorchTrainingCheckpoint.Load(file, model2, adam2, stepLR2, scaler2).Should().BeEquivalentTo(new Dictionary<string, object?> { ["epoch"] = 3L, ["note"] = "resumed" });
        StateSnapshot.Of(adam2, model2.parameters().ToList()).Should().Equal(StateSnapshot.Of(adam, model.parameters().ToList()));
        stepLR2.StateDict().ToString().Should().Be(stepLR.StateDict().ToString());
        scaler2.StateDict().Should().Be(scaler.StateDict());
    }
}
