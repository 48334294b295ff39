using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace Optim.Formats.PyTorch;

/// <summary>
/// Writes a value as <c>torch.save</c> pickles it (protocol 2): dicts, <c>collections.OrderedDict</c>, lists, tuples,
/// str, int, float, bool, None, and tensors as <c>torch._utils._rebuild_tensor_v2</c> over a persistent id naming a
/// typed storage. Those are the only globals it writes, all on <c>torch.load(weights_only=True)</c>'s allowlist.
/// </summary>
internal sealed class Pickler : IDisposable
{
    private readonly MemoryStream _out = new();
    private readonly List<Tensor> _tensors;

    private Pickler(List<Tensor> tensors) => _tensors = tensors;

    /// <summary>The pickle of <paramref name="value"/>; its tensors are appended to <paramref name="tensors"/> (storage key = index).</summary>
    public static byte[] Dump(object? value, List<Tensor> tensors)
    {
        using var p = new Pickler(tensors);
        p._out.Write([0x80, 2]);
        p.Save(value, depth: 0);
        p._out.WriteByte((byte)'.');
        return p._out.ToArray();
    }

    /// <inheritdoc/>
    public void Dispose() => _out.Dispose();

    private void Save(object? value, int depth)
    {
        if (depth > 100) throw new InvalidOperationException("the value is nested too deeply to save.");
        switch (value)
        {
            case null:
                Op('N');
                break;
            case bool b:
                _out.WriteByte(b ? (byte)0x88 : (byte)0x89);
                break;
            case int i:
                SaveLong(i);
                break;
            case long l:
                SaveLong(l);
                break;
            case double d:
                Op('G');
                Span<byte> f = stackalloc byte[8];
                BinaryPrimitives.WriteDoubleBigEndian(f, d);
                _out.Write(f);
                break;
            case string s:
                var bytes = Encoding.UTF8.GetBytes(s);
                Op('X');
                WriteUInt32((uint)bytes.Length);
                _out.Write(bytes);
                break;
            case Tensor t:
                SaveTensor(t);
                break;
            case PyTuple tuple:
                SaveTuple(tuple.Items, depth);
                break;
            case IReadOnlyList<object?> list:
                Op(']');
                if (list.Count == 0) break;
                Op('(');
                foreach (var item in list) Save(item, depth + 1);
                Op('e');
                break;
            case PyDict { Kind: PyDictKind.Counter } counter:
                // Counter.__reduce__: Counter({key: count, ...}).
                Global("collections", "Counter");
                Op('}');
                SaveItems(counter, depth);
                _out.WriteByte(0x85);
                Op('R');
                break;
            case PyDict dict:
                if (dict.Kind == PyDictKind.OrderedDict)
                {
                    Global("collections", "OrderedDict");
                    Op(')');
                    Op('R');
                }
                else
                {
                    Op('}');
                }
                SaveItems(dict, depth);
                break;
            default:
                throw new InvalidOperationException($"a {value.GetType().Name} cannot be saved in a PyTorch checkpoint.");
        }
    }

    private void SaveItems(PyDict dict, int depth)
    {
        if (dict.Count == 0) return;
        Op('(');
        foreach (var (k, v) in dict.Entries)
        {
            Save(k, depth + 1);
            Save(v, depth + 1);
        }
        Op('u');
    }

    private void SaveTuple(IReadOnlyList<object?> items, int depth)
    {
        if (items.Count == 0)
        {
            Op(')');
            return;
        }
        if (items.Count > 3) Op('(');
        foreach (var item in items) Save(item, depth + 1);
        _out.WriteByte(items.Count switch { 1 => 0x85, 2 => 0x86, 3 => 0x87, _ => (byte)'t' });
    }

    private void SaveLong(long value)
    {
        if (value is >= 0 and < 256)
        {
            Op('K');
            _out.WriteByte((byte)value);
        }
        else if (value is >= 0 and < 65536)
        {
            Op('M');
            Span<byte> b = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)value);
            _out.Write(b);
        }
        else if (value is >= int.MinValue and <= int.MaxValue)
        {
            Op('J');
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, (int)value);
            _out.Write(b);
        }
        else
        {
            var bytes = new BigInteger(value).ToByteArray(); // little-endian two's complement, as LONG1 wants
            _out.WriteByte(0x8a);
            _out.WriteByte((byte)bytes.Length);
            _out.Write(bytes);
        }
    }

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks): the tensor is written
    // contiguously into a storage of its own.
    private void SaveTensor(Tensor tensor)
    {
        if (tensor is null || tensor.IsInvalid) throw new ObjectDisposedException(nameof(tensor), "a tensor to save has been disposed.");
        if (tensor.is_sparse) throw new InvalidOperationException("a sparse tensor cannot be saved in a PyTorch checkpoint.");
        var storageName = Unpickler.StorageName(tensor.dtype);
        var key = _tensors.Count;
        _tensors.Add(tensor);
        var shape = tensor.shape;
        var stride = new long[shape.Length];
        long s = 1;
        for (var d = shape.Length - 1; d >= 0; d--)
        {
            stride[d] = s;
            s *= Math.Max(shape[d], 1);
        }
        Global("torch._utils", "_rebuild_tensor_v2");
        Op('(');
        SaveTuple(["storage", null, key.ToString(System.Globalization.CultureInfo.InvariantCulture), "cpu", tensor.numel()], 0, storageName);
        Op('Q');
        SaveLong(0);
        SaveTuple(Array.ConvertAll(shape, x => (object?)x), 1);
        SaveTuple(Array.ConvertAll(stride, x => (object?)x), 1);
        _out.WriteByte(0x89); // requires_grad=False
        Global("collections", "OrderedDict");
        Op(')');
        Op('R');
        Op('t');
        Op('R');
    }

    // The persistent id tuple, whose second item is the storage type (a global, which Save cannot express).
    private void SaveTuple(object?[] pid, int depth, string storageName)
    {
        Op('(');
        Save(pid[0], depth + 1);
        Global("torch", storageName);
        for (var i = 2; i < pid.Length; i++) Save(pid[i], depth + 1);
        Op('t');
    }

    private void Global(string module, string name)
    {
        Op('c');
        _out.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private void Op(char op) => _out.WriteByte((byte)op);

    private void WriteUInt32(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        _out.Write(b);
    }
}
