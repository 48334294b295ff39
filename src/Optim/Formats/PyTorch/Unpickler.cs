using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace Optim.Formats.PyTorch;

/// <summary>
/// A restricted pickle reader: the opcodes <c>torch.save</c> emits (protocols 2 to 5, no out-of-band buffers) and only
/// the globals <c>torch.load(weights_only=True)</c> allows that state dicts need (<c>collections.OrderedDict</c>,
/// <c>collections.Counter</c>, <c>torch._utils._rebuild_tensor_v2</c>, <c>torch._utils._rebuild_parameter</c>, the typed storages). Nothing from
/// the file is executed or looked up by name: a global outside the list, an opcode outside the set, a call of anything
/// but those functions, and any malformed or truncated input is an <see cref="InvalidDataException"/>.
/// </summary>
internal sealed class Unpickler
{
    /// <summary>A storage named by a persistent id: its key in the archive, dtype and element count.</summary>
    internal sealed record StorageRef(string Key, ScalarType Dtype, long Count);

    /// <summary>An allowlisted global, pushed by <c>GLOBAL</c>/<c>STACK_GLOBAL</c>.</summary>
    private sealed record Global(string Module, string Name);

    // A marker on the stack (MARK).
    private sealed class Mark
    {
        public static readonly Mark Instance = new();
    }

    private static readonly Dictionary<string, ScalarType> Storages = new()
    {
        ["DoubleStorage"] = ScalarType.Float64, ["FloatStorage"] = ScalarType.Float32, ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16, ["LongStorage"] = ScalarType.Int64, ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16, ["CharStorage"] = ScalarType.Int8, ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool, ["ComplexFloatStorage"] = ScalarType.ComplexFloat32,
        ["ComplexDoubleStorage"] = ScalarType.ComplexFloat64,
    };

    /// <summary>The storage type's name for <paramref name="dtype"/> (<c>torch.FloatStorage</c> without the module).</summary>
    public static string StorageName(ScalarType dtype)
    {
        foreach (var (name, type) in Storages)
        {
            if (type == dtype) return name;
        }
        throw new NotSupportedException($"PyTorch checkpoints have no storage type for {dtype}.");
    }

    private readonly byte[] _data;
    private readonly Func<StorageRef, long, long[], long[], Tensor> _rebuildTensor;
    private readonly List<object?> _stack = new();
    private readonly Dictionary<long, object?> _memo = new();
    private int _pos;

    private Unpickler(byte[] data, Func<StorageRef, long, long[], long[], Tensor> rebuildTensor)
    {
        _data = data;
        _rebuildTensor = rebuildTensor;
    }

    /// <summary>Reads the one value <paramref name="data"/> pickles.</summary>
    /// <param name="data">The whole pickle.</param>
    /// <param name="rebuildTensor">Makes a tensor from a storage, offset, shape and strides (validating them).</param>
    public static object? Load(byte[] data, Func<StorageRef, long, long[], long[], Tensor> rebuildTensor) =>
        new Unpickler(data, rebuildTensor).Run();

    private object? Run()
    {
        while (true)
        {
            var op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    if (ReadByte() is < 2 or > 5) throw Bad("an unsupported pickle protocol");
                    break;
                case 0x95: // FRAME: only a hint
                    ReadBytes(8);
                    break;
                case (byte)'.': // STOP
                    if (_stack.Count != 1 || _stack[0] is Mark) throw Bad("a stack that does not hold exactly one value at STOP");
                    if (_pos != _data.Length) throw Bad("bytes after STOP");
                    return _stack[0];
                case (byte)'(':
                    _stack.Add(Mark.Instance);
                    break;
                case (byte)'0': // POP
                    Pop();
                    break;
                case (byte)'1': // POP_MARK
                    PopToMark();
                    break;
                case (byte)'2': // DUP
                    _stack.Add(Peek());
                    break;
                case (byte)'N':
                    _stack.Add(null);
                    break;
                case 0x88:
                    _stack.Add(true);
                    break;
                case 0x89:
                    _stack.Add(false);
                    break;
                case (byte)'J': // BININT
                    _stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4)));
                    break;
                case (byte)'K': // BININT1
                    _stack.Add((long)ReadByte());
                    break;
                case (byte)'M': // BININT2
                    _stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2)));
                    break;
                case 0x8a: // LONG1
                    _stack.Add(ReadLong(ReadByte()));
                    break;
                case 0x8b: // LONG4
                    _stack.Add(ReadLong(ReadLength(BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4)))));
                    break;
                case (byte)'G': // BINFLOAT, big-endian
                    _stack.Add(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8)));
                    break;
                case (byte)'X': // BINUNICODE
                    _stack.Add(ReadString(ReadLength(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    _stack.Add(ReadString(ReadByte()));
                    break;
                case 0x8d: // BINUNICODE8
                    _stack.Add(ReadString(ReadLength(BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8)))));
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    _stack.Add(ReadBytes(ReadByte()).ToArray());
                    break;
                case (byte)'B': // BINBYTES
                    _stack.Add(ReadBytes(ReadLength(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))).ToArray());
                    break;
                case (byte)'}':
                    _stack.Add(new PyDict());
                    break;
                case (byte)']':
                    _stack.Add(new List<object?>());
                    break;
                case (byte)')':
                    _stack.Add(new PyTuple(Array.Empty<object?>()));
                    break;
                case (byte)'t':
                    _stack.Add(new PyTuple(PopToMark()));
                    break;
                case 0x85:
                    _stack.Add(PyTuple.Of(Pop()));
                    break;
                case 0x86:
                {
                    var b = Pop();
                    _stack.Add(PyTuple.Of(Pop(), b));
                    break;
                }
                case 0x87:
                {
                    var c = Pop();
                    var b = Pop();
                    _stack.Add(PyTuple.Of(Pop(), b, c));
                    break;
                }
                case (byte)'l': // LIST
                    _stack.Add(PopToMark());
                    break;
                case (byte)'d': // DICT
                {
                    var items = PopToMark();
                    var dict = new PyDict();
                    SetItems(dict, items);
                    _stack.Add(dict);
                    break;
                }
                case (byte)'a': // APPEND
                {
                    var item = Pop();
                    AsList(Peek()).Add(item);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    var items = PopToMark();
                    AsList(Peek()).AddRange(items);
                    break;
                }
                case (byte)'s': // SETITEM
                {
                    var value = Pop();
                    var key = Pop();
                    AsDict(Peek()).Set(key, value);
                    break;
                }
                case (byte)'u': // SETITEMS
                {
                    var items = PopToMark();
                    SetItems(AsDict(Peek()), items);
                    break;
                }
                case (byte)'q': // BINPUT
                    _memo[ReadByte()] = Peek();
                    break;
                case (byte)'r': // LONG_BINPUT
                    _memo[BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))] = Peek();
                    break;
                case 0x94: // MEMOIZE
                    _memo[_memo.Count] = Peek();
                    break;
                case (byte)'h': // BINGET
                    _stack.Add(Memo(ReadByte()));
                    break;
                case (byte)'j': // LONG_BINGET
                    _stack.Add(Memo(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))));
                    break;
                case (byte)'c': // GLOBAL
                {
                    var module = ReadLine();
                    _stack.Add(Allow(module, ReadLine()));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop() as string ?? throw Bad("STACK_GLOBAL without a name");
                    var module = Pop() as string ?? throw Bad("STACK_GLOBAL without a module");
                    _stack.Add(Allow(module, name));
                    break;
                }
                case (byte)'Q': // BINPERSID
                    _stack.Add(PersistentLoad(Pop()));
                    break;
                case (byte)'R': // REDUCE
                {
                    var args = Pop() as PyTuple ?? throw Bad("REDUCE whose arguments are not a tuple");
                    var callable = Pop();
                    _stack.Add(Reduce(callable, args.Items));
                    break;
                }
                case (byte)'b': // BUILD: an OrderedDict's attributes (a state dict's _metadata), which we don't need
                {
                    var state = Pop();
                    if (Peek() is not PyDict { Kind: PyDictKind.OrderedDict } || state is not (PyDict or null))
                        throw Bad("BUILD on something other than an OrderedDict");
                    break;
                }
                default:
                    throw Bad($"opcode 0x{op:x2}, which a state dict saved by torch.save does not use");
            }
        }
    }

    private static InvalidDataException Bad(string what) => new($"the checkpoint's pickle is invalid or unsupported: {what}.");

    private byte ReadByte()
    {
        if (_pos >= _data.Length) throw Bad("it ends early (truncated)");
        return _data[_pos++];
    }

    private ReadOnlySpan<byte> ReadBytes(int count)
    {
        if (count < 0 || count > _data.Length - _pos) throw Bad("it ends early (truncated)");
        var span = _data.AsSpan(_pos, count);
        _pos += count;
        return span;
    }

    private int ReadLength(ulong length) => length > (ulong)(_data.Length - _pos) ? throw Bad("it ends early (truncated)") : (int)length;

    private int ReadLength(long length) => length < 0 ? throw Bad("a negative length") : ReadLength((ulong)length);

    private string ReadString(int length)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(ReadBytes(length));
        }
        catch (DecoderFallbackException)
        {
            throw Bad("a string that is not UTF-8");
        }
    }

    private string ReadLine()
    {
        var end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0 || end - _pos > 256) throw Bad("a GLOBAL name that does not end");
        var line = Encoding.ASCII.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return line;
    }

    private long ReadLong(int length)
    {
        var value = new BigInteger(ReadBytes(length), isUnsigned: false, isBigEndian: false);
        if (value < long.MinValue || value > long.MaxValue) throw Bad("an integer beyond 64 bits");
        return (long)value;
    }

    private object? Pop()
    {
        if (_stack.Count == 0 || _stack[^1] is Mark) throw Bad("an opcode that needs a value the stack does not have");
        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Peek() => _stack.Count == 0 || _stack[^1] is Mark ? throw Bad("an opcode that needs a value the stack does not have") : _stack[^1];

    private List<object?> PopToMark()
    {
        var mark = _stack.FindLastIndex(v => v is Mark);
        if (mark < 0) throw Bad("no MARK");
        var items = _stack.GetRange(mark + 1, _stack.Count - mark - 1);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private object? Memo(long key) => _memo.TryGetValue(key, out var value) ? value : throw Bad($"a memo key ({key}) that was never stored");

    private static List<object?> AsList(object? value) => value as List<object?> ?? throw Bad($"APPEND to a {PyValues.TypeName(value)}");

    private static PyDict AsDict(object? value) => value as PyDict ?? throw Bad($"SETITEM on a {PyValues.TypeName(value)}");

    private static void SetItems(PyDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad("SETITEMS with an odd number of values");
        for (var i = 0; i < items.Count; i += 2) dict.Set(items[i], items[i + 1]);
    }

    // torch.load(weights_only=True) allows more (torch.Size, dtypes, devices, ...); state dicts need only these.
    private static Global Allow(string module, string name)
    {
        var allowed = (module, name) switch
        {
            ("collections", "OrderedDict" or "Counter") => true,
            ("torch._utils", "_rebuild_tensor_v2" or "_rebuild_parameter") => true,
            ("torch", _) => Storages.ContainsKey(name),
            _ => false,
        };
        if (!allowed)
            throw new InvalidDataException(
                $"the checkpoint's pickle refers to '{module}.{name}', which is not allowed: only what a state dict needs of torch.load(weights_only=True)'s allowlist is (nothing in the file is executed).");
        return new Global(module, name);
    }

    // torch.save's persistent ids: ('storage', storage type, key, location, element count).
    private static StorageRef PersistentLoad(object? pid)
    {
        if (pid is not PyTuple { Items: [string kind, Global { Module: "torch" } type, string key, string, long count] } || kind != "storage")
            throw Bad("a persistent id that is not a storage");
        if (count < 0) throw Bad("a storage with a negative size");
        return new StorageRef(key, Storages[type.Name], count);
    }

    private object? Reduce(object? callable, IReadOnlyList<object?> args)
    {
        switch (callable)
        {
            case Global { Module: "collections", Name: "OrderedDict" }:
                if (args.Count != 0) throw Bad("an OrderedDict built from arguments");
                return new PyDict(PyDictKind.OrderedDict);
            case Global { Module: "collections", Name: "Counter" }:
                // Counter.__reduce__: (Counter, (dict(self),)).
                var counter = new PyDict(PyDictKind.Counter);
                if (args is [PyDict items])
                {
                    foreach (var (k, v) in items.Entries) counter.Set(k, v as long? ?? throw Bad("a Counter whose counts are not ints"));
                }
                else if (args.Count != 0)
                {
                    throw Bad("a Counter built from unexpected arguments");
                }
                return counter;
            case Global { Name: "_rebuild_tensor_v2" }:
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (args.Count is < 6 or > 7 || args[0] is not StorageRef storage || args[1] is not long offset
                    || args[2] is not PyTuple size || args[3] is not PyTuple stride || args[4] is not bool)
                    throw Bad("_rebuild_tensor_v2 with unexpected arguments");
                return _rebuildTensor(storage, offset, Longs(size), Longs(stride));
            case Global { Name: "_rebuild_parameter" }:
                // (data, requires_grad, backward_hooks): a Parameter is loaded as its data.
                if (args.Count != 3 || args[0] is not Tensor data || args[1] is not bool) throw Bad("_rebuild_parameter with unexpected arguments");
                return data;
            default:
                throw Bad($"a call of a {PyValues.TypeName(callable)}");
        }
    }

    private static long[] Longs(PyTuple tuple)
    {
        if (tuple.Items.Count > TensorBytes.MaxDimensions) throw Bad("a tensor with too many dimensions");
        var result = new long[tuple.Items.Count];
        for (var i = 0; i < result.Length; i++) result[i] = tuple.Items[i] as long? ?? throw Bad("a tensor size that is not a tuple of ints");
        return result;
    }
}
