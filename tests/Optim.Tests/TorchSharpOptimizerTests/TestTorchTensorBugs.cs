// Ported from dotnet/TorchSharp's test/TorchSharpTest/TestTorchTensorBugs.cs at commit
// c20b6a1cc574d690707638a488d2583f3b8b983f (NuGet 0.107.0; Copyright (c) .NET Foundation and Contributors, MIT license):
// the regression tests that use an optimizer (and TestGradWarningModel, which one of them needs), with only
// `torch.optim.X(` replaced by `new Optim.X(`. The schedulers stay TorchSharp's. TorchSharp's `TestTraining` helpers are
// the shared harness's. Edits beyond the constructor swap are marked "Optim:" where they are made.
using System;
using System.Collections.Generic;
using System.Linq;
using Xunit;

#nullable enable

namespace Optim.Tests.TorchSharpOptimizerTests
{
    // Inside the namespace, so that `Adam.State` and friends mean TorchSharp's types, as in TorchSharp's tests.
    using TorchSharp;
    using TorchSharp.Modules;
    using static TorchSharp.torch.nn;
    using static TorchSharp.torch;
    using Modules = TorchSharp.Modules;
    using TestTraining = Optim.Tests.Support.TorchSharpTrainingHarness;

    // The tests in this file are all derived from reported GitHub Issues, serving
    // as regression tests.

    [Collection("Sequential")]
    public class TestTorchTensorBugs
    {
        [Fact]
        public void ValidateIssue315_3()
        {
            using var _ = NewDisposeScope();

            var lin1 = Linear(1000, 100);
            var lin2 = Linear(100, 10);
            var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            using var x = torch.randn(new long[] { 64, 1000 });
            using var y = torch.randn(new long[] { 64, 10 });

            double learning_rate = 0.00004f;
            var optimizer = new Optim.LBFGS(seq.parameters(), learning_rate);
            var loss = nn.MSELoss(Reduction.Sum);

            Func<Tensor> closure = () => {
                using var eval = seq.call(x);
                var output = loss.call(eval, y);

                var l = output.ToSingle();

                optimizer.zero_grad();

                output.backward();
                return output;
            };

            optimizer.step(closure);

            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        [Fact]
        public void ValidateIssue516()
        {
            if (torch.cuda.is_available()) {
                using var _ = NewDisposeScope();

                var model = new TestGradWarningModel();
                model.cuda();

                var optimizer = new Optim.Adam(model.parameters());
                optimizer.zero_grad();

                var x = torch.ones(5, 3).cuda();
                var y = torch.ones(5, 4).cuda();

                var z = model.call(x);
                var lossFunc = torch.nn.CrossEntropyLoss();
                var loss = lossFunc.call(y, z);
                loss.backward();
                optimizer.step();

                var grad1 = optimizer.parameters().ToArray()[0].grad;
                Assert.NotNull(grad1);

                var grad2 = model.Weight.grad;
                Assert.NotNull(grad2);
            }
        }

        public class TestGradWarningModel : torch.nn.Module<Tensor, Tensor>
        {
            public readonly Modules.Parameter Weight;

            public TestGradWarningModel() : base(nameof(TestGradWarningModel))
            {
                Weight = torch.zeros(new long[] { 3, 4 }).AsParameter();
                RegisterComponents();
            }

            public override torch.Tensor forward(torch.Tensor t)
            {
                return torch.matmul(t, Weight);
            }
        }

        [Fact]
        public void ValidateMultiStepLR()
        {
            var gen = new Generator(4711);
            TestTraining.CreateLinearLayers(gen, out var lin1, out var lin2);
            TestTraining.CreateDataAndLabels(gen, out var x, out var y);

            var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

            double learning_rate = 0.1;
            var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
            var scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, new int[] { 3, 5, 7 }, 0.9);

            optimizer.zero_grad();
            optimizer.step();
            scheduler.step(1);
            Assert.Equal(0.1, optimizer.ParamGroups.First().LearningRate);
            scheduler.step(2);
            Assert.Equal(0.1, optimizer.ParamGroups.First().LearningRate);
            scheduler.step(3);
            Assert.Equal(0.09, optimizer.ParamGroups.First().LearningRate, 0.00001);
            scheduler.step(4);
            Assert.Equal(0.09, optimizer.ParamGroups.First().LearningRate, 0.00001);
            scheduler.step(5);
            Assert.Equal(0.09 * 0.9, optimizer.ParamGroups.First().LearningRate, 0.00001);
            scheduler.step(6);
            scheduler.step(7);
            Assert.Equal(0.09 * 0.9 * 0.9, optimizer.ParamGroups.First().LearningRate, 0.00001);
            scheduler.step(8);
            Assert.Equal(0.09 * 0.9 * 0.9, optimizer.ParamGroups.First().LearningRate, 0.00001);
            scheduler.step(9);
            Assert.Equal(0.09 * 0.9 * 0.9, optimizer.ParamGroups.First().LearningRate, 0.00001);
            scheduler.step(10);
            Assert.Equal(0.09 * 0.9 * 0.9, optimizer.ParamGroups.First().LearningRate, 0.00001);
        }

        [Fact]
        public void ValidatePolynomialLR()
        {
            {
                // Linear decay
                var gen = new Generator(4711);
                TestTraining.CreateLinearLayers(gen, out var lin1, out var lin2);
                TestTraining.CreateDataAndLabels(gen, out var x, out var y);

                var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

                double learning_rate = 0.1;
                var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
                var scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, 10, 1.0);

                optimizer.zero_grad();
                optimizer.step();
                scheduler.step(1);
                Assert.Equal(0.09, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(2);
                Assert.Equal(0.08, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(3);
                Assert.Equal(0.07, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(4);
                Assert.Equal(0.06, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(5);
                Assert.Equal(0.05, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(6);
                scheduler.step(7);
                Assert.Equal(0.03, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(8);
                Assert.Equal(0.02, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(9);
                Assert.Equal(0.01, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(10);
                Assert.Equal(0.0, optimizer.ParamGroups.First().LearningRate, 0.00001);
            }
            {
                // Squared decay
                var gen = new Generator(4711);
                TestTraining.CreateLinearLayers(gen, out var lin1, out var lin2);
                TestTraining.CreateDataAndLabels(gen, out var x, out var y);

                var seq = Sequential(("lin1", lin1), ("relu1", ReLU()), ("lin2", lin2));

                double learning_rate = 0.1;
                var optimizer = new Optim.SGD(seq.parameters(), learning_rate);
                var scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, 10, 2.0);

                optimizer.zero_grad();
                optimizer.step();
                scheduler.step(1);
                Assert.Equal(0.081, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(2);
                Assert.Equal(0.064, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(3);
                Assert.Equal(0.049, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(4);
                Assert.Equal(0.036, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(5);
                Assert.Equal(0.025, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(6);
                scheduler.step(7);
                Assert.Equal(0.009, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(8);
                Assert.Equal(0.004, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(9);
                Assert.Equal(0.001, optimizer.ParamGroups.First().LearningRate, 0.00001);
                scheduler.step(10);
                Assert.Equal(0.0, optimizer.ParamGroups.First().LearningRate, 0.00001);
            }
        }

        [Fact]
        public void Validate1172_Clone()
        {
            var lin1 = torch.nn.Linear(10, 10);

            var optim1 = new Optim.Adam(lin1.parameters());
            var optim2 = new Optim.Adam(lin1.parameters());
            optim2.load_state_dict(optim1.state_dict());
            optim1.Dispose();

            var state = (optim2.state_dict().State[0] as Adam.State)!;
            Assert.False(state.exp_avg.IsInvalid);
            Assert.False(state.exp_avg_sq.IsInvalid);
        }

        [Fact]
        public void Validate1172_Device()
        {
            if (torch.cuda.is_available()) {
                var lin1 = torch.nn.Linear(10, 10);
                var optim1 = new Optim.Adam(lin1.parameters());
                var sd = optim1.state_dict();

                lin1.cuda();
                var optim2 = new Optim.Adam(lin1.parameters());
                Assert.Equal(DeviceType.CUDA, (optim2.state_dict().State[0] as Adam.State)!.exp_avg.device.type);

                optim2.load_state_dict(sd);
                Assert.Equal(DeviceType.CUDA, (optim2.state_dict().State[0] as Adam.State)!.exp_avg.device.type);
            }
        }

        [Fact]
        public void Validate_1191_2()
        {
            if (torch.cuda.is_available()) {
                // Make sure this doesn't crash
                var aModule = Sequential(
                    Linear(1000, 1), Softsign());
                {
                    Device aDevice = torch.device("cuda:0");
                    var dataBatch = rand(32, 1000).to(aDevice);
                    var resultBatch = rand(32, 1).to(aDevice);
                    aModule.to(aDevice);
                    foreach (var (name, p) in aModule.named_parameters()) {
                        Console.WriteLine($"{name} {p.device} {p.grad}");
                    }
                    var aMseLoss = nn.MSELoss();
                    var optimizer = new Optim.AdamW(aModule.parameters());
                    // Compute the loss
                    using var output = aMseLoss.forward(aModule.forward(dataBatch), resultBatch);

                    // Clear the gradients before doing the back-propagation
                    aModule.zero_grad();

                    // Do back-progatation, which computes all the gradients.
                    output.backward();

                    optimizer.step();
                    aModule.zero_grad();
                    aModule.to(torch.CPU);
                }
                {
                    aModule.zero_grad();
                    var aDevice = torch.device("cpu");
                    var dataBatch = rand(32, 1000).to(aDevice);
                    var resultBatch = rand(32, 1).to(aDevice);
                    aModule.to(aDevice);
                    aModule.zero_grad();
                    foreach (var (name, p) in aModule.named_parameters()) {
                        Console.WriteLine($"{name} {p.device} {p.grad}");
                    }
                    var aMseLoss = nn.MSELoss();
                    var optimizer = new Optim.AdamW(aModule.parameters());
                    // Compute the loss
                    using var output = aMseLoss.forward(aModule.forward(dataBatch), resultBatch);

                    // Clear the gradients before doing the back-propagation
                    aModule.zero_grad();

                    // Do back-progatation, which computes all the gradients.
                    output.backward();

                    optimizer.step();
                }
            }
        }

        [Fact]
        public void ValidateLinearLR()
        {
            var lin = Linear(5, 5, hasBias: false);
            var optim = new Optim.SGD(lin.parameters(), 0.05);
            var scheduler = torch.optim.lr_scheduler.LinearLR(optim, 0.5, 1.0, 4);

            Assert.Equal(0.025, Math.Round(scheduler.get_last_lr().First(), 3));
            scheduler.step();
            Assert.Equal(0.03125, Math.Round(scheduler.get_last_lr().First(), 5));
            scheduler.step();
            Assert.Equal(0.0375, Math.Round(scheduler.get_last_lr().First(), 4));
            scheduler.step();
            Assert.Equal(0.04375, Math.Round(scheduler.get_last_lr().First(), 5));
            scheduler.step();
            Assert.Equal(0.05, Math.Round(scheduler.get_last_lr().First(), 2));
            scheduler.step();
            Assert.Equal(0.05, Math.Round(scheduler.get_last_lr().First(), 2));
        }
    }
}
