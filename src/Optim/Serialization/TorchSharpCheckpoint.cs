using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using static TorchSharp.torch;

namespace Optim.Serialization;

/// <summary>
/// Reads and writes the optimizer checkpoint format of TorchSharp's own optimizers (<c>OptimizerHelper.save_state_dict</c>
/// / <c>load_state_dict</c>, TorchSharp 0.107), so training can move from TorchSharp's <c>Adam</c>, <c>AdamW</c>,
/// <c>SGD</c>, <c>Adagrad</c> and <c>RMSProp</c> to this library's optimizer of the same algorithm, and back.
/// </summary>
/// <remarks>
/// <para>The format, as TorchSharp 0.107 writes it through a <see cref="BinaryWriter"/> (little-endian, UTF-8):</para>
/// <code>
/// class name (.NET length-prefixed string: "Adam", "AdamW", "SGD", "Adagrad" or "RMSProp")
/// group count (LEB128) | state count (LEB128; one state per parameter, all groups, in order)
/// per group: InitialLearningRate (f64) | LearningRate (f64) | the algorithm's options (below)
/// per parameter: the algorithm's state (below)
///   Adam, AdamW: beta1, beta2, eps, weight_decay (f64) | amsgrad, maximize (bool)
///                state: step (i64) | exp_avg | exp_avg_sq | has max_exp_avg_sq (bool) [| max_exp_avg_sq]
///   SGD:         momentum, dampening, weight_decay (f64) | nesterov, maximize (bool)
///                state: has momentum_buffer (bool) [| momentum_buffer]
///   Adagrad:     lr_decay, initial_accumulator_value, eps, weight_decay (f64)
///                state: step (i64) | sum
///   RMSProp:     maximize (bool) | momentum, alpha, eps, weight_decay (f64) | centered (bool)
///                state: step (i64) | square_avg | has momentum_buffer (bool) [| momentum_buffer]
///                       | has grad_avg (bool) [| grad_avg]
/// tensor: dtype (LEB128, TorchSharp's ScalarType) | ndim (LEB128) | dims (LEB128 each) | raw element bytes
/// </code>
/// <para>
/// The file names no parameter and carries no per-group parameter count: states are matched to the target's parameters
/// by position, and the target's groups say how many belong to each. There is no checksum; truncation and structural
/// damage are detected, flipped bits inside tensor data are not.
/// </para>
/// </remarks>
public static class TorchSharpCheckpoint
{
    // TorchSharp's Load refuses tensors over 2 GB; so do we (and a corrupted size cannot allocate more).
    private const long MaxTensorBytes = int.MaxValue;
    private const int MaxDimensions = 64;
    private const int MaxClassNameLength = 128;

    private enum Algorithm
    {
        Adam,
        AdamW,
        SGD,
        Adagrad,
        RMSProp,
    }

    /// <summary>
    /// The name of the TorchSharp optimizer class whose checkpoints <paramref name="optimizer"/> reads and writes:
    /// "Adam", "AdamW", "SGD", "Adagrad" or "RMSProp" (TorchSharp's spelling of RMSprop).
    /// </summary>
    /// <param name="optimizer">One of this library's optimizers.</param>
    /// <exception cref="NotSupportedException">TorchSharp has no optimizer of that algorithm (e.g. <see cref="SGDMomentumNesterov"/>).</exception>
    public static string ClassName(Optimizer optimizer) => AlgorithmOf(optimizer).ToString();

    /// <summary>
    /// Reads a checkpoint written by TorchSharp's <c>save_state_dict</c> into a state dict for <paramref name="target"/>,
    /// ready for <see cref="Optimizer.LoadStateDict"/>. The stream is left just after the checkpoint. The dict's tensors
    /// are new CPU tensors owned by the caller (or the current dispose scope).
    /// </summary>
    /// <remarks>
    /// State is converted to PyTorch's shape: TorchSharp's <c>long step</c> becomes a 0-dim <c>step</c> tensor (float32,
    /// float64 under a float64 default dtype; a float32 count is exact up to 2^24 steps); RMSProp's <c>momentum_buffer</c>
    /// and <c>grad_avg</c>, which TorchSharp always keeps, are kept only where the group uses them (momentum &gt; 0,
    /// centered); a parameter TorchSharp never stepped (step 0, all-zero buffers) gets no state, as in PyTorch. Options the
    /// file lacks: Adagrad's <c>maximize</c> becomes false (TorchSharp's Adagrad cannot maximize); <c>implementation</c>
    /// keeps the target's value.
    /// </remarks>
    /// <param name="stream">A readable stream positioned at the checkpoint.</param>
    /// <param name="target">The optimizer the checkpoint is for: it decides the expected class and the group layout.</param>
    /// <returns>The state dict.</returns>
    /// <exception cref="InvalidDataException">Not a TorchSharp optimizer checkpoint, truncated, or malformed.</exception>
    /// <exception cref="ArgumentException">
    /// A checkpoint of another optimizer class, or with another number of groups or parameters than
    /// <paramref name="target"/>.
    /// </exception>
    /// <exception cref="NotSupportedException"><paramref name="target"/>'s algorithm has no TorchSharp counterpart.</exception>
    public static OptimizerStateDict Read(Stream stream, Optimizer target)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(target);
        var algorithm = AlgorithmOf(target);
        var layout = target.StateDict();
        var groupOf = GroupIndexById(layout);

        var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        var created = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        try
        {
            var className = ReadClassName(reader);
            if (className != algorithm.ToString())
                throw new ArgumentException(
                    $"the file is a checkpoint of TorchSharp's '{className}' optimizer; {target.GetType().Name} reads checkpoints of TorchSharp's '{algorithm}'.",
                    nameof(stream));
            var groupCount = DecodeCount(reader, "group");
            var stateCount = DecodeCount(reader, "state");
            if (groupCount != layout.ParamGroups.Count)
                throw new ArgumentException(
                    $"the checkpoint has {groupCount} parameter groups, the optimizer has {layout.ParamGroups.Count}.", nameof(stream));
            if (stateCount != groupOf.Count)
                throw new ArgumentException(
                    $"the checkpoint has state for {stateCount} parameters, the optimizer has {groupOf.Count}.", nameof(stream));

            var groups = new List<ParamGroupState>(groupCount);
            var options = new List<Options>(groupCount);
            for (var g = 0; g < groupCount; g++)
            {
                var o = ReadOptions(reader, algorithm);
                options.Add(o);
                groups.Add(new ParamGroupState(o.Hyperparameters, o.InitialLr, layout.ParamGroups[g].Params));
            }

            var state = new SortedDictionary<int, IReadOnlyDictionary<string, Tensor>>();
            for (var id = 0; id < stateCount; id++)
            {
                var entries = ReadState(reader, algorithm, options[groupOf[id]], created);
                if (entries is not null) state[id] = entries;
            }
            return new OptimizerStateDict(target.StateDict().OptimizerType, state, groups);
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException or OverflowException)
        {
            foreach (var t in created) t.Dispose();
            throw new InvalidDataException($"the TorchSharp checkpoint is truncated or malformed: {e.Message}", e);
        }
        catch
        {
            foreach (var t in created) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes <paramref name="source"/>'s state in TorchSharp's format, so TorchSharp's optimizer of the same algorithm
    /// loads it with <c>load_state_dict</c> and continues. Nothing is written if the state cannot be represented.
    /// </summary>
    /// <remarks>
    /// State TorchSharp needs but <paramref name="source"/> does not have is written as TorchSharp would have created it:
    /// zeros (and step 0) for a parameter that was never stepped, zeros for the RMSProp buffers a group does not use, and
    /// for Adam with amsgrad a zero <c>max_exp_avg_sq</c>. <c>implementation</c> is not written (TorchSharp has no such
    /// option).
    /// </remarks>
    /// <param name="stream">A writable stream.</param>
    /// <param name="source">The optimizer whose state to write.</param>
    /// <exception cref="NotSupportedException">
    /// The algorithm has no TorchSharp counterpart, or a group uses an option TorchSharp's optimizer lacks (Adagrad with
    /// <c>maximize</c>).
    /// </exception>
    /// <exception cref="InvalidOperationException">A step count that is not a whole number.</exception>
    public static void Write(Stream stream, Optimizer source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        stream.Write(Encode(source));
        stream.Flush();
    }

    /// <summary>Writes <paramref name="source"/>'s state to a TorchSharp checkpoint file, atomically (see <see cref="CheckpointFormat.WriteFileAtomically(string, OptimizerStateDict)"/>).</summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="source">The optimizer whose state to write.</param>
    /// <inheritdoc cref="Write(Stream, Optimizer)" path="/exception"/>
    public static void WriteFile(string path, Optimizer source)
    {
        var bytes = Encode(source);
        CheckpointFormat.WriteFileAtomically(path, stream => stream.Write(bytes));
    }

    // ---- reading ----

    // A group's options as our hyperparameters, plus what reading its parameters' state needs.
    private sealed record Options(List<KeyValuePair<string, object?>> Hyperparameters, double InitialLr)
    {
        public bool Get(string name) => (bool)Hyperparameters.First(h => h.Key == name).Value!;

        public double GetDouble(string name) => (double)Hyperparameters.First(h => h.Key == name).Value!;
    }

    // The hyperparameters TorchSharp's Options.SaveStateDict writes after (initial_lr, lr), in its order, by our names.
    // TorchSharp keeps Adam's beta1 and beta2 as two fields (PyTorch's betas[0], betas[1]); its Adagrad has no maximize.
    private static (string Name, bool IsBool)[] OptionFields(Algorithm algorithm) => algorithm switch
    {
        Algorithm.Adam or Algorithm.AdamW =>
            [("beta1", false), ("beta2", false), ("eps", false), ("weight_decay", false), ("amsgrad", true), ("maximize", true)],
        Algorithm.SGD => [("momentum", false), ("dampening", false), ("weight_decay", false), ("nesterov", true), ("maximize", true)],
        Algorithm.Adagrad => [("lr_decay", false), ("initial_accumulator_value", false), ("eps", false), ("weight_decay", false)],
        _ => [("maximize", true), ("momentum", false), ("alpha", false), ("eps", false), ("weight_decay", false), ("centered", true)],
    };

    private static Options ReadOptions(BinaryReader r, Algorithm algorithm)
    {
        var initialLr = r.ReadDouble();
        var h = new List<KeyValuePair<string, object?>> { new("lr", r.ReadDouble()) };
        foreach (var (name, isBool) in OptionFields(algorithm))
            h.Add(new(name, isBool ? ReadBool(r, name) : r.ReadDouble()));
        if (algorithm == Algorithm.Adagrad) h.Add(new("maximize", false)); // TorchSharp's Adagrad always minimizes.
        return new Options(h, initialLr);
    }

    // One parameter's state in PyTorch's keys, or null where PyTorch would have none.
    private static ParameterState? ReadState(BinaryReader r, Algorithm algorithm, Options o, HashSet<Tensor> created)
    {
        var state = new ParameterState();
        void Add(string key, Tensor t) => state.AddWithoutDetaching(key, t);
        Tensor Step(long step)
        {
            var t = StepTensor(step);
            created.Add(t);
            return t;
        }
        Tensor Read(string what)
        {
            var t = ReadTensor(r, what);
            created.Add(t);
            return t;
        }
        ParameterState? Drop(ParameterState? kept, params Tensor?[] dropped)
        {
            foreach (var t in dropped.Concat(kept is null ? state.Values : Enumerable.Empty<Tensor>()))
            {
                if (t is null || !created.Remove(t)) continue;
                t.Dispose();
            }
            return kept;
        }

        switch (algorithm)
        {
            case Algorithm.Adam:
            case Algorithm.AdamW:
            {
                var step = ReadStep(r);
                Add("step", Step(step));
                Add("exp_avg", Read("exp_avg"));
                Add("exp_avg_sq", Read("exp_avg_sq"));
                if (ReadBool(r, "has max_exp_avg_sq")) Add("max_exp_avg_sq", Read("max_exp_avg_sq"));
                return Drop(step == 0 && AllZero(state) ? null : state);
            }
            case Algorithm.SGD:
            {
                if (!ReadBool(r, "has momentum_buffer")) return null;
                var buffer = Read("momentum_buffer");
                // TorchSharp's SGD maximizes by adding lr * update instead of negating the gradient, so its buffer holds
                // the negation of PyTorch's (negated here in place; negation is exact). With weight decay the two
                // algorithms differ (TorchSharp's decay then pushes weights away from zero) and no buffer makes them agree.
                Add("momentum_buffer", o.Get("maximize") ? buffer.neg_() : buffer);
                return state;
            }
            case Algorithm.Adagrad:
                // Adagrad's state exists from construction in TorchSharp and PyTorch alike.
                Add("step", Step(ReadStep(r)));
                Add("sum", Read("sum"));
                return state;
            default:
            {
                var step = ReadStep(r);
                Add("step", Step(step));
                Add("square_avg", Read("square_avg"));
                // TorchSharp allocates both buffers for every parameter; PyTorch (and we) only where the group uses them.
                var momentum = ReadBool(r, "has momentum_buffer") ? Read("momentum_buffer") : null;
                var gradAvg = ReadBool(r, "has grad_avg") ? Read("grad_avg") : null;
                var keepMomentum = momentum is not null && o.GetDouble("momentum") > 0;
                var keepGradAvg = gradAvg is not null && o.Get("centered");
                if (keepMomentum) Add("momentum_buffer", momentum!);
                if (keepGradAvg) Add("grad_avg", gradAvg!);
                return Drop(step == 0 && AllZero(state) ? null : state, keepMomentum ? null : momentum, keepGradAvg ? null : gradAvg);
            }
        }
    }

    private static bool AllZero(ParameterState state)
    {
        using var scope = NewDisposeScope();
        return state.Where(e => e.Key != "step").All(e => e.Value.count_nonzero().item<long>() == 0);
    }

    private static Tensor StepTensor(long step)
    {
        var t = StateTensors.NewStep();
        t.fill_(step);
        return t;
    }

    private static long ReadStep(BinaryReader r)
    {
        var step = r.ReadInt64();
        if (step < 0) throw new InvalidDataException($"the TorchSharp checkpoint has a negative step count ({step}).");
        return step;
    }

    private static string ReadClassName(BinaryReader r)
    {
        string name;
        try
        {
            name = r.ReadString();
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException)
        {
            throw new InvalidDataException("not a TorchSharp optimizer checkpoint (it does not start with a class name).", e);
        }
        // TorchSharp writes GetType().Name: a C# identifier. Anything else (e.g. an Optim checkpoint) is another format.
        if (name.Length == 0 || name.Length > MaxClassNameLength || !(char.IsAsciiLetter(name[0]) || name[0] == '_')
            || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            throw new InvalidDataException("not a TorchSharp optimizer checkpoint (it does not start with a class name).");
        return name;
    }

    private static bool ReadBool(BinaryReader r, string what) => r.ReadByte() switch
    {
        0 => false,
        1 => true,
        var b => throw new InvalidDataException($"the TorchSharp checkpoint has byte {b} where the boolean '{what}' belongs."),
    };

    // TorchSharp's LEB128 (BinaryWriter.Encode / BinaryReader.Decode): 7 bits a byte, low bits first, no sign.
    private static long Decode(BinaryReader r)
    {
        long result = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = r.ReadByte();
            if (shift > 63 || shift == 63 && (b & 0x7f) != 0) // past 63 bits: not a long, or negative
                throw new InvalidDataException("the TorchSharp checkpoint has an over-long LEB128 number.");
            result |= (long)(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return result;
        }
    }

    private static int DecodeCount(BinaryReader r, string what)
    {
        var value = Decode(r);
        if (value > int.MaxValue) throw new InvalidDataException($"the TorchSharp checkpoint has an invalid {what} count ({value}).");
        return (int)value;
    }

    private static Tensor ReadTensor(BinaryReader r, string what)
    {
        var code = Decode(r);
        var dtype = (ScalarType)(code <= int.MaxValue ? (int)code : -1);
        if (!Enum.IsDefined(dtype)) throw new InvalidDataException($"tensor '{what}' has unknown dtype {code}.");
        var ndim = Decode(r);
        if (ndim > MaxDimensions) throw new InvalidDataException($"tensor '{what}' has {ndim} dimensions.");
        var shape = new long[ndim];
        long elements = 1;
        for (var i = 0; i < ndim; i++)
        {
            shape[i] = Decode(r);
            if (shape[i] > MaxTensorBytes) throw new InvalidDataException($"tensor '{what}' has a dimension of {shape[i]}.");
            // Saturates past the 2 GB limit instead of overflowing.
            elements = shape[i] == 0 || elements == 0 ? 0 : elements > MaxTensorBytes / shape[i] ? MaxTensorBytes + 1 : elements * shape[i];
        }
        var elementSize = ElementSize(dtype, what);
        if (elements > MaxTensorBytes / elementSize)
            throw new InvalidDataException($"tensor '{what}' of shape [{string.Join(", ", shape)}] is over 2 GB.");
        var byteCount = (int)(elements * elementSize);
        var stream = r.BaseStream;
        if (stream.CanSeek && byteCount > stream.Length - stream.Position) throw new EndOfStreamException($"tensor '{what}' is cut short.");
        var data = ReadExactly(r, byteCount);
        var tensor = empty(shape, dtype);
        try
        {
            data.CopyTo(tensor.bytes);
            return tensor;
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
    }

    // Reads in chunks, so a corrupted size on a non-seekable stream fails at the real end instead of allocating it.
    private static byte[] ReadExactly(BinaryReader r, int count)
    {
        const int Chunk = 1 << 20;
        if (count <= Chunk)
        {
            var small = r.ReadBytes(count);
            return small.Length == count ? small : throw new EndOfStreamException("a tensor is cut short.");
        }
        using var buffer = new MemoryStream();
        while (buffer.Length < count)
        {
            var part = r.ReadBytes((int)Math.Min(Chunk, count - buffer.Length));
            if (part.Length == 0) throw new EndOfStreamException("a tensor is cut short.");
            buffer.Write(part);
        }
        return buffer.ToArray();
    }

    private static long ElementSize(ScalarType dtype, string what)
    {
        try
        {
            using var probe = empty(0, dtype);
            return probe.ElementSize;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"tensor '{what}' has dtype {dtype}, which cannot be created.", e);
        }
    }

    // ---- writing ----

    private static byte[] Encode(Optimizer source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var algorithm = AlgorithmOf(source);
        var sd = source.StateDict();
        var parameters = source.parameters().ToList();
        var groupOf = GroupIndexById(sd);

        using var scope = NewDisposeScope();
        using var memory = new MemoryStream();
        using (var w = new BinaryWriter(memory, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(algorithm.ToString());
            Encode(w, sd.ParamGroups.Count);
            Encode(w, parameters.Count);
            foreach (var group in sd.ParamGroups) WriteOptions(w, algorithm, group);
            for (var id = 0; id < parameters.Count; id++)
            {
                var state = sd.State.TryGetValue(id, out var s) ? s : null;
                WriteState(w, algorithm, sd.ParamGroups[groupOf[id]], parameters[id], state);
            }
        }
        return memory.ToArray();
    }

    private static void WriteOptions(BinaryWriter w, Algorithm algorithm, ParamGroupState g)
    {
        if (algorithm == Algorithm.Adagrad && (bool)g["maximize"]!)
            throw new NotSupportedException("TorchSharp's Adagrad cannot maximize; a group with maximize=true has no TorchSharp equivalent.");
        w.Write(g.InitialLr);
        w.Write((double)g["lr"]!);
        foreach (var (name, isBool) in OptionFields(algorithm))
        {
            if (isBool) w.Write((bool)g[name]!);
            else w.Write((double)g[name]!);
        }
    }

    private static void WriteState(BinaryWriter w, Algorithm algorithm, ParamGroupState g, Tensor p, IReadOnlyDictionary<string, Tensor>? state)
    {
        Tensor? Get(string key) => state is not null && state.TryGetValue(key, out var t) ? t : null;
        Tensor OrZeros(string key) => Get(key) ?? zeros_like(p);
        void Step() => w.Write(StepValue(Get("step")));
        void Conditional(Tensor? t)
        {
            w.Write(t is not null);
            if (t is not null) WriteTensor(w, t);
        }

        switch (algorithm)
        {
            case Algorithm.Adam:
            case Algorithm.AdamW:
                Step();
                WriteTensor(w, OrZeros("exp_avg"));
                WriteTensor(w, OrZeros("exp_avg_sq"));
                // TorchSharp has max_exp_avg_sq exactly when the group was created with amsgrad.
                Conditional(Get("max_exp_avg_sq") ?? ((bool)g["amsgrad"]! ? zeros_like(p) : null));
                break;
            case Algorithm.SGD:
                var buffer = Get("momentum_buffer");
                Conditional(buffer is not null && (bool)g["maximize"]! ? buffer.neg() : buffer); // see ReadState
                break;
            case Algorithm.Adagrad:
                Step();
                WriteTensor(w, Get("sum") ?? full_like(p, (double)g["initial_accumulator_value"]!));
                break;
            default:
                // TorchSharp's RMSProp keeps (and steps with, when used) all three tensors for every parameter.
                Step();
                WriteTensor(w, OrZeros("square_avg"));
                Conditional(OrZeros("momentum_buffer"));
                Conditional(OrZeros("grad_avg"));
                break;
        }
    }

    private static long StepValue(Tensor? step)
    {
        if (step is null) return 0;
        var value = StateTensors.Value(step);
        if (value < 0 || value != Math.Floor(value) || value >= long.MaxValue)
            throw new InvalidOperationException($"step count {value} cannot be written as TorchSharp's whole-number step.");
        return (long)value;
    }

    private static void WriteTensor(BinaryWriter w, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        Encode(w, (long)cpu.dtype);
        Encode(w, cpu.ndim);
        foreach (var d in cpu.shape) Encode(w, d);
        w.Write(cpu.bytes);
    }

    private static void Encode(BinaryWriter w, long value)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), "LEB128 as TorchSharp writes it has no negative numbers.");
        do
        {
            var b = (byte)(value & 0x7f);
            value >>= 7;
            w.Write(value == 0 ? b : (byte)(b | 0x80));
        }
        while (value != 0);
    }

    // ---- shared ----

    private static Algorithm AlgorithmOf(Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        return optimizer switch
        {
            AdamW => Algorithm.AdamW,
            Adam => Algorithm.Adam,
            SGD => Algorithm.SGD,
            Adagrad => Algorithm.Adagrad,
            RMSprop => Algorithm.RMSProp,
            _ => throw new NotSupportedException($"TorchSharp has no optimizer of {optimizer.GetType().Name}'s algorithm, so there is no TorchSharp checkpoint format for it."),
        };
    }

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
}
