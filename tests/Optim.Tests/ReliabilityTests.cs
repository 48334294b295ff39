using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Tests;

/// <summary>Corrupted input must fail loudly and change nothing.</summary>
public class ReliabilityTests
{
    private static (SGD Opt, System.Collections.Generic.List<Parameter> Params, byte[] Checkpoint) Trained()
    {
        var c = GoldenCase.Get("sgd.json", "momentum_float32 (Float32)");
        var ps = c.MakeParameters();
        var opt = new SGD(ps, 0.1, momentum: 0.9);
        c.Run(ps, opt, 0, 3);
        using var memory = new MemoryStream();
        opt.Save(memory);
        return (opt, ps, memory.ToArray());
    }

    [Fact]
    public void Every_truncation_of_a_checkpoint_is_rejected_and_changes_nothing()
    {
        var (source, _, bytes) = Trained();
        using var _ = source;
        var (target, ps, _) = Trained();
        using var __ = target;
        target.ParamGroups[0].LearningRate = 0.3;
        var before = StateSnapshot.Of(target, ps);
        for (var length = 0; length < bytes.Length; length++)
        {
            var act = () => target.Load(new MemoryStream(bytes, 0, length));
            act.Should().Throw<InvalidDataException>($"a checkpoint cut at {length} of {bytes.Length} bytes is invalid");
        }
        StateSnapshot.Of(target, ps).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
    }

    [Fact]
    public void Random_byte_flips_are_rejected_and_change_nothing()
    {
        var (source, _, bytes) = Trained();
        using var _ = source;
        var (target, ps, _) = Trained();
        using var __ = target;
        var before = StateSnapshot.Of(target, ps);
        var random = new Random(1234);
        for (var trial = 0; trial < 300; trial++)
        {
            var corrupted = (byte[])bytes.Clone();
            var at = random.Next(corrupted.Length);
            corrupted[at] ^= (byte)(1 << random.Next(8));
            var act = () => target.Load(new MemoryStream(corrupted));
            act.Should().Throw<InvalidDataException>($"flipping a bit of byte {at} corrupts the checkpoint");
        }
        StateSnapshot.Of(target, ps).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
    }

    [Fact]
    public void A_newer_format_version_gets_a_specific_error()
    {
        var (opt, _, bytes) = Trained();
        using var _ = opt;
        bytes[8] = 99; // the version follows the 8-byte magic number
        var act = () => opt.Load(new MemoryStream(bytes));
        act.Should().Throw<InvalidDataException>().WithMessage("checkpoint format version 99 is not supported*");
    }

    [Fact]
    public void Something_that_is_not_a_checkpoint_gets_a_specific_error()
    {
        var (opt, _, _) = Trained();
        using var _ = opt;
        var act = () => opt.Load(new MemoryStream("PK\u0003\u0004 this is a zip file"u8.ToArray()));
        act.Should().Throw<InvalidDataException>().WithMessage("not an Optim checkpoint*");
    }

    [Fact]
    public void A_checkpoint_of_other_parameter_shapes_gets_a_specific_error()
    {
        var (source, _, bytes) = Trained();
        using var _ = source;
        var ps = new[] { new Parameter(torch.zeros(1)), new Parameter(torch.zeros(5)), new Parameter(torch.zeros(4, 3)) };
        using var target = new SGD(ps, 0.1, momentum: 0.9);
        var act = () => target.Load(new MemoryStream(bytes));
        act.Should().Throw<ArgumentException>().WithMessage("*'momentum_buffer' of parameter id 0 has shape []*[1]*");
    }

    [Fact]
    public void A_corrupted_version_1_payload_length_is_rejected_without_allocating_what_it_claims()
    {
        var (opt, ps) = V1Fixtures.Trained("sgd-momentum");
        using var _ = opt;
        var bytes = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", V1Fixtures.FileName("sgd-momentum")));
        var before = StateSnapshot.Of(opt, ps);
        // Version 1: the i64 payload length follows the magic number and the u16 version; claim 256 MiB.
        BitConverter.GetBytes(1L << 28).CopyTo(bytes, 10);
        foreach (var seekable in new[] { true, false })
        {
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var act = () => opt.Load(seekable ? new MemoryStream(bytes) : new ForwardOnlyStream(bytes));
            act.Should().Throw<InvalidDataException>().WithMessage("checkpoint is truncated.");
            (GC.GetAllocatedBytesForCurrentThread() - allocated).Should().BeLessThan(16 << 20, $"a {(seekable ? "seekable" : "forward-only")} stream holds only {bytes.Length} bytes");
        }
        StateSnapshot.Of(opt, ps).Should().Equal(before);
    }

    [Fact]
    public void Every_public_method_throws_ObjectDisposedException_after_Dispose()
    {
        var (source, _, bytes) = Trained();
        using var _ = source;
        var saved = source.StateDict();
        var (opt, ps, _) = Trained();
        opt.Dispose();
        opt.Dispose(); // idempotent
        opt.IsDisposed.Should().BeTrue();
        opt.State.Should().BeEmpty("Dispose frees the state");
        var path = Path.Combine(Path.GetTempPath(), $"optim-disposed-{Guid.NewGuid():N}.ckpt");
        var calls = new Dictionary<string, Action>
        {
            ["step(Func`1)"] = () => opt.step(),
            ["zero_grad()"] = () => opt.zero_grad(),
            ["zero_grad(Boolean)"] = () => opt.zero_grad(set_to_none: false),
            ["parameters()"] = () => opt.parameters(),
            ["StateDict()"] = () => opt.StateDict(),
            ["LoadStateDict(OptimizerStateDict)"] = () => opt.LoadStateDict(saved),
            ["AddParamGroup(ParamGroupSpec`1)"] = () => opt.AddParamGroup(new ParamGroupSpec<SGDOptions>(new[] { new Parameter(torch.ones(1)) })),
            ["add_param_group(ParamGroup)"] = () => opt.add_param_group(new SGDParamGroup(new[] { new Parameter(torch.ones(1)) }, new TorchSharp.Modules.SGD.Options())),
            ["RegisterStepPreHook(Func`3)"] = () => opt.RegisterStepPreHook((o, a) => null),
            ["RegisterStepPostHook(Action`2)"] = () => opt.RegisterStepPostHook((o, a) => { }),
            ["RegisterStateDictPreHook(Action`1,Boolean)"] = () => opt.RegisterStateDictPreHook(o => { }),
            ["RegisterStateDictPostHook(Func`3,Boolean)"] = () => opt.RegisterStateDictPostHook((o, sd) => null),
            ["RegisterLoadStateDictPreHook(Func`3,Boolean)"] = () => opt.RegisterLoadStateDictPreHook((o, sd) => null),
            ["RegisterLoadStateDictPostHook(Action`1,Boolean)"] = () => opt.RegisterLoadStateDictPostHook(o => { }),
        };
        // Checkpoint files are the format layer's extension methods; they refuse a disposed optimizer the same way.
        var extensions = new Dictionary<string, Action>
        {
            ["Save(Stream)"] = () => opt.Save(new MemoryStream()),
            ["Save(String)"] = () => opt.Save(path),
            ["Load(Stream)"] = () => opt.Load(new MemoryStream(bytes)),
            ["Load(String)"] = () => opt.Load(path), // no such file: the disposal must be reported, not the file
            ["SaveTorchSharp(Stream)"] = () => opt.SaveTorchSharp(new MemoryStream()),
            ["SaveTorchSharp(String)"] = () => opt.SaveTorchSharp(path),
            ["LoadTorchSharp(Stream)"] = () => opt.LoadTorchSharp(new MemoryStream(bytes)),
            ["LoadTorchSharp(String)"] = () => opt.LoadTorchSharp(path),
        };
        foreach (var (name, call) in calls.Concat(extensions))
            call.Should().Throw<ObjectDisposedException>($"{name} is called after Dispose");
        File.Exists(path).Should().BeFalse();

        // Every public method is in the list above. Properties stay usable: configuration (ParamGroups, Defaults, options,
        // which schedulers may still set) is plain data, and State is empty.
        typeof(SGD).GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .Where(m => !m.IsSpecialName && m.DeclaringType != typeof(object) && m.Name != nameof(IDisposable.Dispose))
            .Select(m => $"{m.Name}({string.Join(",", m.GetParameters().Select(p => p.ParameterType.Name))})")
            .Should().BeEquivalentTo(calls.Keys);
        opt.ParamGroups.Should().HaveCount(1);
        ps[0].grad = null;
    }

    private sealed class ForwardOnlyStream(byte[] bytes) : Stream
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

    [Fact]
    public void The_opt_in_finiteness_check_names_the_first_bad_gradient_and_changes_nothing()
    {
        var a = new Parameter(torch.ones(2));
        var b = new Parameter(torch.ones(2));
        using var opt = new SGD(new[] { ("encoder.weight", a), ("decoder.bias", b) }, 0.1, momentum: 0.9) { CheckFiniteGradients = true };
        a.grad = torch.ones(2);
        b.grad = torch.tensor(new[] { 1f, float.NaN });
        var act = () => opt.step();
        act.Should().Throw<InvalidOperationException>().WithMessage("*'decoder.bias'*NaN or infinity*");
        a.data<float>().ToArray().Should().Equal(1f, 1f);
        opt.State.Should().BeEmpty();
    }

    [Fact]
    public void Without_the_check_non_finite_gradients_propagate_as_in_PyTorch()
    {
        var p = new Parameter(torch.ones(2));
        using var opt = new SGD(new[] { p }, 0.1);
        p.grad = torch.tensor(new[] { float.PositiveInfinity, 1f });
        opt.step();
        float.IsNegativeInfinity(p.data<float>()[0]).Should().BeTrue();
    }
}
