// TorchSharp's own training-test harness (dotnet/TorchSharp test/TorchSharpTest/TestTraining.cs; MIT license, Copyright
// (c) .NET Foundation and Contributors), kept as written, once: the ported optimizer and scheduler tests all use it.
// Changes: LossIsClose is static; the third TrainLoop takes Optim's schedulers and passes the loss to step only for
// ReduceLROnPlateau (TorchSharp's base scheduler accepts and ignores a metric everywhere; PyTorch's step takes none).
using System;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Optim.Tests.Support;

internal static class TorchSharpTrainingHarness
{
    internal static void CreateDataAndLabels(Generator gen, out Tensor data, out Tensor labels, int batchSize = 64, int inputSize = 1000, int categories = 10)
    {
        data = torch.rand(new long[] { 64, inputSize }, generator: gen);
        labels = torch.rand(new long[] { 64, categories }, generator: gen);
    }

    internal static void CreateLinearLayers(Generator gen, out Linear linear1, out Linear linear2, int inputSize = 1000, int categories = 10, int hiddenSize = 100)
    {
        linear1 = Linear(inputSize, hiddenSize);
        linear2 = Linear(hiddenSize, categories);

        ReInitializeLinear(gen, linear1);
        ReInitializeLinear(gen, linear2);
    }

    private static void ReInitializeLinear(Generator gen, Linear linear)
    {
        // The Linear module will have been created with some RNG that we don't have control over, specifically
        // the default RNG, which does not work well in a parallel environment (which the unit test framework is).
        //
        // Therefore, we need to set the initial parameters based on the generator we do have control over
        // and which is unique to the unit test.

        var w = rand(linear.weight!.shape, generator: gen);
        var wBound = 1 / Math.Sqrt(w.shape[1]);

        linear.weight = Parameter(w * (2 * wBound) - wBound);

        if (linear.bias is not null) {
            var (fanIn, _) = init.CalculateFanInAndFanOut(linear.weight);
            var bBound = (fanIn > 0) ? 1 / Math.Sqrt(fanIn) : 0;
            var b = rand(linear.bias.shape, generator: gen);
            linear.bias = Parameter(b * (2 * bBound) - bBound);
        }
    }


    /// <summary>
    /// Used to test optimizers created with 'maximize: true'
    /// </summary>
    private sealed class NegateLoss : Loss<Tensor, Tensor, Tensor>
    {
        internal NegateLoss(Loss<Tensor, Tensor, Tensor> base_loss)
        {
            this.base_loss = base_loss;
        }

        public override Tensor forward(Tensor input1, Tensor input2)
        {
            return base_loss.call(input1, input2).neg();
        }

        private Loss<Tensor, Tensor, Tensor> base_loss;
    }

    internal static float TrainLoop(IModule<Tensor, Tensor> seq, Tensor x, Tensor y, optim.Optimizer optimizer, bool maximize = false)
    {
        Loss<Tensor, Tensor, Tensor> loss = MSELoss(Reduction.Sum);
        if (maximize) loss = new NegateLoss(loss);

        float initialLoss = loss.call(seq.call(x), y).ToSingle();
        float finalLoss = float.MaxValue;

        for (int i = 0; i < 10; i++) {
            using var eval = seq.call(x);
            using var output = loss.call(eval, y);
            var lossVal = output.ToSingle();

            finalLoss = lossVal;

            optimizer.zero_grad();

            output.backward();

            optimizer.step();
        }

        // After 10 iterations, the final criterion value should always be better than the initial value.
        if (maximize) {
            Assert.True(finalLoss > initialLoss);
        } else {
            Assert.True(finalLoss < initialLoss);
        }

        return finalLoss;
    }

    internal static float TrainLoop(IModule<Tensor, Tensor> seq, Tensor x, Tensor y, optim.Optimizer optimizer, optim.lr_scheduler.LRScheduler scheduler, bool check_lr = true, int iters = 10, bool maximize = false)
    {
        Loss<Tensor, Tensor, Tensor> loss = MSELoss(Reduction.Sum);
        if (maximize) loss = new NegateLoss(loss);

        float initialLoss = loss.call(seq.call(x), y).ToSingle();
        float finalLoss = float.MaxValue;

        var pgFirst = optimizer.ParamGroups.First();
        var lastLR = pgFirst.LearningRate;

        for (int i = 0; i < iters; i++) {
            using var eval = seq.call(x);
            using var output = loss.call(eval, y);
            var lossVal = output.ToSingle();

            finalLoss = lossVal;

            optimizer.zero_grad();

            output.backward();

            optimizer.step();
            scheduler.step(lossVal);

            if (check_lr) {
                // For most LR schedulers, the LR decreases monotonically with each step. However,
                // that is not always the case, so the test must be disabled in some circumstances.
                Assert.True(pgFirst.LearningRate < lastLR);
                lastLR = pgFirst.LearningRate;
            }
        }

        // After 10 iterations, the final criterion value should always be better than the initial value.
        if (maximize) {
            Assert.True(finalLoss > initialLoss);
        } else {
            Assert.True(finalLoss < initialLoss);
        }

        return finalLoss;
    }

    internal static void LossIsClose(float expected, float actual, float tolerance = 0.001f)
    {
        // The error tolerance should be relative, not absolute.
        tolerance *= actual;
        Assert.True(MathF.Abs(actual - expected) <= tolerance, $"Expected {expected}, but got {actual}");
    }

    internal static float TrainLoop(IModule<Tensor, Tensor> seq, Tensor x, Tensor y, optim.Optimizer optimizer, Optim.Schedulers.LRScheduler scheduler, bool check_lr = true, int iters = 10, bool maximize = false)
    {
        Loss<Tensor, Tensor, Tensor> loss = MSELoss(Reduction.Sum);

        float initialLoss = loss.call(seq.call(x), y).ToSingle();
        float finalLoss = float.MaxValue;

        var pgFirst = optimizer.ParamGroups.First();
        var lastLR = pgFirst.LearningRate;

        for (int i = 0; i < iters; i++) {
            using var eval = seq.call(x);
            using var output = loss.call(eval, y);
            var lossVal = output.ToSingle();

            finalLoss = lossVal;

            optimizer.zero_grad();

            output.backward();

            optimizer.step();
            if (scheduler is Optim.Schedulers.ReduceLROnPlateau plateau) plateau.step(lossVal); else scheduler.step();

            if (check_lr) {
                // For most LR schedulers, the LR decreases monotonically with each step. However,
                // that is not always the case, so the test must be disabled in some circumstances.
                Assert.True(pgFirst.LearningRate < lastLR);
                lastLR = pgFirst.LearningRate;
            }
        }

        // After 10 iterations, the final criterion value should always be better than the initial value.
        if (maximize) {
            Assert.True(finalLoss > initialLoss);
        } else {
            Assert.True(finalLoss < initialLoss);
        }

        return finalLoss;
    }
}
