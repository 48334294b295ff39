using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Formats;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Tests;

/// <summary>The TorchSharp format's per-algorithm layouts, and damaged TorchSharp files.</summary>
public class TorchSharpFormatTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("optim-tsformat").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    [Fact]
    public void The_catalog_knows_which_algorithms_have_a_TorchSharp_layout_and_each_layout_fits_its_schema()
    {
        AlgorithmCatalog.All.Where(a => a.TorchSharpLayout is not null).Select(a => (a.Name, a.TorchSharpLayout!.ClassName))
            .Should().Equal(("SGD", "SGD"), ("Adam", "Adam"), ("AdamW", "AdamW"), ("Adagrad", "Adagrad"), ("RMSprop", "RMSProp"),
                ("Adadelta", "Adadelta"), ("Adamax", "Adamax"), ("ASGD", "ASGD"), ("NAdam", "NAdam"), ("RAdam", "RAdam"), ("Rprop", "Rprop"));
        foreach (var algorithm in AlgorithmCatalog.All.Where(a => a.TorchSharpLayout is not null))
        {
            var layout = algorithm.TorchSharpLayout!;
            foreach (var name in layout.OptionFields)
                algorithm.Schema.Find(name)!.Type.Should().BeOneOf(new[] { HyperparameterType.Double, HyperparameterType.Bool, HyperparameterType.DoublePair }, $"{algorithm.Name}.{name}");
            foreach (var (name, value) in layout.FixedOptions)
                value.Should().BeOfType(algorithm.Schema.Find(name)!.ValueType);
            // Every hyperparameter but implementation is written or fixed: nothing is silently dropped.
            algorithm.Schema.Select(h => h.Name).Except(new[] { "lr", "implementation" })
                .Should().BeEquivalentTo(layout.OptionFields.Concat(layout.FixedOptions.Select(f => f.Key)), algorithm.Name);
        }
    }

    [Fact]
    public void An_algorithm_without_a_layout_is_an_explicit_error()
    {
        using var opt = new SGDMomentumNesterov(new[] { new Parameter(torch.zeros(2)) });
        var layout = () => TorchSharpCheckpoint.LayoutOf(opt);
        layout.Should().Throw<NotSupportedException>().WithMessage("*SGDMomentumNesterov*");
    }

    // TorchSharp 0.107's Rprop cannot step float32 parameters (an index_put_ of a float64 scalar; float64 ones here get
    // through one step; see TorchSharp_Rprop_cannot_train), so its file comes from float64 parameters.
    private static IReadOnlyList<Parameter> Params(string algorithm = "")
    {
        var dtype = algorithm == "Rprop" ? ScalarType.Float64 : ScalarType.Float32;
        return new[]
        {
            new Parameter(torch.tensor(new[] { 0.5f, -1f, 2f }).to(dtype)),
            new Parameter(torch.tensor(new[] { 1f, 0.25f, -0.5f, 3f }).reshape(2, 2).to(dtype)),
        };
    }

    private byte[] TorchSharpFile(string name, Func<IReadOnlyList<Parameter>, OptimizerHelper> create, string algorithm = "")
    {
        var ps = Params(algorithm);
        var ts = create(ps);
        foreach (var p in ps) p.grad = torch.ones_like(p) * 0.5;
        ts.step();
        var path = Path.Combine(_dir, name);
        ts.save_state_dict(path);
        return System.IO.File.ReadAllBytes(path);
    }

    public static TheoryData<string> Algorithms => new() { "Adam", "SGD", "Adagrad", "RMSprop", "Adadelta", "Adamax", "ASGD", "NAdam", "RAdam", "Rprop" };

    private static Optimizer Ours(string algorithm, IReadOnlyList<Parameter> ps) => algorithm switch
    {
        "Adam" => new Adam(ps, 0.01, amsgrad: true),
        "SGD" => new SGD(ps, 0.1, momentum: 0.9),
        "Adagrad" => new Adagrad(ps, 0.1),
        "Adadelta" => new Adadelta(ps, 0.5),
        "Adamax" => new Adamax(ps, 0.01),
        "ASGD" => new ASGD(ps, 0.01, t0: 0),
        "NAdam" => new NAdam(ps, 0.01),
        "RAdam" => new RAdam(ps, 0.01),
        "Rprop" => new Rprop(ps, 0.01),
        _ => new RMSprop(ps, 0.01, momentum: 0.5, centered: true),
    };

    private byte[] FileOf(string algorithm) => algorithm switch
    {
        "Adam" => TorchSharpFile("adam.bin", ps => torch.optim.Adam(ps, lr: 0.01, amsgrad: true)),
        "SGD" => TorchSharpFile("sgd.bin", ps => torch.optim.SGD(ps, 0.1, momentum: 0.9)),
        "Adagrad" => TorchSharpFile("adagrad.bin", ps => torch.optim.Adagrad(ps, 0.1)),
        "Adadelta" => TorchSharpFile("adadelta.bin", ps => torch.optim.Adadelta(ps, 0.5)),
        "Adamax" => TorchSharpFile("adamax.bin", ps => torch.optim.Adamax(ps, 0.01)),
        "ASGD" => TorchSharpFile("asgd.bin", ps => torch.optim.ASGD(ps, 0.01, t0: 0)),
        "NAdam" => TorchSharpFile("nadam.bin", ps => torch.optim.NAdam(ps, 0.01)),
        "RAdam" => TorchSharpFile("radam.bin", ps => torch.optim.RAdam(ps, 0.01)),
        "Rprop" => TorchSharpFile("rprop.bin", ps => torch.optim.Rprop(ps, 0.01), "Rprop"),
        _ => TorchSharpFile("rmsprop.bin", ps => torch.optim.RMSProp(ps, 0.01, momentum: 0.5, centered: true)),
    };

    [Theory]
    [MemberData(nameof(Algorithms))]
    public void Truncated_and_bit_flipped_TorchSharp_files_never_crash_and_a_failed_load_changes_nothing(string algorithm)
    {
        var bytes = FileOf(algorithm);
        var ps = Params(algorithm);
        using var ours = Ours(algorithm, ps);
        ours.LoadTorchSharp(new MemoryStream(bytes));
        var before = StateSnapshot.Of(ours, ps);

        for (var length = 0; length < bytes.Length; length++)
        {
            var load = () => ours.LoadTorchSharp(new MemoryStream(bytes, 0, length));
            load.Should().Throw<InvalidDataException>($"the file cut at {length} of {bytes.Length} bytes");
        }
        StateSnapshot.Of(ours, ps).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());

        // The format has no checksum: a flip inside tensor data or a double loads as another value. Anything else must be
        // InvalidDataException (damaged) or ArgumentException (well-formed, but not for this optimizer), and change nothing.
        var random = new Random(7);
        for (var trial = 0; trial < 400; trial++)
        {
            var damaged = (byte[])bytes.Clone();
            var at = random.Next(damaged.Length);
            damaged[at] ^= (byte)(1 << random.Next(8));
            try
            {
                ours.LoadTorchSharp(new MemoryStream(damaged));
                ours.LoadTorchSharp(new MemoryStream(bytes)); // back to the original for the next trial
            }
            catch (Exception e) when (e is InvalidDataException or ArgumentException)
            {
                StateSnapshot.Of(ours, ps).Should().BeEquivalentTo(before, o => o.WithStrictOrdering(), $"a failed load of a flip at byte {at} changes nothing");
            }
        }
    }

    [Theory]
    [InlineData("overflowing dims")]
    [InlineData("zero dim with overflowing strides")]
    [InlineData("claims more than the file")]
    [InlineData("quantized dtype")]
    [InlineData("unknown dtype")]
    [InlineData("too many dims")]
    public void A_damaged_tensor_frame_is_invalid_data_not_a_native_error(string damage)
    {
        var bytes = FileOf("SGD");
        // SGD: class name (1 + 3) | counts (1 + 1) | group: 7 f64 (initial_lr, lr, momentum, dampening, weight_decay) and 2 bools
        // | first state: has momentum_buffer (1) | dtype (LEB128) | ndim | dims | data.
        var frame = 1 + 3 + 2 + 5 * 8 + 2 + 1;
        bytes[frame].Should().Be((byte)ScalarType.Float32);
        bytes[frame + 1].Should().Be(1);
        bytes[frame + 2].Should().Be(3);
        var rest = bytes[(frame + 3)..];
        var head = bytes[..frame].ToList();
        static IEnumerable<byte> Leb(long v)
        {
            do
            {
                var b = (byte)(v & 0x7f);
                v >>= 7;
                yield return v == 0 ? b : (byte)(b | 0x80);
            }
            while (v != 0);
        }
        IEnumerable<byte> newFrame = damage switch
        {
            "overflowing dims" => Leb(6).Concat(Leb(2)).Concat(Leb(1L << 40)).Concat(Leb(1L << 40)),
            "zero dim with overflowing strides" => Leb(6).Concat(Leb(3)).Concat(Leb(0)).Concat(Leb(1L << 62)).Concat(Leb(1L << 62)),
            "claims more than the file" => Leb(6).Concat(Leb(1)).Concat(Leb(1 << 20)),
            "quantized dtype" => Leb((long)ScalarType.QInt8).Concat(Leb(1)).Concat(Leb(3)),
            "unknown dtype" => Leb(1000).Concat(Leb(1)).Concat(Leb(3)),
            _ => Leb(6).Concat(Leb(1000)).Concat(Leb(3)),
        };
        var damaged = head.Concat(newFrame).Concat(rest).ToArray();
        var ps = Params();
        using var ours = Ours("SGD", ps);
        var load = () => ours.LoadTorchSharp(new MemoryStream(damaged));
        load.Should().Throw<InvalidDataException>();
        ours.StateDict().State.Should().BeEmpty();
    }
}
