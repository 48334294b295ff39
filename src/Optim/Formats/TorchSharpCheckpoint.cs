using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Formats;

/// <summary>
/// Reads and writes the optimizer checkpoint format of TorchSharp's own optimizers (<c>OptimizerHelper.save_state_dict</c>
/// / <c>load_state_dict</c>, TorchSharp 0.107), so training can move from TorchSharp's <c>Adam</c>, <c>AdamW</c>,
/// <c>SGD</c>, <c>Adagrad</c>, <c>RMSProp</c>, <c>Adadelta</c>, <c>Adamax</c>, <c>ASGD</c>, <c>NAdam</c>, <c>RAdam</c>
/// and <c>Rprop</c> to this library's optimizer of the same algorithm, and back. What each
/// algorithm stores is its <see cref="ITorchSharpLayout"/> (declared next to the algorithm, reached through
/// <see cref="AlgorithmInfo.TorchSharpLayout"/>); this class is the framing around it.
/// </summary>
/// <remarks>
/// <para>The format, as TorchSharp 0.107 writes it through a <see cref="BinaryWriter"/> (little-endian, UTF-8):</para>
/// <code>
/// class name (.NET length-prefixed string: the layout's ClassName)
/// group count (LEB128) | state count (LEB128; one state per parameter, all groups, in order)
/// per group: InitialLearningRate (f64) | LearningRate (f64) | the layout's OptionFields (f64, bool, or two f64s for a
///            pair, by the schema)
/// per parameter: the layout's state
/// tensor: dtype (LEB128, TorchSharp's ScalarType) | ndim (LEB128) | dims (LEB128 each) | raw element bytes
/// </code>
/// <para>
/// The file names no parameter and carries no per-group parameter count: states are matched to the target's parameters
/// by position, and the target's groups say how many belong to each. There is no checksum; truncation and structural
/// damage are detected, flipped bits inside tensor data are not. A tensor's dtype, dimensions and size are checked
/// (overflow included) before it is created, so damaged input is an <see cref="InvalidDataException"/>, never a native
/// error.
/// </para>
/// </remarks>
internal static class TorchSharpCheckpoint
{
    // TorchSharp's Load refuses tensors over 2 GB; so do we (and a corrupted size cannot allocate more).
    private const long MaxTensorBytes = int.MaxValue;
    private const int MaxClassNameLength = 128;

    /// <summary>The layout of <paramref name="optimizer"/>'s algorithm.</summary>
    /// <exception cref="NotSupportedException">TorchSharp has no optimizer of that algorithm (e.g. <see cref="SGDMomentumNesterov"/>).</exception>
    public static ITorchSharpLayout LayoutOf(Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        return AlgorithmCatalog.Of(optimizer)?.TorchSharpLayout
            ?? throw new NotSupportedException($"TorchSharp has no optimizer of {optimizer.GetType().Name}'s algorithm, so there is no TorchSharp checkpoint format for it.");
    }

    /// <summary>The name of the TorchSharp optimizer class whose checkpoints <paramref name="optimizer"/> reads and writes.</summary>
    /// <exception cref="NotSupportedException">TorchSharp has no optimizer of that algorithm.</exception>
    public static string ClassName(Optimizer optimizer) => LayoutOf(optimizer).ClassName;

    /// <summary>
    /// Reads a checkpoint written by TorchSharp's <c>save_state_dict</c> into a state dict for <paramref name="target"/>,
    /// ready for <see cref="Optimizer.LoadStateDict"/>. The stream is left just after the checkpoint. The dict's tensors
    /// are new CPU tensors the caller owns (detached from dispose scopes).
    /// </summary>
    /// <remarks>
    /// State is converted to PyTorch's shape by the algorithm's layout; TorchSharp's <c>long step</c> becomes a 0-dim
    /// <c>step</c> tensor. Options the file lacks: the layout's <see cref="ITorchSharpLayout.FixedOptions"/>;
    /// <c>implementation</c> keeps the target's value.
    /// </remarks>
    /// <param name="stream">The checkpoint.</param>
    /// <param name="target">The optimizer the state is for.</param>
    /// <param name="otherClassIsInvalidData">
    /// Report a checkpoint of another optimizer class as TorchSharp's <c>load_state_dict</c> does (an
    /// <see cref="InvalidDataException"/>, TorchSharp's message) instead of an <see cref="ArgumentException"/>.
    /// </param>
    /// <exception cref="InvalidDataException">Not a TorchSharp optimizer checkpoint, truncated, or malformed.</exception>
    /// <exception cref="ArgumentException">A checkpoint of another optimizer class, or of another layout.</exception>
    /// <exception cref="NotSupportedException"><paramref name="target"/>'s algorithm has no TorchSharp counterpart.</exception>
    public static OptimizerStateDict Read(Stream stream, Optimizer target, bool otherClassIsInvalidData = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var layout = LayoutOf(target);
        var schema = AlgorithmCatalog.Of(target)!.Schema;
        var sd = target.StateDictCore();
        var groupOf = GroupIndexById(sd);

        using var reader = new Reader(stream);
        var className = reader.ReadClassName();
        if (className != layout.ClassName && otherClassIsInvalidData)
            throw new InvalidDataException($"Mismatched optimizer type: expected '{layout.ClassName}', but found '{className}' in the loaded stream.");
        if (className != layout.ClassName)
            throw new ArgumentException(
                $"the file is a checkpoint of TorchSharp's '{className}' optimizer; {target.GetType().Name} reads checkpoints of TorchSharp's '{layout.ClassName}'.",
                nameof(stream));
        var groupCount = reader.ReadCount("group");
        var stateCount = reader.ReadCount("state");
        if (groupCount != sd.ParamGroups.Count)
            throw new ArgumentException($"the checkpoint has {groupCount} parameter groups, the optimizer has {sd.ParamGroups.Count}.", nameof(stream));
        if (stateCount != groupOf.Count)
            throw new ArgumentException($"the checkpoint has state for {stateCount} parameters, the optimizer has {groupOf.Count}.", nameof(stream));

        var groups = new List<ParamGroupState>(groupCount);
        for (var g = 0; g < groupCount; g++)
        {
            var initialLr = reader.ReadDouble();
            var hyperparameters = new List<KeyValuePair<string, object?>> { new("lr", reader.ReadDouble()) };
            foreach (var name in layout.OptionFields)
            {
                hyperparameters.Add(new(name, OptionType(schema, name) switch
                {
                    HyperparameterType.Bool => reader.ReadBool(name),
                    HyperparameterType.DoublePair => (reader.ReadDouble(), reader.ReadDouble()),
                    _ => reader.ReadDouble(),
                }));
            }
            hyperparameters.AddRange(layout.FixedOptions);
            groups.Add(new ParamGroupState(hyperparameters, initialLr, sd.ParamGroups[g].Params));
        }

        var state = new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>();
        for (var id = 0; id < stateCount; id++)
        {
            var entries = layout.ReadState(reader, groups[groupOf[id]]);
            reader.KeepOnly(entries);
            if (entries is not null) state[id] = entries;
        }
        reader.KeepAll();
        return new OptimizerStateDict(sd.OptimizerType, state, groups);
    }

    /// <summary>
    /// Reads a checkpoint file (see <see cref="Read"/>); bytes after the checkpoint are an <see cref="InvalidDataException"/>.
    /// </summary>
    public static OptimizerStateDict ReadFile(string path, Optimizer target, bool otherClassIsInvalidData = false)
    {
        LayoutOf(target);
        using var stream = File.OpenRead(path);
        var stateDict = Read(stream, target, otherClassIsInvalidData);
        if (FileLoads.TrailingBytes(stream, path, "the TorchSharp checkpoint") is { } error)
        {
            stateDict.DisposeTensors();
            throw error;
        }
        return stateDict;
    }

    /// <summary>
    /// Writes <paramref name="source"/>'s state in TorchSharp's format, so TorchSharp's optimizer of the same algorithm
    /// loads it with <c>load_state_dict</c> and continues. Everything is checked first: nothing is written if the state
    /// cannot be represented.
    /// </summary>
    /// <remarks>
    /// State TorchSharp needs but <paramref name="source"/> does not have is written as TorchSharp would have created it
    /// (see each layout). <c>implementation</c> is not written (TorchSharp has no such option).
    /// </remarks>
    /// <exception cref="NotSupportedException">
    /// The algorithm has no TorchSharp counterpart, or a group uses an option value TorchSharp's optimizer lacks (Adagrad,
    /// Adamax, NAdam or RAdam with <c>maximize</c>; NAdam or RAdam with <c>decoupled_weight_decay</c>), or the optimizer
    /// holds float32 master weights (<see cref="Optimizer.MasterWeights"/>), which TorchSharp has no place for.
    /// </exception>
    /// <exception cref="InvalidOperationException">A step count that is not a whole number.</exception>
    public static void Write(Stream stream, Optimizer source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var layout = LayoutOf(source);
        var schema = AlgorithmCatalog.Of(source)!.Schema;
        if (source.MasterWeights && source.State.Values.Any(s => s.ContainsKey(Optimizer.MasterWeightsKey)))
            throw new NotSupportedException(
                $"TorchSharp's optimizers have no master weights, so its format has no place for '{Optimizer.MasterWeightsKey}'; save with optimizer.Save (Optim's checkpoint) instead.");
        var sd = source.StateDict();
        sd.ThrowIfDisposed();
        var parameters = source.parameters().ToList();
        var groupOf = GroupIndexById(sd);
        foreach (var group in sd.ParamGroups)
        {
            foreach (var (name, value) in layout.FixedOptions)
            {
                if (!Equals(group[name], value))
                    throw new NotSupportedException(
                        $"TorchSharp's {layout.ClassName} has no '{name}' option (it behaves as {name}={value}); a group with {name}={group[name]} has no TorchSharp equivalent.");
            }
        }

        // A dry run first, so a step count TorchSharp cannot hold is refused before the first byte is written.
        using (var dry = new Writer(Stream.Null, dryRun: true)) WriteAll(dry);
        using (var writer = new Writer(stream, dryRun: false)) WriteAll(writer);
        stream.Flush();

        void WriteAll(Writer w)
        {
            w.WriteString(layout.ClassName);
            w.WriteCount(sd.ParamGroups.Count);
            w.WriteCount(parameters.Count);
            foreach (var group in sd.ParamGroups)
            {
                w.WriteDouble(group.InitialLr);
                w.WriteDouble((double)group["lr"]!);
                foreach (var name in layout.OptionFields)
                {
                    switch (OptionType(schema, name))
                    {
                        case HyperparameterType.Bool:
                            w.WriteBool((bool)group[name]!);
                            break;
                        case HyperparameterType.DoublePair:
                            var (first, second) = ((double, double))group[name]!;
                            w.WriteDouble(first);
                            w.WriteDouble(second);
                            break;
                        default:
                            w.WriteDouble((double)group[name]!);
                            break;
                    }
                }
            }
            for (var id = 0; id < parameters.Count; id++)
            {
                using var scope = NewDisposeScope();
                var state = sd.State.TryGetValue(id, out var s) ? s : null;
                layout.WriteState(w, sd.ParamGroups[groupOf[id]], parameters[id], state);
            }
        }
    }

    /// <summary>Writes <paramref name="source"/>'s state to a TorchSharp checkpoint file, atomically (see <see cref="AtomicFile"/>).</summary>
    public static void WriteFile(string path, Optimizer source)
    {
        LayoutOf(source); // an algorithm without a layout fails before a temporary file exists
        AtomicFile.Write(path, stream => Write(stream, source));
    }

    // The type of an option field, from the algorithm's schema: a double, a bool or a pair of doubles.
    private static HyperparameterType OptionType(OptionSchema schema, string name) =>
        schema.Find(name)?.Type is { } type && type is HyperparameterType.Double or HyperparameterType.Bool or HyperparameterType.DoublePair
            ? type
            : throw new InvalidOperationException($"the TorchSharp layout names option '{name}', which is not a double, bool or pair of doubles of the schema.");

    // The group index of every parameter id (ids are positions in parameters(), which is also TorchSharp's state order).
    private static List<int> GroupIndexById(OptimizerStateDict sd)
    {
        var groupOf = new List<int>();
        for (var g = 0; g < sd.ParamGroups.Count; g++)
        {
            foreach (var id in sd.ParamGroups[g].Params)
            {
                if (id != groupOf.Count) throw new InvalidOperationException("parameter ids are not in group order.");
                groupOf.Add(g);
            }
        }
        return groupOf;
    }

    // ---- reading ----

    private sealed class Reader(Stream stream) : ITorchSharpStateReader, IDisposable
    {
        private readonly BinaryReader _r = new(stream, Encoding.UTF8, leaveOpen: true);
        private readonly HashSet<Tensor> _pending = new(ReferenceEqualityComparer.Instance);

        public long ReadStep()
        {
            var step = Primitive(_r.ReadInt64);
            if (step < 0) throw new InvalidDataException($"the TorchSharp checkpoint has a negative step count ({step}).");
            return step;
        }

        public double ReadDouble() => Primitive(_r.ReadDouble);

        public bool ReadBool(string what) => Primitive(_r.ReadByte) switch
        {
            0 => false,
            1 => true,
            var b => throw new InvalidDataException($"the TorchSharp checkpoint has byte {b} where the boolean '{what}' belongs."),
        };

        public Tensor? ReadOptionalTensor(string what) => ReadBool($"has {what}") ? ReadTensor(what) : null;

        public Tensor ReadTensor(string what)
        {
            var label = $"tensor '{what}'";
            var code = Decode();
            var dtype = (ScalarType)(code <= int.MaxValue ? (int)code : -1);
            var ndim = Decode();
            if (ndim > TensorBytes.MaxDimensions) throw new InvalidDataException($"{label} has {ndim} dimensions.");
            var shape = new long[ndim];
            for (var i = 0; i < ndim; i++) shape[i] = Decode();
            var byteCount = TensorBytes.ByteCount(dtype, shape, label);
            if (byteCount > MaxTensorBytes) throw new InvalidDataException($"{label} of shape [{string.Join(", ", shape)}] is over 2 GB.");
            var s = _r.BaseStream;
            if (s.CanSeek && byteCount > s.Length - s.Position) throw new InvalidDataException($"the TorchSharp checkpoint is truncated ({label} is cut short).");
            try
            {
                var tensor = TensorBytes.Read(s, dtype, shape, label);
                _pending.Add(tensor);
                return tensor;
            }
            catch (EndOfStreamException e)
            {
                throw new InvalidDataException($"the TorchSharp checkpoint is truncated ({label} is cut short).", e);
            }
        }

        public string ReadClassName()
        {
            string name;
            try
            {
                name = _r.ReadString();
            }
            catch (Exception e) when (e is EndOfStreamException or FormatException or IOException)
            {
                throw new InvalidDataException("not a TorchSharp optimizer checkpoint (it does not start with a class name).", e);
            }
            // TorchSharp writes GetType().Name: a C# identifier. Anything else (e.g. an Optim checkpoint) is another format.
            if (name.Length == 0 || name.Length > MaxClassNameLength || !(char.IsAsciiLetter(name[0]) || name[0] == '_')
                || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                throw new InvalidDataException("not a TorchSharp optimizer checkpoint (it does not start with a class name).");
            return name;
        }

        public int ReadCount(string what)
        {
            var value = Decode();
            if (value > int.MaxValue) throw new InvalidDataException($"the TorchSharp checkpoint has an invalid {what} count ({value}).");
            return (int)value;
        }

        // The tensors read since the last call that the state keeps are the caller's now; the others are freed.
        public void KeepOnly(IReadOnlyDictionary<string, Tensor>? kept)
        {
            var keep = new HashSet<Tensor>(kept?.Values ?? Enumerable.Empty<Tensor>(), ReferenceEqualityComparer.Instance);
            foreach (var t in _pending.Where(t => !keep.Contains(t))) t.Dispose();
            _pending.Clear();
        }

        public void KeepAll() => _pending.Clear();

        public void Dispose()
        {
            foreach (var t in _pending) t.Dispose();
            _pending.Clear();
            _r.Dispose();
        }

        private long Decode() => Primitive(() => DecodeCount(_r));

        private static T Primitive<T>(Func<T> read)
        {
            try
            {
                return read();
            }
            catch (EndOfStreamException e)
            {
                throw new InvalidDataException("the TorchSharp checkpoint is truncated.", e);
            }
        }
    }

    // ---- writing ----

    private sealed class Writer(Stream stream, bool dryRun) : ITorchSharpStateWriter, IDisposable
    {
        private readonly BinaryWriter _w = new(dryRun ? Stream.Null : new BufferedStream(stream, 1 << 16), Encoding.UTF8, leaveOpen: !dryRun);

        public void WriteStep(Tensor? step)
        {
            long count = 0;
            if (step is not null)
            {
                using var scalar = step.ToScalar();
                var value = scalar.ToDouble();
                if (value < 0 || value != Math.Floor(value) || value >= long.MaxValue)
                    throw new InvalidOperationException($"step count {value} cannot be written as TorchSharp's whole-number step.");
                count = (long)value;
            }
            _w.Write(count);
        }

        public void WriteBool(bool value) => _w.Write(value);

        public void WriteDouble(double value) => _w.Write(value);

        public void WriteString(string value) => _w.Write(value);

        public void WriteCount(long value) => Encode(value);

        public void WriteTensor(Tensor tensor)
        {
            ArgumentNullException.ThrowIfNull(tensor);
            if (dryRun) return;
            Encode((long)tensor.dtype);
            Encode(tensor.ndim);
            foreach (var d in tensor.shape) Encode(d);
            _w.Flush();
            TensorBytes.Write(_w.BaseStream, tensor);
        }

        public void WriteOptionalTensor(Tensor? tensor)
        {
            _w.Write(tensor is not null);
            if (tensor is not null) WriteTensor(tensor);
        }

        public void Dispose()
        {
            _w.Flush();
            _w.Dispose();
        }

        private void Encode(long value) => EncodeCount(_w, value);
    }

    /// <summary>Writes a count as TorchSharp does (its <c>BinaryWriter.Encode</c>: LEB128, 7 bits a byte, low bits first, no sign).</summary>
    public static void EncodeCount(BinaryWriter writer, long value)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), "LEB128 as TorchSharp writes it has no negative numbers.");
        do
        {
            var b = (byte)(value & 0x7f);
            value >>= 7;
            writer.Write(value == 0 ? b : (byte)(b | 0x80));
        }
        while (value != 0);
    }

    /// <summary>Reads a count written by <see cref="EncodeCount"/> (TorchSharp's <c>BinaryReader.Decode</c>).</summary>
    /// <exception cref="InvalidDataException">More than 63 bits.</exception>
    /// <exception cref="EndOfStreamException">The stream ends inside the number.</exception>
    public static long DecodeCount(BinaryReader reader)
    {
        long result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = reader.ReadByte();
            if (shift > 63 || shift == 63 && (b & 0x7f) != 0) // past 63 bits: not a long, or negative
                throw new InvalidDataException("the TorchSharp checkpoint has an over-long LEB128 number.");
            result |= (long)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }
}
