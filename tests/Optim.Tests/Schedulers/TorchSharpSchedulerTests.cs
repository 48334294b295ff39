// Ported from TorchSharp's own scheduler tests (dotnet/TorchSharp, test/TorchSharpTest/TestTraining.cs, the *LR*
// tests that use a scheduler; MIT license, Copyright (c) .NET Foundation and Contributors), with the factory call
// torch.optim.lr_scheduler.X(...) replaced by new Optim.Schedulers.X(...). The optimizers are TorchSharp's own.
//
// What else changed, and why:
// - TrainLoop (Support/TorchSharpTrainingHarness.cs) takes an Optim.Schedulers.LRScheduler and calls step(loss) only on ReduceLROnPlateau (TorchSharp's base
//   scheduler accepts and ignores a metric on every scheduler; PyTorch's step(epoch) takes none).
// - ExponentialLR gets gamma: 0.1 explicitly: it is TorchSharp's default, PyTorch's requires the argument.
// - Tests whose expected loss encodes a TorchSharp bug keep the test with the correct expectation; each says why.
// - TrainingAdagradLRDecay and TrainingRMSLR match "*LR*" but use no scheduler: not ported.
using System;
using System.Linq;
using Optim.Schedulers;
using TorchSharp;
using static Optim.Tests.Support.TorchSharpTrainingHarness;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Optim.Tests.Schedulers;

[Collection("TorchSharpSchedulerTests")]
public class TorchSharpSchedulerTests
{
    [Fact]
    public void TrainingAdamOneCycleLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.0005;
        var optimizer = torch.optim.Adam(seq.parameters(), lr: lr, amsgrad: true);
        var scheduler = new OneCycleLR(optimizer, lr * 10, total_steps: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(94.69524f, loss);
    }

    [Fact]
    public void TrainingAdamWOneCycleLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.001;
        var optimizer = torch.optim.AdamW(seq.parameters(), lr: lr, amsgrad: true);
        var scheduler = new OneCycleLR(optimizer, lr * 10, total_steps: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(197.873f, loss);
    }

    [Fact]
    public void TrainingAdamaxOneCycleLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.002;
        var optimizer = torch.optim.Adamax(seq.parameters(), lr: lr);
        var scheduler = new OneCycleLR(optimizer, lr * 10, total_steps: 15);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(61.45f, loss);
    }

    [Fact]
    public void TrainingNAdamOneCycleLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.002;
        var optimizer = torch.optim.NAdam(seq.parameters(), lr: lr);
        var scheduler = new OneCycleLR(optimizer, lr * 10, total_steps: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(145.415f, loss);
    }

    [Fact]
    public void TrainingRAdamOneCycleLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.0005;
        var optimizer = torch.optim.RAdam(seq.parameters(), lr: lr);
        var scheduler = new OneCycleLR(optimizer, lr * 1.5, total_steps: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(124.478f, loss);
    }

    [Fact]
    public void TrainingRAdamOneCycleLR_PG()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.0005;
        var optimizer = torch.optim.RAdam(new TorchSharp.Modules.RAdam.ParamGroup[]
        {
            new () { Parameters = lin1.parameters(), Options = new () { LearningRate = 0.003f } },
            new () { Parameters = lin2.parameters(), Options = new () { LearningRate = lr } }
        });
        var scheduler = new OneCycleLR(optimizer, new double[] { lr * 1.5, lr * 2.25 }, total_steps: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        // TorchSharp expects 92.047: its OneCycleLR.get_lr tests `i == _schedule_phases.Length - 1` with the group
        // index i instead of the phase index, so with two groups group 1 never leaves the first phase and its rate
        // keeps rising past max_lr. PyTorch's schedule (tools/golden/torchsharp_lr_tests.py, PyTorch 1.13 with its
        // own RAdam) ends at 155.289; with TorchSharp's RAdam, whose single-group test above already sits 0.25% from
        // PyTorch's (124.478 vs 124.162), the loss is 155.637.
        LossIsClose(155.6366f, loss);
    }

    [Fact]
    public void TrainingRAdamCyclicLR_PG()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.0002;
        var optimizer = torch.optim.SGD(new TorchSharp.Modules.SGD.ParamGroup[]
        {
            new () { Parameters = lin1.parameters(), Options = new () { LearningRate = 0.003f } },
            new () { Parameters = lin2.parameters(), Options = new () { LearningRate = lr } }
        }, lr);
        var scheduler = new CyclicLR(optimizer, new double[] { lr / 2, lr * 2 }, new double[] { lr * 1.5, lr * 2.25 });

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        // TorchSharp expects 58.589: its CyclicLR sets momentum to base_momentum at construction and then moves it
        // up from max_momentum as the rate rises (max + height * scale); PyTorch moves it down (max - height * scale).
        // PyTorch 1.13 on the same weights and data (tools/golden/torchsharp_lr_tests.py): 58.52624.
        LossIsClose(58.52624f, loss);
    }

    [Fact]
    public void TrainingRAdamReduceLROnPlateau_PG()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        var lr = 0.0002;
        var optimizer = torch.optim.SGD(new TorchSharp.Modules.SGD.ParamGroup[]
        {
            new () { Parameters = lin1.parameters(), Options = new () { LearningRate = 0.003f } },
            new () { Parameters = lin2.parameters(), Options = new () { LearningRate = lr } }
        }, lr);

        var scheduler = new ReduceLROnPlateau(optimizer);

        Assert.Throws<InvalidOperationException>(() => scheduler.step());
        Assert.Throws<InvalidOperationException>(() => scheduler.step(epoch: 10));

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false, 500);

        LossIsClose(52.6109f, loss);

        var pgs = optimizer.ParamGroups.ToList();

        Assert.NotEqual(0.0002, pgs[0].LearningRate);
        Assert.NotEqual(0.003,  pgs[1].LearningRate);
    }

    [Fact]
    public void TrainingRMSOneCycleLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.RMSProp(seq.parameters(), learning_rate);
        var scheduler = new OneCycleLR(optimizer, learning_rate * 10, total_steps: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(207.87f, loss);
    }

    [Fact]
    public void TrainingSGDStepLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new StepLR(optimizer, 1, 0.97);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler);

        LossIsClose(67.36136f, loss);
    }

    [Fact]
    public void TrainingSGDLambdaLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new LambdaLR(optimizer, i => Math.Pow(0.95, (1 + i)));

        var loss = TrainLoop(seq, x, y, optimizer, scheduler);

        LossIsClose(73.87f, loss);
    }

    [Fact]
    public void TrainingSGDMultiplicativeLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new MultiplicativeLR(optimizer, i => 0.95);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler);

        LossIsClose(71.1419f, loss);
    }

    [Fact]
    public void TrainingSGDExponentialLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new ExponentialLR(optimizer, gamma: 0.1);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler);

        LossIsClose(180.249f, loss);
    }

    [Fact]
    public void TrainingSGDLinearLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new LinearLR(optimizer, end_factor: 0.75, total_iters: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(101.83f, loss);
    }

    [Fact]
    public void TrainingSGDSequentialLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler0 = new LinearLR(optimizer, end_factor: 0.75, total_iters: 10);
        var scheduler1 = new ConstantLR(optimizer);
        var scheduler = new SequentialLR(optimizer, new LRScheduler[] { scheduler0, scheduler1, new ExponentialLR(optimizer, gamma: 0.1) }, new[] { 10, 15 });

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false, iters: 20);

        LossIsClose(67.5635f, loss);
    }

    [Fact]
    public void TrainingSGDSequentialLRWithAllClosedFormSchedulers()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler0 = new LinearLR(optimizer, end_factor: 0.75, total_iters: 10);
        var scheduler1 = new ConstantLR(optimizer);
        var scheduler2 = new StepLR(optimizer, 2);
        var scheduler3 = new MultiStepLR(optimizer, new[] { 2, 4 });
        var scheduler4 = new ExponentialLR(optimizer, gamma: 0.1);
        var scheduler5 = new PolynomialLR(optimizer, power: 2.0);
        var scheduler6 = new CosineAnnealingLR(optimizer, 5, 0.1);
        var scheduler7 = new LinearLR(optimizer, end_factor: 0.75);
        var scheduler = new SequentialLR(optimizer, new LRScheduler[] { scheduler0, scheduler1, scheduler2, scheduler3, scheduler4, scheduler5, scheduler6, scheduler7}, new[] { 5, 5, 5, 5, 5, 5, 5 });

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false, iters: 35);

        LossIsClose(52.36025f, loss);
    }

    [Fact]
    public void TrainingSGDMultiStepLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new MultiStepLR(optimizer, new int[] { 3, 5, 7 }, 0.97);

        var loss = MSELoss(Reduction.Sum);

        float initialLoss = loss.call(seq.call(x), y).ToSingle();
        float finalLoss = float.MaxValue;

        double lastLR = learning_rate;

        for (int i = 0; i < 10; i++) {
            using var eval = seq.call(x);
            using var output = loss.call(eval, y);
            var lossVal = output.ToSingle();

            finalLoss = lossVal;

            optimizer.zero_grad();

            output.backward();

            optimizer.step();
            scheduler.step();

            var pgFirst = optimizer.ParamGroups.First();
            if (i == 2 || i == 4 || i == 6) {
                Assert.True(pgFirst.LearningRate < lastLR);
            }
            lastLR = pgFirst.LearningRate;
        }

        Assert.True(finalLoss < initialLoss);

        LossIsClose(64.019f, finalLoss);
    }

    [Fact]
    public void TrainingSGDCosineAnnealingLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new CosineAnnealingLR(optimizer, 10);

        var loss = MSELoss(Reduction.Sum);

        float initialLoss = loss.call(seq.call(x), y).ToSingle();
        float finalLoss = float.MaxValue;

        double lastLR = learning_rate;

        for (int i = 0; i < 10; i++) {
            using var eval = seq.call(x);
            using var output = loss.call(eval, y);
            var lossVal = output.ToSingle();

            finalLoss = lossVal;

            optimizer.zero_grad();

            output.backward();

            optimizer.step();
            scheduler.step();

            var pgFirst = optimizer.ParamGroups.First();
            if (i == 2 || i == 4 || i == 6) {
                Assert.True(pgFirst.LearningRate < lastLR);
            }
            lastLR = pgFirst.LearningRate;
        }

        Assert.True(finalLoss < initialLoss);

        LossIsClose(88.98f, finalLoss);
    }

    [Fact]
    public void TrainingSGDCyclicLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new CyclicLR(optimizer, 0.0001, 0.0004, step_size_up: 5);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        // TorchSharp expects 65.459: its CyclicLR cycles momentum the wrong way (up from max_momentum, to 1.0 at the
        // peak, instead of down to base_momentum). PyTorch 1.13 on the same weights and data
        // (tools/golden/torchsharp_lr_tests.py): 70.09167.
        LossIsClose(70.09167f, loss);
    }

    [Fact]
    public void TrainingSGDOneCycleLR()
    {
        var gen = new Generator(4711);
        CreateLinearLayers(gen, out var lin1, out var lin2);
        CreateDataAndLabels(gen, out var x, out var y);

        using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

        double learning_rate = 0.00004f;
        var optimizer = torch.optim.SGD(seq.parameters(), learning_rate);
        var scheduler = new OneCycleLR(optimizer, 0.0004, total_steps: 10);

        var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

        LossIsClose(112.4992f, loss);
    }
}
