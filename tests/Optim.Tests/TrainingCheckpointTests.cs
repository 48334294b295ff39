using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Amp;
using Optim.Formats;
using Optim.Schedulers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>
/// <see cref="TrainingCheckpoint"/>: every part of a run round-trips bit for bit, a resumed run continues exactly, and a
/// damaged file or one that does not fit is refused with nothing changed. The tests use and compare torch's global
/// random number generator, so they run alone.
/// </summary>
[Collection(nameof(TrainingCheckpointTests))]
public sealed class TrainingCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("optim-training-checkpoint").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // ---- a small run: Linear, BatchNorm (float and int64 buffers), Dropout (uses the RNG), Linear; Adam; a warm-up
    // then cosine schedule; a gradient scaler that grows every 3 clean steps and backs off on an overflow. ----

    private sealed class Run : IDisposable
    {
        public Run(long seed, int hidden = 8, bool sgd = false)
        {
            torch.manual_seed(seed);
            Model = nn.Sequential(("fc1", nn.Linear(4, hidden)), ("bn", nn.BatchNorm1d(hidden)), ("relu", nn.ReLU()),
                ("drop", nn.Dropout(0.25)), ("fc2", nn.Linear(hidden, 3)));
            Optimizer = sgd ? new SGD(Model.parameters(), lr: 0.05, momentum: 0.9) : new Adam(Model.parameters(), lr: 0.05);
            Warmup = new LinearLR(Optimizer, start_factor: 0.1, total_iters: 4);
            Cosine = new CosineAnnealingLR(Optimizer, T_max: 10, eta_min: 0.001);
            Schedule = new SequentialLR(Optimizer, [Warmup, Cosine], [4]);
            Scaler = new GradScaler(init_scale: 1024, growth_interval: 3);
        }

        public Sequential Model { get; }
        public Optimizer Optimizer { get; }
        public LRScheduler Warmup { get; }
        public LRScheduler Cosine { get; }
        public SequentialLR Schedule { get; }
        public GradScaler Scaler { get; }
        public List<double> Lrs { get; } = new();

        public void Steps(int from, int to)
        {
            for (var step = from; step < to; step++)
            {
                using var scope = NewDisposeScope();
                var x = torch.randn(16, 4);
                var y = (torch.rand(16) * 3).to(ScalarType.Int64);
                Optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(Model.call(x), y);
                if (step == 5) loss = loss * double.PositiveInfinity; // one overflow: the step is skipped, the scale backs off
                Scaler.scale(loss).backward();
                Scaler.step(Optimizer);
                Scaler.update();
                Lrs.Add(Optimizer.ParamGroups.First().LearningRate);
                Schedule.step();
            }
        }

        public void Save(string path, IReadOnlyDictionary<string, object>? extra = null) =>
            TrainingCheckpoint.Save(path, Model, Optimizer, [Schedule], Scaler, extra);

        public IReadOnlyDictionary<string, object> Load(string path) =>
            TrainingCheckpoint.Load(path, Model, Optimizer, [Schedule], Scaler);

        public void Dispose()
        {
            Optimizer.Dispose();
            Scaler.Dispose();
            Model.Dispose();
        }
    }

    // Everything a load may change, as comparable strings: model bytes, optimizer state and hyperparameters, the
    // schedulers' states, the scaler's state and the global RNG.
    private static List<string> Snapshot(Run run)
    {
        var snapshot = run.Model.state_dict().Select(e => $"{e.Key}:{e.Value.dtype}:{Convert.ToBase64String(e.Value.contiguous().bytes)}").ToList();
        var sd = run.Optimizer.StateDict();
        snapshot.AddRange(sd.ParamGroups.Select(g => string.Join(",", g.Hyperparameters.Select(h => $"{h.Key}={h.Value}")) + $";initial_lr={g.InitialLr:R}"));
        foreach (var (id, state) in sd.State)
            foreach (var (key, t) in state) snapshot.Add($"{id}.{key}:{Convert.ToBase64String(t.contiguous().bytes)}");
        snapshot.Add(run.Schedule.StateDict().ToString());
        snapshot.Add(run.Warmup.StateDict().ToString());
        snapshot.Add(run.Cosine.StateDict().ToString());
        snapshot.Add(run.Scaler.StateDict()!.ToString());
        using var rng = torch.get_rng_state();
        snapshot.Add(Convert.ToBase64String(rng.bytes));
        return snapshot;
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_continues_bit_for_bit()
    {
        const int Total = 14, Interrupt = 7;
        using var reference = new Run(seed: 1);
        reference.Steps(0, Total);

        var path = Path.Combine(_dir, "run.ckpt");
        using (var interrupted = new Run(seed: 1))
        {
            interrupted.Steps(0, Interrupt);
            interrupted.Save(path, new Dictionary<string, object> { ["step"] = (long)Interrupt });
            interrupted.Steps(Interrupt, Interrupt + 2); // lost work: the process dies here
        }

        using var resumed = new Run(seed: 99);            // a fresh process: other weights, other RNG state
        var extra = resumed.Load(path);
        var start = (int)(long)extra["step"];
        resumed.Steps(start, Total);

        Snapshot(resumed).Should().Equal(Snapshot(reference));
        resumed.Lrs.Should().Equal(reference.Lrs.Skip(start));
        resumed.Scaler.get_scale().Should().NotBe(1024, "the scale moved during the run");
        reference.Lrs.Distinct().Count().Should().BeGreaterThan(8, "the schedule warmed up and annealed");
    }

    [Fact]
    public void A_round_trip_restores_every_part_bitwise()
    {
        var path = Path.Combine(_dir, "a.ckpt");
        using var source = new Run(seed: 2);
        source.Steps(0, 6);
        source.Save(path);
        var expected = Snapshot(source);

        torch.manual_seed(12345);
        using var target = new Run(seed: 3);
        Snapshot(target).Should().NotEqual(expected);
        target.Load(path);

        Snapshot(target).Should().Equal(expected);
    }

    // A module with buffers of many dtypes and float bit patterns that arithmetic would not preserve.
    private sealed class AllDtypes : nn.Module<Tensor, Tensor>
    {
        private readonly Linear lin;

        public AllDtypes(int seed) : base(nameof(AllDtypes))
        {
            lin = nn.Linear(3, 2);
            var g = new Generator((ulong)seed);
            var bits = new[] { 0x7FC00001, unchecked((int)0x80000000), 0x00000001, 0x7F800000, seed }.Select(BitConverter.Int32BitsToSingle).ToArray();
            register_buffer("float_bits", torch.tensor(bits));
            register_buffer("f16", torch.randn(5, generator: g).to(ScalarType.Float16));
            register_buffer("bf16", torch.randn(2, 3, generator: g).to(ScalarType.BFloat16));
            register_buffer("f64", torch.randn(4, generator: g, dtype: ScalarType.Float64));
            register_buffer("c64", torch.randn(3, generator: g, dtype: ScalarType.ComplexFloat32));
            register_buffer("i8", torch.randint(-100, 100, [6], generator: g, dtype: ScalarType.Int8));
            register_buffer("u8", torch.randint(0, 255, [6], generator: g, dtype: ScalarType.Byte));
            register_buffer("i16", torch.randint(-1000, 1000, [2, 2], generator: g, dtype: ScalarType.Int16));
            register_buffer("i32", torch.randint(-100000, 100000, [3], generator: g, dtype: ScalarType.Int32));
            register_buffer("i64", torch.tensor(new[] { long.MinValue, long.MaxValue, seed }));
            register_buffer("flag", torch.tensor(new[] { seed % 2 == 0, true, false }));
            register_buffer("scalar", torch.tensor(seed * 1.5));
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => lin.call(input);
    }

    [Fact]
    public void Parameters_and_buffers_of_every_dtype_round_trip_bit_for_bit()
    {
        using var a = new AllDtypes(1);
        using var b = new AllDtypes(2);
        using var opt = new Adam(a.parameters());
        using var optB = new Adam(b.parameters());
        var path = Path.Combine(_dir, "dtypes.ckpt");

        TrainingCheckpoint.Save(path, a, opt);
        TrainingCheckpoint.Load(path, b, optB);

        var sa = a.state_dict();
        var sb = b.state_dict();
        sb.Keys.Should().Equal(sa.Keys);
        sa.Count.Should().Be(14);
        foreach (var (name, t) in sa)
        {
            sb[name].dtype.Should().Be(t.dtype, name);
            sb[name].shape.Should().Equal(t.shape, name);
            sb[name].bytes.ToArray().Should().Equal(t.bytes.ToArray(), name);
        }
    }

    [Fact]
    public void Extra_values_come_back_with_their_types_and_order()
    {
        using var run = new Run(seed: 4);
        var path = Path.Combine(_dir, "extra.ckpt");
        var extra = new Dictionary<string, object>
        {
            ["step"] = 123L, ["epoch"] = 7, ["best"] = -0.0, ["nan"] = double.NaN, ["done"] = false, ["config"] = "lr=0.1 ✓",
        };
        run.Save(path, extra);

        var read = TrainingCheckpoint.ReadExtra(path);
        read.Keys.Should().Equal(extra.Keys);
        read["step"].Should().Be(123L);
        read["epoch"].Should().Be(7);
        BitConverter.DoubleToInt64Bits((double)read["best"]).Should().Be(BitConverter.DoubleToInt64Bits(-0.0));
        ((double)read["nan"]).Should().Be(double.NaN);
        read["done"].Should().Be(false);
        read["config"].Should().Be("lr=0.1 ✓");
        run.Load(path).Should().Equal(read);
    }

    [Fact]
    public void The_rng_state_is_restored_unless_asked_not_to()
    {
        using var run = new Run(seed: 5);
        var path = Path.Combine(_dir, "rng.ckpt");
        run.Save(path);
        var next = torch.rand(8).bytes.ToArray();

        torch.manual_seed(777);
        run.Load(path);
        torch.rand(8).bytes.ToArray().Should().Equal(next);

        torch.manual_seed(777);
        var other = torch.rand(8).bytes.ToArray();
        torch.manual_seed(777);
        TrainingCheckpoint.Load(path, run.Model, run.Optimizer, [run.Schedule], run.Scaler, rngState: false);
        torch.rand(8).bytes.ToArray().Should().Equal(other);

        var withoutRng = Path.Combine(_dir, "norng.ckpt");
        TrainingCheckpoint.Save(withoutRng, run.Model, run.Optimizer, [run.Schedule], run.Scaler, rngState: false);
        torch.manual_seed(777);
        run.Load(withoutRng);
        torch.rand(8).bytes.ToArray().Should().Equal(other);
    }

    // ---- damage: every truncation and flipped bits are InvalidDataException, and nothing changes ----

    private static (byte[] Bytes, Run Target, List<string> Before) SmallCheckpointAndTarget()
    {
        using var source = new Run(seed: 6, hidden: 2);
        source.Steps(0, 3);
        using var stream = new MemoryStream();
        TrainingCheckpoint.Save(stream, source.Model, source.Optimizer, [source.Schedule], source.Scaler,
            new Dictionary<string, object> { ["step"] = 3L });
        var target = new Run(seed: 7, hidden: 2);
        target.Steps(0, 1);
        return (stream.ToArray(), target, Snapshot(target));
    }

    [Fact]
    public void Every_truncation_is_detected_and_changes_nothing()
    {
        var (bytes, target, before) = SmallCheckpointAndTarget();
        using var _ = target;
        bytes.Length.Should().BeInRange(5000, 9000);

        for (var length = 0; length < bytes.Length; length++)
        {
            using var stream = new MemoryStream(bytes, 0, length);
            var act = () => TrainingCheckpoint.Load(stream, target.Model, target.Optimizer, [target.Schedule], target.Scaler);
            act.Should().Throw<InvalidDataException>($"the file is cut at {length} of {bytes.Length} bytes");
        }
        Snapshot(target).Should().Equal(before);

        var path = Path.Combine(_dir, "long.ckpt");
        File.WriteAllBytes(path, [.. bytes, 0]);
        ((Action)(() => target.Load(path))).Should().Throw<InvalidDataException>().WithMessage("*after the checkpoint*");
        Snapshot(target).Should().Equal(before);

        using (var whole = new MemoryStream(bytes))
            TrainingCheckpoint.Load(whole, target.Model, target.Optimizer, [target.Schedule], target.Scaler)["step"].Should().Be(3L);
        Snapshot(target).Should().NotEqual(before);
    }

    [Fact]
    public void Flipped_bits_anywhere_are_detected_and_change_nothing()
    {
        var (bytes, target, before) = SmallCheckpointAndTarget();
        using var _ = target;

        for (var i = 0; i < bytes.Length; i++)
        {
            var damaged = (byte[])bytes.Clone();
            damaged[i] ^= (byte)(1 << (i % 8));
            using var stream = new MemoryStream(damaged);
            var act = () => TrainingCheckpoint.Load(stream, target.Model, target.Optimizer, [target.Schedule], target.Scaler);
            act.Should().Throw<InvalidDataException>($"bit {i % 8} of byte {i} is flipped");
        }
        Snapshot(target).Should().Equal(before);
    }

    [Fact]
    public void Other_checkpoint_kinds_are_refused()
    {
        using var run = new Run(seed: 8);
        var path = Path.Combine(_dir, "opt.ckpt");
        run.Optimizer.Save(path);
        var before = Snapshot(run);

        ((Action)(() => run.Load(path))).Should().Throw<InvalidDataException>().WithMessage("*'optimizer'*not a training run*");
        ((Action)(() => TrainingCheckpoint.ReadExtra(path))).Should().Throw<InvalidDataException>();
        Snapshot(run).Should().Equal(before);
    }

    // ---- checkpoints that do not fit: ArgumentException, and nothing changes ----

    private string TrainedCheckpoint()
    {
        var path = Path.Combine(_dir, "trained.ckpt");
        using var source = new Run(seed: 9);
        source.Steps(0, 5);
        source.Save(path);
        return path;
    }

    [Fact]
    public void A_checkpoint_whose_scheduler_part_does_not_fit_changes_nothing()
    {
        var path = TrainedCheckpoint();
        using var target = new Run(seed: 10);
        target.Steps(0, 2);
        // Same model and optimizer, but the second phase of the schedule is a StepLR, not a CosineAnnealingLR.
        var warmup = new LinearLR(target.Optimizer, start_factor: 0.1, total_iters: 4);
        var other = new SequentialLR(target.Optimizer, [warmup, new StepLR(target.Optimizer, step_size: 3)], [4]);
        var before = Snapshot(target);
        var otherBefore = other.StateDict().ToString();

        var act = () => TrainingCheckpoint.Load(path, target.Model, target.Optimizer, [other], target.Scaler);

        act.Should().Throw<ArgumentException>().WithMessage("*scheduler 0*");
        Snapshot(target).Should().Equal(before);
        other.StateDict().ToString().Should().Be(otherBefore);
    }

    [Fact]
    public void A_checkpoint_for_another_model_changes_nothing()
    {
        var path = TrainedCheckpoint();
        using var target = new Run(seed: 11, hidden: 6);
        target.Steps(0, 2);
        var before = Snapshot(target);

        ((Action)(() => target.Load(path))).Should().Throw<ArgumentException>().WithMessage("*model's 'fc1.weight'*");
        Snapshot(target).Should().Equal(before);

        using var renamed = nn.Sequential(("first", nn.Linear(4, 8)), ("bn", nn.BatchNorm1d(8)), ("relu", nn.ReLU()),
            ("drop", nn.Dropout(0.25)), ("fc2", nn.Linear(8, 3)));
        using var renamedOpt = new Adam(renamed.parameters());
        var act = () => TrainingCheckpoint.Load(path, renamed, renamedOpt, [new StepLR(renamedOpt, 3)], new GradScaler());
        act.Should().Throw<ArgumentException>().WithMessage("*missing from the checkpoint: first.weight*not in the model: fc1.weight*");
    }

    [Fact]
    public void A_checkpoint_for_another_optimizer_changes_nothing()
    {
        var path = TrainedCheckpoint();
        using var target = new Run(seed: 12, sgd: true);
        target.Steps(0, 2);
        var before = Snapshot(target);

        ((Action)(() => target.Load(path))).Should().Throw<ArgumentException>().WithMessage("*'Adam' optimizer, not 'SGD'*");
        Snapshot(target).Should().Equal(before);
    }

    [Fact]
    public void Missing_or_unexpected_schedulers_and_scalers_change_nothing()
    {
        var path = TrainedCheckpoint();
        using var target = new Run(seed: 13);
        target.Steps(0, 2);
        var before = Snapshot(target);

        ((Action)(() => TrainingCheckpoint.Load(path, target.Model, target.Optimizer, [], target.Scaler)))
            .Should().Throw<ArgumentException>().WithMessage("*1 scheduler(s), 0 were given*");
        ((Action)(() => TrainingCheckpoint.Load(path, target.Model, target.Optimizer, [target.Schedule, target.Cosine], target.Scaler)))
            .Should().Throw<ArgumentException>().WithMessage("*1 scheduler(s), 2 were given*");
        ((Action)(() => TrainingCheckpoint.Load(path, target.Model, target.Optimizer, [target.Schedule])))
            .Should().Throw<ArgumentException>().WithMessage("*pass the scaler*");
        Snapshot(target).Should().Equal(before);

        var noScaler = Path.Combine(_dir, "noscaler.ckpt");
        TrainingCheckpoint.Save(noScaler, target.Model, target.Optimizer, [target.Schedule]);
        before = Snapshot(target);
        ((Action)(() => target.Load(noScaler))).Should().Throw<ArgumentException>().WithMessage("*no gradient scaler*");
        Snapshot(target).Should().Equal(before);
    }

    [Fact]
    public void Saving_refuses_values_it_cannot_hold_and_leaves_the_file_alone()
    {
        using var run = new Run(seed: 14);
        var path = Path.Combine(_dir, "keep.ckpt");
        run.Save(path, new Dictionary<string, object> { ["step"] = 1L });
        var bytes = File.ReadAllBytes(path);

        ((Action)(() => run.Save(path, new Dictionary<string, object> { ["when"] = DateTime.Now })))
            .Should().Throw<ArgumentException>().WithMessage("*'when'*DateTime*");
        ((Action)(() => run.Save(path, new Dictionary<string, object> { [""] = 1 }))).Should().Throw<ArgumentException>();
        File.ReadAllBytes(path).Should().Equal(bytes);
        Directory.GetFiles(_dir).Should().ContainSingle();
    }
}

[CollectionDefinition(nameof(TrainingCheckpointTests), DisableParallelization = true)]
public sealed class TrainingCheckpointTestsCollection;
