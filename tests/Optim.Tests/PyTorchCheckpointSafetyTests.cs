using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using Optim.Formats.PyTorch;
using Optim.Tests.Support;
using TorchSharp.Modules;

namespace Optim.Tests;

/// <summary>
/// Loading a PyTorch checkpoint executes nothing and changes nothing unless all of it is valid: hostile pickles,
/// damaged archives and truncated pickles are <see cref="InvalidDataException"/>s and leave the optimizer as it was.
/// </summary>
public class PyTorchCheckpointSafetyTests
{
    private static readonly PyTorchFixtures.Case Sgd = PyTorchFixtures.Get("sgd");

    // A zip as torch.save lays it out, holding the given pickle and storages.
    private static byte[] Archive(byte[] pickle, params (string Key, byte[] Data)[] storages)
    {
        using var s = new MemoryStream();
        var zip = new AlignedZipWriter(s, 64);
        zip.Add("archive/data.pkl", pickle);
        foreach (var (key, data) in storages) zip.Add($"archive/data/{key}", data);
        zip.Add("archive/version", "3\n"u8.ToArray());
        zip.Finish();
        return s.ToArray();
    }

    private static byte[] Pickle(string text) => Encoding.Latin1.GetBytes(text);

    private static (SGD Optimizer, List<Parameter> Ps) Trained()
    {
        var ps = Sgd.Parameters();
        var optimizer = new SGD(ps, lr: 0.1, momentum: 0.9);
        optimizer.LoadPyTorch(Sgd.Path);
        return (optimizer, ps);
    }

    public static TheoryData<string, string, string> Hostile => new()
    {
        // name, pickle (Latin-1), what the message names
        { "os.system via GLOBAL and REDUCE", "\u0080\u0002cos\nsystem\nX\u000a\u0000\u0000\u0000echo pwned\u0085R.", "os.system" },
        { "builtins.eval via GLOBAL", "\u0080\u0002cbuiltins\neval\nX\u0004\u0000\u0000\u00001+1\u0085R.", "builtins.eval" },
        { "builtins.eval via STACK_GLOBAL", "\u0080\u0004X\u0008\u0000\u0000\u0000builtinsX\u0004\u0000\u0000\u0000eval\u0093X\u0004\u0000\u0000\u00001+1\u0085R.", "builtins.eval" },
        { "getattr to reach anything", "\u0080\u0002c__builtin__\ngetattr\n.", "__builtin__.getattr" },
        { "torch.load itself", "\u0080\u0002ctorch\nload\n.", "torch.load" },
        { "INST (protocol 0 object creation)", "(ios\nsystem\nX\u0002\u0000\u0000\u0000ls.", "opcode 0x69" },
        { "OBJ", "(cos\nsystem\no.", "os.system" },
        { "NEWOBJ on an allowed class", "\u0080\u0002ccollections\nOrderedDict\n)\u0081.", "opcode 0x81" },
        { "REDUCE on a storage type", "\u0080\u0002ctorch\nFloatStorage\n)R.", "a call of" },
        { "OrderedDict built from arguments", "\u0080\u0002ccollections\nOrderedDict\n]\u0085R.", "OrderedDict built from arguments" },
        { "a persistent id that is not a storage", "\u0080\u0002X\u0001\u0000\u0000\u0000xQ.", "persistent id" },
        { "a list key", "\u0080\u0002}]K\u0001s.", "dict key" },
        { "a memo key never stored", "\u0080\u0002h\u0005.", "memo key" },
        { "an integer beyond 64 bits", "\u0080\u0002\u008a\u0009\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0001.", "64 bits" },
        { "a string longer than the pickle", "\u0080\u0002X\u00ff\u00ff\u00ff\u007fabc.", "truncated" },
        { "two values at STOP", "\u0080\u0002K\u0001K\u0002.", "exactly one value" },
        { "protocol 0 text opcodes", "I1\n.", "opcode 0x49" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void A_hostile_pickle_is_refused_without_running_anything(string name, string pickle, string named)
    {
        var (optimizer, ps) = Trained();
        using var _ = optimizer;
        var before = StateSnapshot.Of(optimizer, ps);
        using var file = new MemoryStream(Archive(Pickle(pickle)));
        optimizer.Invoking(o => o.LoadPyTorch(file)).Should().Throw<InvalidDataException>(name).WithMessage($"*{named}*");
        StateSnapshot.Of(optimizer, ps).Should().Equal(before);
    }

    // The SGD fixture's state dict, re-pickled here with hostile storages.
    private static string StateDictWithTensor(string storageType, long count, long offset, string shape, string stride) =>
        "\u0080\u0002}(X\u0005\u0000\u0000\u0000state}K\u0000}X\u000f\u0000\u0000\u0000momentum_buffer" +
        $"ctorch._utils\n_rebuild_tensor_v2\n((X\u0007\u0000\u0000\u0000storagectorch\n{storageType}\nX\u0001\u0000\u0000\u00000X\u0003\u0000\u0000\u0000cpu\u008a\u0008{Long(count)}tQ" +
        $"\u008a\u0008{Long(offset)}{shape}{stride}\u0089ccollections\nOrderedDict\n)RtRssX\u000c\u0000\u0000\u0000param_groups]u.";

    private static string Long(long v) => Encoding.Latin1.GetString(BitConverter.GetBytes(v));

    public static TheoryData<string, string, int, string> BadTensors => new()
    {
        { "storage smaller than its data", StateDictWithTensor("DoubleStorage", 4, 0, "K\u0005\u0085", "K\u0001\u0085"), 40, "holds 40 bytes" },
        { "a view beyond the storage", StateDictWithTensor("DoubleStorage", 5, 1, "K\u0005\u0085", "K\u0001\u0085"), 40, "beyond" },
        { "a negative offset", StateDictWithTensor("DoubleStorage", 5, -1, "K\u0005\u0085", "K\u0001\u0085"), 40, "starts at -1" },
        { "a storage of 2^60 elements", StateDictWithTensor("DoubleStorage", 1L << 60, 0, "K\u0005\u0085", "K\u0001\u0085"), 40, "overflows" },
        { "sizes and strides of different lengths", StateDictWithTensor("DoubleStorage", 5, 0, "K\u0005\u0085", ")"), 40, "strides" },
        { "an unknown storage type", StateDictWithTensor("QUInt8Storage", 5, 0, "K\u0005\u0085", "K\u0001\u0085"), 5, "torch.QUInt8Storage" },
    };

    [Theory]
    [MemberData(nameof(BadTensors))]
    public void A_tensor_that_does_not_fit_its_storage_is_refused(string name, string pickle, int dataBytes, string named)
    {
        var (optimizer, ps) = Trained();
        using var _ = optimizer;
        var before = StateSnapshot.Of(optimizer, ps);
        using var file = new MemoryStream(Archive(Pickle(pickle), ("0", new byte[dataBytes])));
        optimizer.Invoking(o => o.LoadPyTorch(file)).Should().Throw<InvalidDataException>(name).WithMessage($"*{named}*");
        StateSnapshot.Of(optimizer, ps).Should().Equal(before);
    }

    [Fact]
    public void The_hand_built_state_dict_is_valid_when_nothing_is_wrong()
    {
        // The builder of the cases above, with a fitting storage: it loads (so the refusals are the fault's, not the builder's).
        var ps = new List<Parameter> { new(TorchSharp.torch.zeros(5, TorchSharp.torch.float64)) };
        using var optimizer = new SGD(ps, lr: 0.1, momentum: 0.9);
        var pickle = StateDictWithTensor("DoubleStorage", 5, 0, "K\u0005\u0085", "K\u0001\u0085").Replace("param_groups]u.", "param_groups](}(X\u0002\u0000\u0000\u0000lrG?\u00b9\u0099\u0099\u0099\u0099\u0099\u009aX\u0006\u0000\u0000\u0000params]K\u0000aueu.", StringComparison.Ordinal);
        using var file = new MemoryStream(Archive(Pickle(pickle), ("0", BitConverter.GetBytes(2.5).Concat(new byte[32]).ToArray())));
        optimizer.LoadPyTorch(file);
        optimizer.State[ps[0]]["momentum_buffer"].data<double>().ToArray().Should().Equal(2.5, 0, 0, 0, 0);
    }

    [Fact]
    public void Every_truncation_of_the_file_or_of_its_pickle_is_refused_and_changes_nothing()
    {
        var (optimizer, ps) = Trained();
        using var _ = optimizer;
        var before = StateSnapshot.Of(optimizer, ps);
        var bytes = File.ReadAllBytes(Sgd.Path);
        for (var n = 0; n < bytes.Length; n++)
        {
            using var file = new MemoryStream(bytes, 0, n);
            optimizer.Invoking(o => o.LoadPyTorch(file)).Should().Throw<InvalidDataException>($"the file cut at {n} of {bytes.Length} bytes");
        }
        var (pickle, storages) = Contents(bytes);
        for (var n = 0; n < pickle.Length; n++)
        {
            using var file = new MemoryStream(Archive(pickle[..n], storages));
            optimizer.Invoking(o => o.LoadPyTorch(file)).Should().Throw<InvalidDataException>($"the pickle cut at {n} of {pickle.Length} bytes");
        }
        StateSnapshot.Of(optimizer, ps).Should().Equal(before);
    }

    [Fact]
    public void Flipped_bits_are_refused_with_nothing_changed_or_load_as_what_they_say()
    {
        var bytes = File.ReadAllBytes(Sgd.Path);
        var (pickle, storages) = Contents(bytes);
        var random = new Random(1234);
        var (optimizer, ps) = Trained();
        using var _ = optimizer;
        var refused = 0;
        // Every byte of the pickle and 400 random bytes of the file, one bit each.
        var damaged = Enumerable.Range(0, pickle.Length).Select(i => Archive(Flip(pickle, i, random.Next(8)), storages))
            .Concat(Enumerable.Range(0, 400).Select(_ => Flip(bytes, random.Next(bytes.Length), random.Next(8))));
        foreach (var file in damaged)
        {
            var before = StateSnapshot.Of(optimizer, ps);
            try
            {
                optimizer.LoadPyTorch(new MemoryStream(file));
            }
            catch (Exception e) when (e is InvalidDataException or ArgumentException)
            {
                refused++;
                StateSnapshot.Of(optimizer, ps).Should().Equal(before, e.Message);
            }
        }
        refused.Should().BeGreaterThan(pickle.Length / 2, "most damage to a pickle is detected");
    }

    private static byte[] Flip(byte[] bytes, int index, int bit)
    {
        var copy = (byte[])bytes.Clone();
        copy[index] ^= (byte)(1 << bit);
        return copy;
    }

    private static (byte[] Pickle, (string, byte[])[] Storages) Contents(byte[] file)
    {
        using var zip = new ZipArchive(new MemoryStream(file));
        byte[] Read(ZipArchiveEntry e)
        {
            using var s = e.Open();
            using var m = new MemoryStream();
            s.CopyTo(m);
            return m.ToArray();
        }
        var pickle = Read(zip.Entries.Single(e => e.Name == "data.pkl"));
        var storages = zip.Entries.Where(e => e.FullName.Contains("/data/", StringComparison.Ordinal)).Select(e => (e.Name, Read(e))).ToArray();
        return (pickle, storages);
    }
    // A stream that can seek gets each entry's bytes once and the CRC patched in; one that cannot gets them twice. The
    // archives are the same bytes, which .NET's zip reader accepts (it checks every CRC).
    [Fact]
    public void The_archive_is_the_same_on_streams_that_seek_and_streams_that_do_not()
    {
        var (optimizer, _) = Trained();
        using var _ = optimizer;
        using var seekable = new MemoryStream();
        optimizer.SavePyTorch(seekable);
        using var forwardOnly = new WriteOnlyForward();
        optimizer.SavePyTorch(forwardOnly);
        forwardOnly.Bytes.ToArray().Should().Equal(seekable.ToArray());
        using var zip = new ZipArchive(new MemoryStream(seekable.ToArray()), ZipArchiveMode.Read);
        foreach (var entry in zip.Entries)
        {
            using var data = entry.Open();
            data.CopyTo(Stream.Null);
        }
    }

    // Where the writer runs twice, it must write the same bytes both times: the header's CRC is of the first.
    [Fact]
    public void An_entry_that_writes_other_bytes_the_second_time_is_an_error()
    {
        using var sink = new WriteOnlyForward();
        var zip = new AlignedZipWriter(sink, 64);
        var calls = 0;
        var act = () => zip.Add("archive/data/0", 4, s => s.Write(new byte[] { 1, 2, 3, (byte)calls++ }));
        act.Should().Throw<InvalidOperationException>().WithMessage("*wrote different bytes on its second pass*");
    }

    private sealed class WriteOnlyForward : Stream
    {
        public MemoryStream Bytes { get; } = new();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() { }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Bytes.Write(buffer, offset, count);

        protected override void Dispose(bool disposing)
        {
            if (disposing) Bytes.Dispose();
            base.Dispose(disposing);
        }
    }
}
