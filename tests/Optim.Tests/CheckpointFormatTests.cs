using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using Optim.Formats;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>Checkpoint format version 2: every value type, streaming, bounded memory, and damage of every kind.</summary>
// Counts native tensors and seeds the global generator: runs alone (see LeakTests).
[Collection(nameof(LeakTests))]
public class CheckpointFormatTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("optim-format").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    private enum Colour
    {
        Red,
        Green,
    }

    // Options with one hyperparameter of every schema type.
    private sealed record EveryTypeOptions : OptimizerOptions
    {
        public static OptionSchema<EveryTypeOptions> Schema { get; } = new OptionSchema<EveryTypeOptions>()
            .Lr()
            .Bool("flag", o => o.Flag, (o, v) => o with { Flag = v })
            .Int("history_size", o => o.HistorySize, (o, v) => o with { HistorySize = v }, Rules.AtLeast(1, "Invalid history_size"))
            .Long("max_eval", o => o.MaxEval, (o, v) => o with { MaxEval = v }, Rules.AtLeast(1L, "Invalid max_eval"))
            .String("line_search_fn", o => o.LineSearch, (o, v) => o with { LineSearch = v }, Rules.OneOf("Invalid line_search_fn", null, "strong_wolfe"))
            .Enum("colour", o => o.Colour, (o, v) => o with { Colour = v }, Rules.Defined<Colour>("colour"))
            .Pair("etas", o => o.Etas, (o, v) => o with { Etas = v }, Rules.Any<(double, double)>())
            .List("milestones", o => o.Milestones, (o, v) => o with { Milestones = v }, Rules.Any<IReadOnlyList<double>>())
            .Implementation();

        public bool Flag { get; init; }

        public int HistorySize { get; init; } = 100;

        public long MaxEval { get; init; } = 125;

        public string? LineSearch { get; init; }

        public Colour Colour { get; init; }

        public (double, double) Etas { get; init; } = (0.5, 1.2);

        public IReadOnlyList<double> Milestones { get; init; } = new[] { 1.0, 2.5 };

        public override OptionSchema GetSchema() => Schema;
    }

    [Fact]
    public void Every_value_type_round_trips_through_the_container()
    {
        var values = new List<KeyValuePair<string, object?>>
        {
            new("double", -0.0), new("nan", double.NaN), new("bool", true), new("int", -7), new("long", long.MinValue),
            new("string", "ünïcode ✓"), new("null", null), new("enum", Implementation.Fused), new("pair", (1.5, double.NegativeInfinity)),
            new("doubles", new[] { 1.0, 2.0, 3.5 }), new("longs", new long[] { 4, -5 }),
            new("tensor", torch.arange(6, ScalarType.Int16).reshape(2, 3)), new("empty", torch.zeros(0, 3)),
            new("scalar", torch.tensor(2.5, ScalarType.BFloat16)),
            new("tensors", new[] { torch.ones(2, ScalarType.Bool), torch.tensor(new[] { 1.0, -2.0 }, ScalarType.ComplexFloat64) }),
        };
        using var memory = new MemoryStream();
        using (var w = new CheckpointWriter(memory, "test"))
        {
            w.BeginSection("first");
            foreach (var (name, value) in values) w.Write(name, value);
            w.BeginSection("second");
            w.Finish();
        }
        memory.Position = 0;
        using var r = CheckpointReader.Open(memory);
        r.Version.Should().Be(2);
        r.Kind.Should().Be("test");
        r.Next(out var section, out _).Should().Be(CheckpointReader.RecordKind.Section);
        section.Should().Be("first");
        foreach (var (name, expected) in values)
        {
            r.Next(out var got, out var value).Should().Be(CheckpointReader.RecordKind.Entry);
            got.Should().Be(name);
            switch (expected)
            {
                case Tensor t: Trajectories.BitwiseEqual((Tensor)value!, t).Should().BeTrue(name); break;
                case Tensor[] ts: ((Tensor[])value!).Zip(ts).Should().OnlyContain(p => Trajectories.BitwiseEqual(p.First, p.Second)); break;
                case Enum e: value.Should().Be(new CheckpointEnum(typeof(Implementation).FullName!, e.ToString())); break;
                case double d: BitConverter.DoubleToInt64Bits((double)value!).Should().Be(BitConverter.DoubleToInt64Bits(d)); break;
                default: value.Should().BeEquivalentTo(expected, o => o.WithStrictOrdering(), name); break;
            }
        }
        r.Next(out section, out _).Should().Be(CheckpointReader.RecordKind.Section);
        section.Should().Be("second");
        r.Next(out _, out _).Should().Be(CheckpointReader.RecordKind.End);
        r.Finish();
        memory.Position.Should().Be(memory.Length);
    }

    [Fact]
    public void A_state_dict_with_every_hyperparameter_type_and_optimizer_wide_state_round_trips()
    {
        var options = new EveryTypeOptions { Flag = true, HistorySize = 7, MaxEval = 1L << 40, LineSearch = "strong_wolfe", Colour = Colour.Green, Etas = (0.25, 1.75), Milestones = new[] { 3.0 } };
        var none = options with { LineSearch = null };
        var sd = new OptimizerStateDict("EveryType",
            new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>
            {
                [0] = new Dictionary<string, Tensor> { ["step"] = torch.tensor(3f), ["buffer"] = torch.randn(3) },
                [2] = new Dictionary<string, Tensor>(),
            },
            new[] { new ParamGroupState(options.ToHyperparameters(), 0.1, new[] { 0, 1 }), new ParamGroupState(none.ToHyperparameters(), 0.2, new[] { 2 }) })
        {
            Global = new Dictionary<string, object>
            {
                ["flat_grad"] = torch.randn(5, ScalarType.Float64),
                ["old_dirs"] = new[] { torch.randn(2), torch.randn(2) },
                ["prev_loss"] = 0.125,
                ["n_iter"] = 12L,
                ["converged"] = false,
                ["note"] = "ok",
            },
        };
        using var memory = new MemoryStream();
        OptimizerCheckpoint.Write(memory, sd);
        memory.Position = 0;
        var back = OptimizerCheckpoint.Read(memory, EveryTypeOptions.Schema);
        try
        {
            back.OptimizerType.Should().Be("EveryType");
            for (var g = 0; g < 2; g++)
            {
                back.ParamGroups[g].Hyperparameters.Select(h => h.Key).Should().Equal(sd.ParamGroups[g].Hyperparameters.Select(h => h.Key));
                back.ParamGroups[g].Hyperparameters.Should().BeEquivalentTo(sd.ParamGroups[g].Hyperparameters, o => o.WithStrictOrdering());
                back.ParamGroups[g].InitialLr.Should().Be(sd.ParamGroups[g].InitialLr);
                back.ParamGroups[g].Params.Should().Equal(sd.ParamGroups[g].Params);
                new EveryTypeOptions().WithHyperparameters(back.ParamGroups[g].Hyperparameters).Should().BeEquivalentTo(g == 0 ? options : none);
            }
            back.ParamGroups[0]["colour"].Should().Be(Colour.Green).And.BeOfType<Colour>();
            back.State.Keys.Should().Equal(0, 2);
            back.State[2].Should().BeEmpty();
            back.State[0].Keys.Should().Equal("step", "buffer");
            foreach (var (key, t) in sd.State[0]) Trajectories.BitwiseEqual(back.State[0][key], t).Should().BeTrue();
            back.Global.Keys.Should().Equal(sd.Global.Keys);
            Trajectories.BitwiseEqual((Tensor)back.Global["flat_grad"], (Tensor)sd.Global["flat_grad"]).Should().BeTrue();
            ((IReadOnlyList<Tensor>)back.Global["old_dirs"]).Should().HaveCount(2);
            back.Global["prev_loss"].Should().Be(0.125);
            back.Global["n_iter"].Should().Be(12L);
            back.Global["converged"].Should().Be(false);
            back.Global["note"].Should().Be("ok");
        }
        finally
        {
            back.DisposeTensors();
        }
    }

    [Fact]
    public void Saving_and_loading_allocate_a_small_buffer_not_the_state()
    {
        // 4 M float32 parameters: 32 MiB of Adam state (exp_avg, exp_avg_sq).
        var p = new Parameter(torch.randn(4L << 20));
        using var opt = new Adam(new[] { p }, lr: 0.01);
        p.grad = torch.randn(4L << 20);
        opt.step();
        var expected = opt.StateDict().DeepCopy();
        var path = Path.Combine(_dir, "big.ckpt");
        opt.Save(path); // warm up (JIT, first-use allocations)
        opt.Load(path);

        var before = GC.GetAllocatedBytesForCurrentThread();
        opt.Save(path);
        var saving = GC.GetAllocatedBytesForCurrentThread() - before;
        opt.State[p]["exp_avg"].zero_();
        before = GC.GetAllocatedBytesForCurrentThread();
        opt.Load(path);
        var loading = GC.GetAllocatedBytesForCurrentThread() - before;

        new FileInfo(path).Length.Should().BeGreaterThan(32L << 20);
        saving.Should().BeLessThan(1 << 20, "saving streams 32 MiB of state through a small buffer");
        loading.Should().BeLessThan(1 << 20, "loading streams 32 MiB of state into new tensors, not managed memory");
        foreach (var (key, t) in expected.State[0]) Trajectories.BitwiseEqual(opt.State[p][key], t).Should().BeTrue(key);
        expected.DisposeTensors();
    }

    [Fact]
    public void A_load_takes_over_the_tensors_it_read_instead_of_copying_them()
    {
        var p = new Parameter(torch.randn(1000));
        using var opt = new Adam(new[] { p });
        p.grad = torch.randn(1000);
        opt.step();
        using var memory = new MemoryStream();
        opt.Save(memory);
        var count = Tensor.TotalCount;
        memory.Position = 0;
        opt.Load(memory);
        Tensor.TotalCount.Should().Be(count, "the staged tensors become the state; nothing is left behind");
    }

    [Fact]
    public void A_stream_is_left_just_after_the_checkpoint_and_a_file_may_not_have_trailing_bytes()
    {
        var (opt, _) = V1Fixtures.Trained("adam-amsgrad-two-groups");
        using var _ = opt;
        using var memory = new MemoryStream();
        opt.Save(memory);
        var length = memory.Length;
        memory.Write("model"u8);
        memory.Position = 0;
        opt.Load(memory);
        memory.Position.Should().Be(length);

        var path = Path.Combine(_dir, "trailing.ckpt");
        File.WriteAllBytes(path, memory.ToArray());
        var load = () => opt.Load(path);
        load.Should().Throw<InvalidDataException>().WithMessage("*5 bytes after the checkpoint*");
    }

    [Fact]
    public void Another_kind_of_checkpoint_is_refused()
    {
        using var memory = new MemoryStream();
        using (var w = new CheckpointWriter(memory, "scheduler")) w.Finish();
        memory.Position = 0;
        using var opt = new SGD(new[] { new Parameter(torch.zeros(1)) }, 0.1);
        var load = () => opt.Load(memory);
        load.Should().Throw<InvalidDataException>().WithMessage("*'scheduler', not an optimizer's state*");
    }

    [Fact]
    public void Every_truncation_and_random_bit_flips_of_an_Adam_checkpoint_are_invalid_data_and_change_nothing()
    {
        var (opt, ps) = V1Fixtures.Trained("adam-amsgrad-two-groups");
        using var _ = opt;
        using var memory = new MemoryStream();
        opt.Save(memory);
        var bytes = memory.ToArray();
        var before = StateSnapshot.Of(opt, ps);
        for (var length = 0; length < bytes.Length; length++)
        {
            foreach (var forwardOnly in new[] { false, true })
            {
                Stream stream = forwardOnly ? new ForwardOnlyStream(bytes[..length]) : new MemoryStream(bytes, 0, length);
                var load = () => opt.Load(stream);
                load.Should().Throw<InvalidDataException>($"a checkpoint cut at {length} of {bytes.Length} bytes is invalid");
            }
        }
        var random = new Random(99);
        for (var trial = 0; trial < 500; trial++)
        {
            var damaged = (byte[])bytes.Clone();
            var at = random.Next(damaged.Length);
            damaged[at] ^= (byte)(1 << random.Next(8));
            var load = () => opt.Load(new MemoryStream(damaged));
            load.Should().Throw<InvalidDataException>($"flipping a bit of byte {at} corrupts the checkpoint");
        }
        StateSnapshot.Of(opt, ps).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
    }

    // A file with one tensor entry whose frame the test then damages: returns the bytes and the frame's offset.
    private static (byte[] Bytes, int Frame) OneTensorFile()
    {
        using var memory = new MemoryStream();
        using (var w = new CheckpointWriter(memory, "t"))
        {
            w.BeginSection("s");
            w.Write("x", torch.zeros(4));
            w.Finish();
        }
        // magic 8 | version 2 | kind 4+1 | section 1+4+1 | entry 1+4+1 | type 1
        return (memory.ToArray(), 8 + 2 + 5 + 6 + 6 + 1);
    }

    public static TheoryData<string> HostileFrames => new() { "dtype", "quantized dtype", "ndim", "negative ndim", "dim", "negative dim", "overflow", "zero dim overflow", "byte count" };

    [Theory]
    [MemberData(nameof(HostileFrames))]
    public void Hostile_tensor_frames_are_invalid_data_without_allocating_what_they_claim(string damage)
    {
        var (bytes, frame) = OneTensorFile();
        var span = bytes.AsSpan(frame);
        BinaryPrimitives.ReadInt32LittleEndian(span).Should().Be((int)ScalarType.Float32);
        BinaryPrimitives.ReadInt32LittleEndian(span[4..]).Should().Be(1);
        switch (damage)
        {
            case "dtype": BinaryPrimitives.WriteInt32LittleEndian(span, 1234); break;
            case "quantized dtype": BinaryPrimitives.WriteInt32LittleEndian(span, (int)ScalarType.QInt8); break;
            case "ndim": BinaryPrimitives.WriteInt32LittleEndian(span[4..], 1 << 30); break;
            case "negative ndim": BinaryPrimitives.WriteInt32LittleEndian(span[4..], -1); break;
            case "dim":
                // A consistent frame claiming 4 TiB: refused against the stream's length, or (forward-only) its allocation fails.
                BinaryPrimitives.WriteInt64LittleEndian(span[8..], 1L << 40);
                BinaryPrimitives.WriteInt64LittleEndian(span[16..], 1L << 42);
                break;
            case "negative dim": BinaryPrimitives.WriteInt64LittleEndian(span[8..], -4); break;
            case "overflow":
                BinaryPrimitives.WriteInt64LittleEndian(span[8..], long.MaxValue / 2);
                break;
            case "zero dim overflow":
            {
                // Three dimensions: [0, 2^62, 2^62] has no elements but libtorch's strides would overflow.
                var longer = new List<byte>(bytes[..(frame + 4)]);
                longer.AddRange(BitConverter.GetBytes(3));
                longer.AddRange(BitConverter.GetBytes(0L));
                longer.AddRange(BitConverter.GetBytes(1L << 62));
                longer.AddRange(BitConverter.GetBytes(1L << 62));
                longer.AddRange(BitConverter.GetBytes(0L));
                longer.AddRange(bytes[(frame + 4 + 4 + 8 + 8 + 16)..]);
                bytes = longer.ToArray();
                break;
            }
            default: BinaryPrimitives.WriteInt64LittleEndian(span[16..], 1L << 40); break;
        }
        foreach (var forwardOnly in new[] { false, true })
        {
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            Stream stream = forwardOnly ? new ForwardOnlyStream(bytes) : new MemoryStream(bytes);
            var read = () =>
            {
                using var r = CheckpointReader.Open(stream);
                while (r.Next(out _, out _) != CheckpointReader.RecordKind.End) { }
                r.Finish();
            };
            read.Should().Throw<InvalidDataException>($"{damage} ({(forwardOnly ? "forward-only" : "seekable")})");
            (GC.GetAllocatedBytesForCurrentThread() - allocated).Should().BeLessThan(1 << 20);
        }
    }

    [Fact]
    public void Hostile_string_and_list_lengths_are_invalid_data_without_allocating_them()
    {
        var (bytes, _) = OneTensorFile();
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(10), 1 << 30); // the kind's length
        foreach (var forwardOnly in new[] { false, true })
        {
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var open = () => CheckpointReader.Open(forwardOnly ? new ForwardOnlyStream(bytes) : new MemoryStream(bytes)).Dispose();
            open.Should().Throw<InvalidDataException>().WithMessage("*invalid length*");
            (GC.GetAllocatedBytesForCurrentThread() - allocated).Should().BeLessThan(1 << 20);
        }

        using var memory = new MemoryStream();
        using (var w = new CheckpointWriter(memory, "t"))
        {
            w.BeginSection("s");
            w.Write("list", new[] { 1.0 });
            w.Finish();
        }
        var list = memory.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(list.AsSpan(8 + 2 + 5 + 6 + 9 + 1), int.MaxValue);
        foreach (var forwardOnly in new[] { false, true })
        {
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var read = () =>
            {
                using var r = CheckpointReader.Open(forwardOnly ? new ForwardOnlyStream(list) : new MemoryStream(list));
                while (r.Next(out _, out _) != CheckpointReader.RecordKind.End) { }
            };
            read.Should().Throw<InvalidDataException>();
            (GC.GetAllocatedBytesForCurrentThread() - allocated).Should().BeLessThan(1 << 20);
        }
    }

    [Fact]
    public void A_file_name_of_235_bytes_saves_atomically()
    {
        var name = new string('n', 230) + ".ckpt";
        Encoding.UTF8.GetByteCount(name).Should().Be(235);
        var path = Path.Combine(_dir, name);
        var (opt, _) = V1Fixtures.Trained("sgd-momentum");
        using var _ = opt;
        opt.Save(path);
        opt.Save(path);
        Directory.GetFiles(_dir).Should().Equal(path);
        opt.Load(path);
    }

    [Fact]
    public void Temporaries_of_killed_saves_are_removed_by_the_next_save_and_live_ones_are_not()
    {
        var path = Path.Combine(_dir, "opt.ckpt");
        var other = Path.Combine(_dir, "other.ckpt");
        var prefix = AtomicFile.TemporaryPrefix(path);
        prefix.Length.Should().BeLessThan(20);
        // What a save killed with SIGKILL leaves: its temporary, half written, that no process holds.
        var stale = new[] { Path.Combine(_dir, prefix + "0123456789ab.tmp"), Path.Combine(_dir, prefix + "ba9876543210.tmp") };
        foreach (var s in stale) File.WriteAllBytes(s, new byte[100]);
        var othersTemporary = Path.Combine(_dir, AtomicFile.TemporaryPrefix(other) + "0123456789ab.tmp");
        File.WriteAllBytes(othersTemporary, new byte[10]);
        // A save in progress (another thread or process) holds its temporary exclusively.
        var live = Path.Combine(_dir, prefix + "aaaaaaaaaaaa.tmp");
        using (var held = new FileStream(live, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            var (opt, _) = V1Fixtures.Trained("sgd-momentum");
            using var _ = opt;
            opt.Save(path);
            stale.Should().OnlyContain(s => !File.Exists(s), "temporaries of killed saves of the same target are removed");
            File.Exists(live).Should().BeTrue("a save in progress keeps its temporary");
            File.Exists(othersTemporary).Should().BeTrue("temporaries of other targets are not this save's business");
        }
        AtomicFile.RemoveStaleTemporaries(path).Should().Be(1);
        Directory.GetFiles(_dir).Should().BeEquivalentTo(new[] { path, othersTemporary });
    }

    [Fact]
    public void The_directory_is_flushed_after_the_rename_on_Linux_and_macOS()
    {
        AtomicFile.SyncDirectory(_dir).Should().Be(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS());
        var missing = () => AtomicFile.SyncDirectory(Path.Combine(_dir, "no-such-directory"));
        if (OperatingSystem.IsLinux()) missing.Should().Throw<IOException>();
    }

    internal sealed class ForwardOnlyStream(byte[] bytes) : Stream
    {
        private readonly MemoryStream _inner = new(bytes);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);

        public override void Flush() { }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
