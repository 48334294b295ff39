// Ported from dotnet/TorchSharp's test/TorchSharpTest/TestTraining.cs at commit c20b6a1cc574d690707638a488d2583f3b8b983f
// (NuGet 0.107.0; Copyright (c) .NET Foundation and Contributors, MIT license): the training tests of the optimizers not
// in TestTraining.cs (Adam, AdamW, Adagrad, RMSProp, SGD; those under TorchSharp's LR schedulers; a TorchScript model's
// and a Conv2d model's), with only `torch.optim.X(` replaced by `new Optim.X(` (TorchSharp's `RMSProp` is Optim's
// `RMSprop`). The schedulers stay TorchSharp's. Edits beyond the constructor swap are marked "Optim:" where they are made:
// tests that assert a deliberate difference are inverted, with the reason.
#nullable enable

namespace Optim.Tests.TorchSharpTrainingTests
{
    // Inside the namespace, so that `Adam.ParamGroup` and friends mean TorchSharp's types, as in TorchSharp's tests.
    using System;
    using System.Collections.Generic;
    using System.Linq;
    using TorchSharp;
    using TorchSharp.Modules;
    using static TorchSharp.torch;
    using static TorchSharp.torch.nn;
    using static Optim.Tests.Support.TorchSharpTrainingHarness;

    public partial class TestTraining
    {
        [Fact]
        public void Adam()
        {
            var lin1 = Linear(1000, 100);
            var lin2 = Linear(100, 10);
            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00001;

            var optimizer = new Optim.Adam(seq.parameters(), learning_rate);

            Assert.NotNull(optimizer);
        }

        [Fact]
        public void AdamBetas()
        {
            var lin1 = Linear(1000, 100);
            var lin2 = Linear(100, 10);
            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00001;

            var optimizer = new Optim.Adam(seq.parameters(), learning_rate);
            var (beta1, beta2) = optimizer.Betas;
            Assert.Equal(0.9, beta1);
            Assert.Equal(0.999, beta2);

            optimizer.Betas = (0.85, 0.975);

            (beta1, beta2) = optimizer.Betas;
            Assert.Equal(0.85, beta1);
            Assert.Equal(0.975, beta2);
        }

        /// <summary>
        /// Fully connected ReLU net with one hidden layer trained using Adam optimizer.
        /// Taken from <see href="https://pytorch.org/tutorials/beginner/pytorch_with_examples.html#pytorch-optim"/>.
        /// </summary>
        [Fact]
        public void TrainingAdamDefaults()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.Adam(seq.parameters());

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.3606f, loss);
        }

        [Fact]
        public void TrainingAdamMax()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.Adam(seq.parameters(), maximize:true);

            var loss = TrainLoop(seq, x, y, optimizer, maximize:true);

            LossIsClose(53.3606f, -loss);
        }

        [Fact]
        public void TrainingAdamParamGroups()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.Adam(new Adam.ParamGroup[]
            {
                new () { Parameters = lin1.parameters(), Options = new () { LearningRate = 0.005f } },
                new () { Parameters = lin2.parameters() }
            });

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(105.82f, loss);
        }

        [Fact]
        public void TrainingAdamAmsGrad()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.Adam(seq.parameters(), amsgrad: true);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.34f, loss);
        }

        [Fact]
        public void TrainingAdamWeightDecay()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.Adam(seq.parameters(), weight_decay: 0.5);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.28f, loss);
        }

        [Fact]
        public void TrainingAdamOneCycleLR()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var lr = 0.0005;
            var optimizer = new Optim.Adam(seq.parameters(), lr: lr, amsgrad: true);
            var scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr * 10, total_steps: 10);

            var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

            LossIsClose(94.69524f, loss);
        }

        /// <summary>
        /// Fully connected ReLU net with one hidden layer trained using Adam optimizer.
        /// Taken from <see href="https://pytorch.org/tutorials/beginner/pytorch_with_examples.html#pytorch-optim"/>.
        /// </summary>
        [Fact]
        public void TrainingAdamWDefaults()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.AdamW(seq.parameters());

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.3606f, loss);
        }

        [Fact]
        public void TrainingAdamWParamGroups()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.AdamW(new AdamW.ParamGroup[]
            {
                new () { Parameters = lin1.parameters(), Options = new () { LearningRate = 0.005f } },
                new () { Parameters = lin2.parameters() }
            });

            var loss = TrainLoop(seq, x, y, optimizer);

            // Optim: inverted. TorchSharp asserts 105.82f with its factory's AdamW weight_decay default, 0; Optim's AdamW
            // defaults to PyTorch's 0.01 (README, migrating from TorchSharp), and PyTorch's AdamW ends at 105.7023 here
            // (tools/golden/torchsharp_training_adamw.py; with weight_decay 0 PyTorch ends at 105.7154).
            Assert.Equal(0.01, optimizer.ParamGroups[0].Options.WeightDecay);
            LossIsClose(105.7023f, loss);
        }

        [Fact]
        public void TrainingAdamWAmsGrad()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.AdamW(seq.parameters(), amsgrad: true);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.34f, loss);
        }

        [Fact]
        public void TrainingAdamWWeightDecay()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.AdamW(seq.parameters(), weight_decay: 0.5);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.28f, loss);
        }

        [Fact]
        public void TrainingAdamWOneCycleLR()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var lr = 0.001;
            var optimizer = new Optim.AdamW(seq.parameters(), lr: lr, amsgrad: true);
            var scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr * 10, total_steps: 10);

            var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

            LossIsClose(197.873f, loss);
        }

        /// <summary>
        /// Fully connected ReLU net with one hidden layer trained using Adagrad optimizer.
        /// Taken from <see href="https://pytorch.org/tutorials/beginner/pytorch_with_examples.html#pytorch-optim"/>.
        /// </summary>
        [Fact]
        public void TrainingAdagrad()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.Adagrad(seq.parameters(), learning_rate);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(203.20f, loss);
        }

        [Fact]
        public void TrainingAdagradWeightDecay()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.Adagrad(seq.parameters(), learning_rate, weight_decay: 0.5);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(203.21f, loss);
        }

        [Fact]
        public void TrainingAdagradLRDecay()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.Adagrad(seq.parameters(), learning_rate, lr_decay: 0.1);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(211.065f, loss);
        }

        [Fact]
        public void TrainingAdagradParamGroups()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.Adagrad(new Adagrad.ParamGroup[]
            {
                new () { Parameters = lin1.parameters(), Options = new () { LearningRate = 0.005f } },
                new () { Parameters = lin2.parameters() }
            });

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(51.51f, loss);
        }

        [Fact]
        public void TrainingAdagradParamGroupsWD()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var optimizer = new Optim.Adagrad(new Adagrad.ParamGroup[]
            {
                new () { Parameters = lin1.parameters(), Options = new () { LearningRate = 0.005f, weight_decay = 0.25 } },
                new () { Parameters = lin2.parameters() }
            });

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(51.45f, loss);
        }

        /// <summary>
        /// Fully connected ReLU net with one hidden layer trained using RMSprop optimizer.
        /// Taken from <see href="https://pytorch.org/tutorials/beginner/pytorch_with_examples.html#pytorch-optim"/>.
        /// </summary>
        [Fact]
        public void TrainingRMSLR()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(56.589f, loss);
        }

        /// <summary>
        /// Fully connected ReLU net with one hidden layer trained using RMSprop optimizer.
        /// Taken from <see href="https://pytorch.org/tutorials/beginner/pytorch_with_examples.html#pytorch-optim"/>.
        /// </summary>
        [Fact]
        public void TrainingRMSOneCycleLR()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate * 10, total_steps: 10);

            var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

            LossIsClose(207.87f, loss);
        }

        [Fact]
        public void TrainingRMSAlpha()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate, alpha: 0.75);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(156.339f, loss);
        }

        [Fact]
        public void TrainingRMSAlphaMax()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate, alpha: 0.75, maximize:true);

            var loss = TrainLoop(seq, x, y, optimizer, maximize:true);

            LossIsClose(156.339f, -loss);
        }

        [Fact]
        public void TrainingRMSWD()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate, weight_decay: 0.15);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(56.608f, loss);
        }

        [Fact]
        public void TrainingRMSCentered()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate, centered: true);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(56.189f, loss);
        }

        [Fact]
        public void TrainingRMSCenteredWD()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate, weight_decay: 0.15, centered: true);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(56.189f, loss);
        }

        [Fact]
        public void TrainingRMSMomentum()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.RMSprop(seq.parameters(), learning_rate, momentum: 0.15);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.50f, loss);
        }

        [Fact]
        public void TrainingRMSCenteredParamGroups()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;

            var optimizer = new Optim.RMSprop(
                new RMSProp.ParamGroup[] {
                    new(lin1.parameters()),
                    new(lin2.parameters(), lr: learning_rate*10) },
                learning_rate, centered: true);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.6049f, loss);
        }

        [Fact]
        public void TrainingSGDMomentum()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate, momentum: 0.5);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.711f, loss);
        }

        [Fact]
        public void TrainingSGDDampening()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate, dampening: 0.5);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(62.494f, loss);
        }

        [Fact()]
        public void TrainingSGDNesterov()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate, momentum: 0.1, nesterov: true);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(59.270f, loss);
        }

        [Fact]
        public void TrainingSGDDefaults()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(62.494f, loss);
        }

        [Fact]
        public void TrainingSGDDefaultsParamGroups()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            var pgs = new SGD.ParamGroup[] {
                new () { Parameters = lin1.parameters(), Options = new() { LearningRate = 0.00005 } },
                new (lin2.parameters(), lr: 0.00003, dampening: 0.05, momentum: 0.25)
            };

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(pgs, learning_rate);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(58.698f, loss);
        }

        [Fact]
        public void TrainingSGDStepLR()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.97);

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, i => Math.Pow(0.95, (1 + i)));

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.MultiplicativeLR(optimizer, i => 0.95);

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer);

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, end_factor: 0.75, total_iters: 10);

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler0 = torch.optim.lr_scheduler.LinearLR(optimizer, end_factor: 0.75, total_iters: 10);
            var scheduler1 = torch.optim.lr_scheduler.ConstantLR(optimizer);
            var scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, new[] { scheduler0, scheduler1, torch.optim.lr_scheduler.ExponentialLR(optimizer) }, new[] { 10, 15 });

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler0 = torch.optim.lr_scheduler.LinearLR(optimizer, end_factor: 0.75, total_iters: 10);
            var scheduler1 = torch.optim.lr_scheduler.ConstantLR(optimizer);
            var scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer, 2);
            var scheduler3 = torch.optim.lr_scheduler.MultiStepLR(optimizer, new[] { 2, 4 });
            var scheduler4 = torch.optim.lr_scheduler.ExponentialLR(optimizer);
            var scheduler5 = torch.optim.lr_scheduler.PolynomialLR(optimizer, power: 2.0);
            var scheduler6 = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 5, 0.1);
            var scheduler7 = torch.optim.lr_scheduler.LinearLR(optimizer, end_factor: 0.75);
            var scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, new[] { scheduler0, scheduler1, scheduler2, scheduler3, scheduler4, scheduler5, scheduler6, scheduler7}, new[] { 5, 5, 5, 5, 5, 5, 5 });

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, new int[] { 3, 5, 7 }, 0.97);

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10);

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
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.CyclicLR(optimizer, 0.0001, 0.0004, step_size_up: 5);

            var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

            LossIsClose(65.459f, loss);
        }

        [Fact]
        public void TrainingSGDOneCycleLR()
        {
            var gen = new Generator(4711);
            CreateLinearLayers(gen, out var lin1, out var lin2);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.0004, total_steps: 10);

            var loss = TrainLoop(seq, x, y, optimizer, scheduler, false);

            LossIsClose(112.4992f, loss);
        }

        [Fact]
        public void TrainingLoadedTorchScript()
        {
            var gen = new Generator(4711);
            CreateDataAndLabels(gen, out var x, out var y);

            using var seq = torch.jit.load<torch.Tensor, torch.Tensor>(@"l1000_100_10.script.dat");

            double learning_rate = 0.00004f;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);

            var loss = TrainLoop(seq, x, y, optimizer);

            LossIsClose(53.81697f, loss);

            seq.eval();
        }

        [Fact]
        public void TrainingConv2d()
        {
            var conv1 = Conv2d(3, 4, 3, stride: 2);
            var lin1 = Linear(4 * 13 * 13, 32);
            var lin2 = Linear(32, 10);

            using var seq = Sequential(
                ("conv1", conv1),
                ("r1", ReLU(inplace: true)),
                ("drop1", Dropout(0.1)),
                ("flat1", Flatten()),
                ("lin1", lin1),
                ("r2", ReLU(inplace: true)),
                ("lin2", lin2));

            var x = torch.randn(new long[] { 64, 3, 28, 28 });
            var y = torch.randn(new long[] { 64, 10 });

            using var optimizer = new Optim.Adam(seq.parameters());

            TrainLoop(seq, x, y, optimizer);
        }

        [Fact]
        public void TrainingConv2dCUDA()
        {
            if (torch.cuda.is_available()) {
                var device = torch.CUDA;

                using (Module<Tensor, Tensor> conv1 = Conv2d(3, 4, 3, stride: 2),
                      lin1 = Linear(4 * 13 * 13, 32),
                      lin2 = Linear(32, 10))

                using (var seq = Sequential(
                        ("conv1", conv1),
                        ("r1", ReLU(inplace: true)),
                        ("drop1", Dropout(0.1)),
                        ("flat1", Flatten()),
                        ("lin1", lin1),
                        ("r2", ReLU(inplace: true)),
                        ("lin2", lin2))) {

                    seq.to((Device)device);

                    var optimizer = new Optim.Adam(seq.parameters());
                    var loss = MSELoss(Reduction.Sum);

                    using (Tensor x = torch.randn(new long[] { 64, 3, 28, 28 }, device: (Device)device),
                           y = torch.randn(new long[] { 64, 10 }, device: (Device)device)) {

                        float initialLoss = loss.call(seq.call(x), y).ToSingle();
                        float finalLoss = float.MaxValue;

                        for (int i = 0; i < 10; i++) {
                            var eval = seq.call(x);
                            var output = loss.call(eval, y);
                            var lossVal = output.ToSingle();

                            finalLoss = lossVal;

                            optimizer.zero_grad();

                            output.backward();

                            optimizer.step();
                        }
                        Assert.True(finalLoss < initialLoss);
                    }
                }
            } else {
                Assert.Throws<InvalidOperationException>(() => torch.randn(new long[] { 64, 3, 28, 28 }).cuda());
            }
        }
    }
}
