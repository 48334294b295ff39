// Trains a small MLP classifier on a synthetic, deterministic dataset with Optim's SGD (momentum + Nesterov),
// a TorchSharp LR scheduler, and a checkpoint at the end. No downloads: the data is generated from a fixed seed.
using System;
using System.Diagnostics;
using System.IO;
using Optim;
using TorchSharp;
using static TorchSharp.torch;

const int Seed = 20261124, Classes = 4, Features = 16, Samples = 2048, Epochs = 20, BatchSize = 128;
torch.manual_seed(Seed);

// Four Gaussian blobs, one per class, in 16 dimensions.
var centers = torch.randn(Classes, Features) * 0.45;
var labels = torch.randint(0, Classes, Samples, dtype: ScalarType.Int64);
var inputs = centers.index(labels) + torch.randn(Samples, Features);

var model = nn.Sequential(
    ("fc1", nn.Linear(Features, 64)), ("relu1", nn.ReLU()),
    ("fc2", nn.Linear(64, 64)), ("relu2", nn.ReLU()),
    ("out", nn.Linear(64, Classes)));
using var optimizer = new SGD(model.named_parameters(), lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 1e-4);
var scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size: 8, gamma: 0.5);
var lossFn = nn.CrossEntropyLoss();

var clock = Stopwatch.StartNew();
for (var epoch = 1; epoch <= Epochs; epoch++)
{
    double totalLoss = 0;
    long correct = 0;
    using var permutation = torch.randperm(Samples);
    for (var start = 0; start < Samples; start += BatchSize)
    {
        using var scope = NewDisposeScope();
        var idx = permutation.narrow(0, start, Math.Min(BatchSize, Samples - start));
        var x = inputs.index(idx);
        var y = labels.index(idx);
        optimizer.zero_grad();
        var logits = model.call(x);
        var loss = lossFn.call(logits, y);
        loss.backward();
        optimizer.step();
        totalLoss += loss.item<float>() * idx.shape[0];
        correct += logits.argmax(1).eq(y).sum().item<long>();
    }
    scheduler.step();
    Console.WriteLine($"epoch {epoch,2}  lr {optimizer.ParamGroups[0].LearningRate:0.#####}  loss {totalLoss / Samples:0.0000}  accuracy {100.0 * correct / Samples:0.0}%");
}

var checkpoint = Path.Combine(Path.GetTempPath(), "optim-train-classifier.ckpt");
optimizer.Save(checkpoint);
Console.WriteLine($"trained in {clock.Elapsed.TotalSeconds:0.0} s; optimizer checkpoint: {checkpoint} ({new FileInfo(checkpoint).Length} bytes)");
