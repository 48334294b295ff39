using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using CustomOptimizer;
using Optim;
using Optim.Formats;
using Optim.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

// Lion (Lion.cs), written outside the library on its public API, trained like any built-in optimizer: a small MLP
// learns a random linear teacher's classes under a cosine schedule, a step hook counts the steps, and the run checks
// that Lion's for-loop and foreach paths give the same weights bit for bit and that a run interrupted at a training
// checkpoint and resumed in a fresh model, optimizer and scheduler ends with the uninterrupted run's weights.
//
//   dotnet run --project samples/CustomOptimizer -c Release [-- --steps 200]

var steps = args.Length == 2 && args[0] == "--steps" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200;
const int Features = 16, Classes = 4, Batch = 64;

var gen = new Generator(3);
var teacher = torch.randn(new long[] { Features, Classes }, generator: gen);
var inputs = torch.randn(new long[] { 4096, Features }, generator: gen);
var labels = inputs.matmul(teacher).argmax(1);

var forLoop = Train(Implementation.ForLoop, steps, verbose: true);
var foreachRun = Train(Implementation.Foreach, steps, verbose: false);
Console.WriteLine($"for-loop and foreach paths: {(Identical(forLoop, foreachRun) ? "bit-identical weights" : "DIFFERENT weights")}");

var checkpoint = Path.Combine(Path.GetTempPath(), $"lion-{Environment.ProcessId}.ckpt");
try
{
    Train(Implementation.ForLoop, steps, verbose: false, saveAt: steps / 2, checkpoint: checkpoint);
    var resumed = Train(Implementation.ForLoop, steps, verbose: false, checkpoint: checkpoint, resume: true);
    Console.WriteLine($"interrupted at step {steps / 2} and resumed: {(Identical(forLoop, resumed) ? "bit-identical to the uninterrupted run" : "DIFFERENT from the uninterrupted run")}");
}
finally
{
    File.Delete(checkpoint);
}

// Trains a fresh model; returns its weights. With saveAt, writes a training checkpoint after that step and stops; with
// resume, continues from the checkpoint.
List<Tensor> Train(Implementation implementation, int totalSteps, bool verbose, int? saveAt = null, string? checkpoint = null, bool resume = false)
{
    torch.manual_seed(1);
    var model = torch.nn.Sequential(torch.nn.Linear(Features, 32), torch.nn.ReLU(), torch.nn.Linear(32, Classes));
    using var optimizer = new Lion(model.named_parameters(), lr: 3e-3, weight_decay: 0.1, implementation: implementation);
    var scheduler = new CosineAnnealingLR(optimizer, T_max: totalSteps);
    var counted = 0;
    using var counter = optimizer.RegisterStepPostHook((_, _) => counted++);

    var start = resume ? (int)(long)TrainingCheckpoint.Load(checkpoint!, model, optimizer, [scheduler])["step"] : 0;
    for (var step = start + 1; step <= totalSteps; step++)
    {
        using var scope = torch.NewDisposeScope();
        var rows = torch.arange((step - 1) * Batch, step * Batch) % inputs.shape[0];
        optimizer.zero_grad();
        var loss = torch.nn.functional.cross_entropy(model.call(inputs[rows]), labels[rows]);
        loss.backward();
        optimizer.step();
        scheduler.step();
        if (verbose && (step % 50 == 0 || step == 1))
            Console.WriteLine($"step {step,4}  loss {loss.item<float>():F4}  lr {optimizer.ParamGroups[0].LearningRate:G4}");
        if (step == saveAt)
        {
            TrainingCheckpoint.Save(checkpoint!, model, optimizer, [scheduler], extra: new Dictionary<string, object> { ["step"] = (long)step });
            break;
        }
    }
    if (verbose)
    {
        using var _ = torch.no_grad();
        var accuracy = model.call(inputs).argmax(1).eq(labels).to(ScalarType.Float32).mean().item<float>();
        Console.WriteLine($"Lion: {counted} steps (counted by a step post-hook), training accuracy {accuracy:P1}");
    }
    return model.parameters().Select(p => p.detach().clone()).ToList();
}

static bool Identical(List<Tensor> a, List<Tensor> b) => a.Count == b.Count && a.Zip(b).All(x => x.First.eq(x.Second).all().item<bool>());
