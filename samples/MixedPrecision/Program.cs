using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Optim;
using Optim.Amp;
using Optim.Utils;
using TorchSharp;
using static TorchSharp.torch;

// Mixed-precision training on the CPU: a bfloat16 MLP (float16 with --float16) trained with AdamW, a GradScaler and
// gradient clipping, in PyTorch's loop: scale(loss).backward(), unscale_, clip_grad_norm_, step, update. It prints the
// loss, the scale and the skipped steps as training goes, then the scale's history and the validation accuracy.
//
//   dotnet run --project samples/MixedPrecision -c Release [-- --steps 300 --interval 50 --spike-every 100 --float16 --fused
//                                                              --master-weights --lr 0.003]
//
// bfloat16 has float32's range, so its scaled gradients rarely overflow: there the scaler mostly guards against a bad
// batch. Every `--spike-every` steps the batch is corrupted (inputs times 1e36, as from a broken sample), its gradients
// overflow, and the scaler skips that step instead of writing inf into the weights, and halves the scale; after
// `--interval` clean steps the scale doubles again. With --float16 the first steps also overflow by themselves (the
// initial scale 2^16 times the loss exceeds float16's 65504) until the scale has backed off.
// TorchSharp has no autocast: parameters, activations and gradients are all in the low-precision dtype here.
// With --master-weights the optimizer keeps float32 copies of the parameters (optimizer.MasterWeights), updates those and
// rounds them back, so updates below the dtype's precision are not lost; the sample then trains the same model again
// without them and prints both training losses.

var steps = Option("--steps", 300);
var interval = Option("--interval", 50);
var spikeEvery = Option("--spike-every", 100);
var dtype = args.Contains("--float16") ? ScalarType.Float16 : ScalarType.BFloat16;
var implementation = args.Contains("--fused") ? Implementation.Fused : Implementation.Auto;
var masterWeights = args.Contains("--master-weights");
var lr = OptionDouble("--lr", 3e-3);
const int Features = 32, Classes = 4, Batch = 128;

torch.manual_seed(1);
var gen = new Generator(7);
var teacher = torch.randn(new long[] { Features, Classes }, generator: gen);
(Tensor X, Tensor Y) Sample(int n)
{
    var x = torch.randn(new long[] { n, Features }, generator: gen);
    return (x.to(dtype), x.matmul(teacher).argmax(1));
}
var (trainX, trainY) = Sample(8192);
var (validX, validY) = Sample(2048);

var withMaster = Train(masterWeights, verbose: true);
if (masterWeights)
{
    Console.WriteLine();
    Console.WriteLine("The same run without master weights:");
    var without = Train(false, verbose: false);
    Console.WriteLine($"Training loss after {steps} steps: {withMaster:G4} with float32 master weights, {without:G4} without.");
}

// Trains a fresh model (same seed, same batches) and returns its loss on the whole training set.
double Train(bool useMasterWeights, bool verbose)
{
    torch.manual_seed(1);
    // Convert the model before creating the optimizer: Module.to(dtype) replaces the parameters.
    var model = torch.nn.Sequential(
        torch.nn.Linear(Features, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, Classes));
    model.to(dtype);

    // float16 cannot hold Adam's default eps (1e-8) and its squared gradients underflow to 0, so a near-zero denominator
    // blows the weights up; a larger eps keeps the division finite (both runs use it, so they compare).
    using var optimizer = new AdamW(model.named_parameters(), lr: lr, eps: dtype == ScalarType.Float16 ? 1e-4 : 1e-8, weight_decay: 0.01,
        implementation: implementation);
    optimizer.MasterWeights = useMasterWeights;                              // before the first step
    using var scaler = new GradScaler(growth_interval: interval);
    if (verbose) Console.WriteLine($"{dtype} MLP, AdamW{(useMasterWeights ? " with float32 master weights" : "")}, lr {lr} ({(optimizer.StepSupportsAmpScaling ? "fused: found_inf goes to the kernel, which skips on the device" : "unscale, check, step or skip")}), " +
        $"GradScaler(growth_interval={interval}), clip_grad_norm_(max_norm=1), {steps} steps of {Batch}, a corrupted batch every {spikeEvery} steps");
    if (verbose) Console.WriteLine($"{"step",6} {"loss",8} {"grad norm",10} {"scale",10} {"skipped",8}");

    var skipped = 0;
    var history = new List<string> { $"step 0: 2^{Math.Log2(scaler.get_scale()):F0}" };
    for (var step = 1; step <= steps; step++)
    {
        using var scope = torch.NewDisposeScope();
        var start = (step - 1) * Batch % (int)trainX.shape[0];
        var x = trainX.narrow(0, start, Batch);
        var spike = spikeEvery > 0 && step % spikeEvery == 0;
        if (spike) x = x.mul(1e36);
        var y = trainY.narrow(0, start, Batch);

        optimizer.zero_grad();
        var loss = torch.nn.functional.cross_entropy(model.call(x), y);
        scaler.scale(loss).backward();
        scaler.unscale_(optimizer);                                          // clip the true gradients, not the scaled ones
        var norm = ClipGrad.clip_grad_norm_(model.parameters(), max_norm: 1.0);
        var before = scaler.get_scale();
        scaler.step(optimizer);                                              // skipped if a gradient was inf or NaN
        scaler.update();
        var after = scaler.get_scale();
        if (after < before) skipped++;                                       // the scale backs off exactly when a step was skipped
        if (after != before) history.Add($"step {step}: 2^{Math.Log2(after):F0}{(after < before ? " (overflow, step skipped)" : "")}");

        if (verbose && (step % 25 == 0 || step <= 3 || after < before && skipped <= 12))
            Console.WriteLine($"{step,6} {loss.to(ScalarType.Float32).item<float>(),8:G4} {norm.to(ScalarType.Float32).item<float>(),10:G4} {"2^" + Math.Log2(after).ToString("F0", CultureInfo.InvariantCulture),10} {skipped,8}");
    }

    using (torch.no_grad())
    {
        var accuracy = model.call(validX).argmax(1).eq(validY).to(ScalarType.Float32).mean().item<float>();
        var trainLoss = torch.nn.functional.cross_entropy(model.call(trainX).to(ScalarType.Float32), trainY).item<float>();
        Console.WriteLine();
        Console.WriteLine($"Skipped {skipped} of {steps} steps; final scale 2^{Math.Log2(scaler.get_scale()):F0}; training loss {trainLoss:G4}; validation accuracy {accuracy:P1}.");
        if (verbose)
        {
            Console.WriteLine("Scale over time: " + string.Join("; ", history));
            Console.WriteLine("Scaler state for a checkpoint: " + System.Text.Json.JsonSerializer.Serialize(scaler.StateDict()));
        }
        return trainLoss;
    }
}

double OptionDouble(string name, double fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? double.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}

int Option(string name, int fallback)
{
    var at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
}
