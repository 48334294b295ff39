using System;
using System.IO;
using System.Linq;
using Optim.Amp;
using Optim.Schedulers;
using Optim.Utils;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests.Guide;

/// <summary>
/// The code of docs/guide.md. Each snippet is the text between a <c>// guide: NAME</c> line and the next
/// <c>// end guide</c> line of a test below, which compiles it and runs it, then checks what the guide says it does;
/// <see cref="GuideTests"/> checks that the guide's <c>```csharp</c> blocks are exactly these snippets, in order.
/// </summary>
public class GuideSnippets
{
    /// <summary>A small MLP with weights from its own generator, so that each test's numbers are the same on every run.</summary>
    private static Sequential NewModel()
    {
        var model = nn.Sequential(("fc1", nn.Linear(8, 16)), ("relu", nn.ReLU()), ("fc2", nn.Linear(16, 3)));
        var generator = new Generator(5);
        using var noGrad = no_grad();
        foreach (var p in model.parameters())
        {
            using var values = rand(p.shape, generator: generator).sub_(0.5).mul_(0.5);
            p.copy_(values);
        }
        return model;
    }

    private static (Tensor X, Tensor Y)[] NewBatches(int count)
    {
        var generator = new Generator(17);
        var teacher = randn(8, 3, generator: generator);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var x = randn(32, 8, generator: generator);
            return (x, x.matmul(teacher).argmax(1));
        }).ToArray();
    }

    private static double MeanLoss(Sequential model, (Tensor X, Tensor Y)[] batches)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return batches.Average(b => nn.functional.cross_entropy(model.call(b.X), b.Y).item<float>());
    }

    [Fact]
    public void Training_loop()
    {
        using var model = NewModel();
        var batches = NewBatches(8);
        var before = MeanLoss(model, batches);

        // guide: training-loop
        using var optimizer = new AdamW(model.parameters(), lr: 1e-2, weight_decay: 0.01);
        var scheduler = new StepLR(optimizer, step_size: 2, gamma: 0.5);
        for (var epoch = 0; epoch < 4; epoch++)
        {
            foreach (var (x, y) in batches)
            {
                using var scope = torch.NewDisposeScope();                   // frees this step's temporaries
                optimizer.zero_grad();                                        // 1. drop the previous step's gradients
                var loss = torch.nn.functional.cross_entropy(model.call(x), y); // 2. forward
                loss.backward();                                              // 3. gradients into each parameter's .grad
                ClipGrad.clip_grad_norm_(model.parameters(), max_norm: 1.0);  // 4. clip what step() will read
                optimizer.step();                                             // 5. update parameters and state
            }
            scheduler.step();                                                 // 6. the next epoch's learning rate
        }
        // end guide

        optimizer.ParamGroups[0].LearningRate.Should().Be(1e-2 * 0.5 * 0.5);   // halved after epochs 2 and 4
        MeanLoss(model, batches).Should().BeLessThan(before * 0.75);    // measured: 1.13 to 0.71
    }

    [Fact]
    public void Parameter_groups()
    {
        using var model = NewModel();

        // guide: param-groups
        var weights = model.named_parameters().Where(p => p.name.EndsWith("weight", StringComparison.Ordinal)).Select(p => p.parameter);
        var biases = model.named_parameters().Where(p => p.name.EndsWith("bias", StringComparison.Ordinal)).Select(p => p.parameter);
        using var optimizer = new AdamW(new[]
        {
            new ParamGroupSpec<AdamOptions>(weights),                                   // the defaults below
            new ParamGroupSpec<AdamOptions>(biases, o => o with { WeightDecay = 0 }),  // PyTorch's {"params": biases, "weight_decay": 0}
        }, lr: 1e-3, weight_decay: 0.01);

        var noDecay = optimizer.ParamGroups[1].Options.WeightDecay;    // 0
        optimizer.ParamGroups[0].LearningRate = 5e-4;                  // what a scheduler does: one group at a time
        // end guide

        noDecay.Should().Be(0);
        optimizer.ParamGroups[0].Options.WeightDecay.Should().Be(0.01);
        optimizer.ParamGroups[0].Parameters.Should().HaveCount(2);
        optimizer.ParamGroups[1].LearningRate.Should().Be(1e-3);
    }

    [Fact]
    public void Per_parameter_state()
    {
        using var model = NewModel();
        using var optimizer = new Adam(model.parameters(), lr: 1e-3);
        var weight = model.parameters().First();

        // guide: state
        var before = optimizer.State.ContainsKey(weight);   // false: no state before the first step
        optimizer.zero_grad();
        model.call(torch.ones(4, 8)).sum().backward();
        optimizer.step();                                    // creates the state of every parameter that has a gradient

        var state = optimizer.State[weight];
        var steps = state["step"].item<float>();             // 1: a 0-dim float32 tensor, as in PyTorch
        var m = state["exp_avg"];                            // the first moment: the weight's shape, dtype and device
        var v = state["exp_avg_sq"];                         // the second moment
        // end guide

        before.Should().BeFalse();
        steps.Should().Be(1);
        m.shape.Should().Equal(weight.shape);
        v.shape.Should().Equal(weight.shape);
        state.Keys.Should().BeEquivalentTo("step", "exp_avg", "exp_avg_sq");
    }

    [Fact]
    public void Set_to_none()
    {
        // guide: set-to-none
        using var a = new Parameter(torch.ones(3));
        using var b = new Parameter(torch.ones(3));
        using var sgd = new SGD(new[] { a, b }, lr: 0.1, momentum: 0.9);

        (a.sum() + b.sum()).backward();        // both get a gradient of ones
        sgd.step();                            // both move to 0.9 and get a momentum_buffer

        sgd.zero_grad(set_to_none: false);     // the gradients become zeros
        a.sum().backward();                    // only a gets a new gradient
        sgd.step();                            // b's zero gradient is stepped: its momentum moves it on, to 0.81

        sgd.zero_grad();                       // set_to_none (the default): the gradients become null
        a.sum().backward();
        sgd.step();                            // b has no gradient: skipped, it stays at 0.81
        // end guide

        b.grad.Should().BeNull();
        b.data<float>().ToArray().Should().AllSatisfy(v => v.Should().BeApproximately(0.81f, 1e-6f));
        a.data<float>().ToArray().Should().AllSatisfy(v => v.Should().BeLessThan(0.81f));
    }

    [Fact]
    public void Coupled_and_decoupled_weight_decay()
    {
        // guide: weight-decay
        using var p = new Parameter(torch.tensor(new[] { 10f, 1f }));
        using var q = new Parameter(torch.tensor(new[] { 10f, 1f }));
        using var adam = new Adam(new[] { p }, lr: 0.1, weight_decay: 0.5);    // coupled: grad += 0.5 * param
        using var adamw = new AdamW(new[] { q }, lr: 0.1, weight_decay: 0.5);  // decoupled: param *= 1 - 0.1 * 0.5

        (p.sum() * 0).backward();              // a zero gradient: only the decay acts
        (q.sum() * 0).backward();
        adam.step();                           // [9.9, 0.9]: Adam normalizes the decay term away, every weight moves by lr
        adamw.step();                          // [9.5, 0.95]: each weight shrinks in proportion, as intended
        // end guide

        p.data<float>().ToArray().Should().Equal(new[] { 9.9f, 0.9f }, (x, y) => Math.Abs(x - y) < 1e-5);
        q.data<float>().ToArray().Should().Equal(new[] { 9.5f, 0.95f }, (x, y) => Math.Abs(x - y) < 1e-6);
    }

    [Fact]
    public void Closure()
    {
        using var model = NewModel();
        var (x, y) = NewBatches(1)[0];
        var before = MeanLoss(model, [(x, y)]);

        // guide: lbfgs
        using var lbfgs = new LBFGS(model.parameters(), lr: 1, max_iter: 20, line_search_fn: "strong_wolfe");
        Tensor Closure()                                           // re-evaluates the model: L-BFGS calls it as often as it needs
        {
            lbfgs.zero_grad();
            var loss = torch.nn.functional.cross_entropy(model.call(x), y);
            loss.backward();
            return loss;
        }
        for (var i = 0; i < 5; i++) lbfgs.step(Closure);           // each step: up to max_iter iterations on the same batch
        // end guide

        MeanLoss(model, [(x, y)]).Should().BeLessThan(before / 10);
    }

    [Fact]
    public void Paths()
    {
        using var model = NewModel();
        using var twin = NewModel();
        using (no_grad())
            foreach (var (mine, theirs) in twin.parameters().Zip(model.parameters())) mine.copy_(theirs);
        var x = torch.ones(4, 8);

        // guide: paths
        using var forLoop = new Adam(model.parameters(), lr: 1e-3, implementation: Implementation.ForLoop);
        using var foreachPath = new Adam(twin.parameters(), lr: 1e-3, implementation: Implementation.Foreach);
        foreachPath.ParamGroups[0].Options = foreachPath.ParamGroups[0].Options with { Implementation = Implementation.Foreach };  // per group, too
        for (var i = 0; i < 3; i++)
        {
            forLoop.zero_grad(); model.call(x).square().sum().backward(); forLoop.step();
            foreachPath.zero_grad(); twin.call(x).square().sum().backward(); foreachPath.step();
        }
        var same = model.parameters().Zip(twin.parameters()).All(p => p.First.eq(p.Second).all().item<bool>());  // true: the same bits on CPU
        // end guide

        same.Should().BeTrue();
    }

    [Fact]
    public void Mixed_precision()
    {
        using var model = NewModel();
        var batches = NewBatches(4);

        // guide: amp
        model.to(torch.bfloat16);                                   // before creating the optimizer: to(dtype) replaces the parameters
        using var optimizer = new AdamW(model.parameters(), lr: 3e-3);
        using var scaler = new GradScaler();                        // loss scale 2^16, halved on overflow, doubled after 2000 clean steps
        foreach (var (x, y) in batches)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = torch.nn.functional.cross_entropy(model.call(x.to(torch.bfloat16)), y);
            scaler.scale(loss).backward();                          // scaled, so small gradients do not underflow
            scaler.unscale_(optimizer);                             // the true gradients, for clipping
            ClipGrad.clip_grad_norm_(model.parameters(), max_norm: 1.0);
            scaler.step(optimizer);                                 // skipped if a gradient is inf or NaN
            scaler.update();
        }
        // end guide

        scaler.get_scale().Should().Be(65536.0);                    // no overflow in these four steps
        optimizer.State.Values.Should().OnlyContain(s => s["exp_avg"].dtype == ScalarType.BFloat16);
    }

    [Fact]
    public void Checkpoint_and_its_pitfalls()
    {
        using var model = NewModel();
        var path = Path.Combine(Path.GetTempPath(), $"optim-guide-{Guid.NewGuid():N}.ckpt");
        try
        {
            using var optimizer = new AdamW(model.parameters(), lr: 1e-3, weight_decay: 0.01);
            optimizer.zero_grad();
            model.call(torch.ones(4, 8)).sum().backward();
            optimizer.step();
            var expected = optimizer.State[model.parameters().First()]["exp_avg"].clone();

            // guide: checkpoint
            optimizer.Save(path);                                   // atomic: the state and every group's hyperparameters

            using var resumed = new AdamW(model.parameters(), lr: 1e-3, weight_decay: 0.01);  // the same parameters, in the same order
            resumed.Load(path);                                     // the saved state, lr and betas win over the constructor's

            using var reordered = new AdamW(model.parameters().Reverse(), lr: 1e-3);
            string? error = null;
            try { reordered.Load(path); }
            catch (ArgumentException e) { error = e.Message; }      // the state does not fit the parameters: nothing is loaded
            // end guide

            resumed.State[model.parameters().First()]["exp_avg"].eq(expected).all().item<bool>().Should().BeTrue();
            error.Should().NotBeNull();
            reordered.State.Values.Sum(s => s.Count).Should().Be(0);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
