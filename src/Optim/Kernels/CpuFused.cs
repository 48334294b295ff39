using System;
using System.Collections.Generic;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Threading.Tasks;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Kernels;

/// <summary>
/// The addresses of one parameter's tensors at the current element: the parameter, its gradient and up to four state
/// tensors (which one is which is the update's business). An update reads and writes <see cref="Vector{T}"/> lanes there.
/// </summary>
/// <typeparam name="T">The element type (float or double).</typeparam>
internal readonly unsafe struct Streams<T> where T : unmanaged
{
    public readonly T* Param;
    public readonly T* Grad;
    public readonly T* S0;
    public readonly T* S1;
    public readonly T* S2;
    public readonly T* S3;

    public Streams(T* param, T* grad, T* s0, T* s1, T* s2, T* s3)
    {
        Param = param;
        Grad = grad;
        S0 = s0;
        S1 = s1;
        S2 = s2;
        S3 = s3;
    }

    public T* this[int stream] => stream switch { 0 => Param, 1 => Grad, 2 => S0, 3 => S1, 4 => S2, _ => S3 };

    public Streams<T> At(nint offset) => new(Param + offset, Grad + offset, Add(S0, offset), Add(S1, offset), Add(S2, offset), Add(S3, offset));

    private static T* Add(T* p, nint offset) => p == null ? null : p + offset;
}

/// <summary>
/// One algorithm's element-wise update over <see cref="Vector{T}"/> lanes: everything a C# fused kernel adds to
/// <see cref="CpuFused"/>. Implemented by structs, so the JIT specializes and inlines it into the loop.
/// </summary>
/// <typeparam name="T">The element type, which is also the arithmetic's (as ATen's fused kernels: float for float32, double for float64).</typeparam>
internal interface IFusedUpdate<T> where T : unmanaged
{
    /// <summary>Updates the <see cref="Vector{T}.Count"/> elements at <paramref name="at"/> of every stream.</summary>
    void Update(in Streams<T> at);
}

/// <summary>
/// The machinery of this library's single-pass CPU kernels, for algorithms ATen has no fused kernel for: each tensor's
/// memory walked once, in chunks split across cores, by an <see cref="IFusedUpdate{T}"/> over vector lanes; the last
/// elements, too few to fill a vector, run the same vector code over a padded copy. Element-wise and made of IEEE
/// operations only (no fused multiply-add), so the bits do not depend on the thread count or the chunking.
/// Like ATen's fused CPU kernels, it takes <c>grad_scale</c> (the gradient is divided by it and written back) and
/// <c>found_inf</c> (1 skips the update).
/// </summary>
internal static unsafe class CpuFused
{
    /// <summary>Elements per chunk that one thread updates: 256 KB of each float32 stream, which stays in L2 while it is worked on.</summary>
    internal const int ChunkElements = 64 * 1024;

    /// <summary>The threads a kernel uses at most; null follows ATen's intra-op thread count (<c>torch.get_num_threads()</c>).</summary>
    internal static int? MaxThreads { get; set; }

    /// <summary>Whether the C# kernels can serve <paramref name="t"/>: a contiguous float32 or float64 CPU tensor.</summary>
    public static bool Serves(Tensor t) =>
        t.device_type == DeviceType.CPU && t.dtype is ScalarType.Float32 or ScalarType.Float64 && t.is_contiguous();

    /// <summary>What <see cref="Serves"/> accepts, for messages.</summary>
    public const string Takes = "contiguous float32 or float64 tensors (and gradients) on CPU";

    /// <summary>
    /// Checks every parameter (one dtype), its gradient and its state tensors (<paramref name="states"/>[i]: up to four,
    /// null entries are absent streams), and returns the update over them, to run once nothing can fail any more: a
    /// refused step changes nothing. <paramref name="names"/> name the parameters and <paramref name="stateNames"/> the
    /// state streams in messages.
    /// </summary>
    public static FusedRun Prepare(IReadOnlyList<Tensor> parameters, IReadOnlyList<Tensor> grads,
        IReadOnlyList<Tensor?[]> states, IReadOnlyList<string> names, IReadOnlyList<string?> stateNames)
    {
        var tensors = new (IntPtr[] Pointers, long Count)[parameters.Count];
        var dtype = parameters.Count == 0 ? ScalarType.Float32 : parameters[0].dtype;
        for (var i = 0; i < parameters.Count; i++)
        {
            if (states[i].Length > 4) throw new ArgumentException("at most four state streams", nameof(states));
            tensors[i] = Pointers(parameters[i], grads[i], states[i], names[i], stateNames, dtype);
        }
        return new FusedRun(tensors, dtype == ScalarType.Float64);
    }

    /// <summary>A checked bucket's update (see <see cref="Prepare"/>).</summary>
    internal sealed class FusedRun((IntPtr[] Pointers, long Count)[] tensors, bool isDouble)
    {
        /// <summary>
        /// Runs the update of each tensor (<paramref name="updateFloat"/> or <paramref name="updateDouble"/> of its
        /// index, as the dtype is), unless <paramref name="foundInf"/> is 1: ATen's fused kernels skip the whole update then.
        /// </summary>
        public void Run<TFloat, TDouble>(Tensor? gradScale, Tensor? foundInf, Func<int, TFloat> updateFloat, Func<int, TDouble> updateDouble)
            where TFloat : struct, IFusedUpdate<float>
            where TDouble : struct, IFusedUpdate<double>
        {
            if (foundInf is not null && foundInf.to(ScalarType.Float32).item<float>() == 1.0f) return;
            var scale = gradScale?.to(ScalarType.Float32).item<float>();
            var threads = MaxThreads ?? get_num_threads();
            for (var i = 0; i < tensors.Length; i++)
            {
                var (pointers, count) = tensors[i];
                if (isDouble) Apply<double, TDouble>(updateDouble(i), pointers, count, scale, threads);
                else Apply<float, TFloat>(updateFloat(i), pointers, count, scale, threads);
            }
        }
    }

    private static (IntPtr[] Pointers, long Count) Pointers(Tensor param, Tensor grad, Tensor?[] states, string name, IReadOnlyList<string?> stateNames, ScalarType dtype)
    {
        var count = param.numel();
        var pointers = new IntPtr[6];
        pointers[0] = Checked(param, "the parameter");
        pointers[1] = Checked(grad, "its gradient");
        for (var k = 0; k < states.Length; k++)
        {
            if (states[k] is { } state) pointers[2 + k] = Checked(state, $"its state '{stateNames[k]}'");
        }
        return (pointers, count);

        IntPtr Checked(Tensor t, string what)
        {
            if (!Serves(t) || t.dtype != dtype || t.numel() != count)
                throw new InvalidOperationException(
                    $"the C# fused kernel cannot serve {name}: {what} is {t.dtype} [{string.Join(", ", t.shape)}] on {t.device}{(t.is_contiguous() ? "" : ", not contiguous")}; it takes {Takes}, all of the parameter's dtype and size.");
            return count == 0 ? IntPtr.Zero : TensorMemory.DataPointer(t);
        }
    }

    private static void Apply<T, TUpdate>(TUpdate update, IntPtr[] pointers, long count, T? scale, int threads)
        where T : unmanaged, INumberBase<T>
        where TUpdate : struct, IFusedUpdate<T>
    {
        if (count == 0) return;
        var streams = new Streams<T>((T*)pointers[0], (T*)pointers[1], (T*)pointers[2], (T*)pointers[3], (T*)pointers[4], (T*)pointers[5]);
        var chunks = (count + ChunkElements - 1) / ChunkElements;
        if (chunks == 1 || threads <= 1)
        {
            Range(update, streams, 0, count, scale);
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            var start = c * ChunkElements;
            Range(update, streams, start, Math.Min(count, start + ChunkElements), scale);
        });
    }

    // Elements [start, end): whole vectors, then the tail through a padded copy. Chunks start at multiples of the
    // vector width, so which elements a vector holds never depends on the chunking.
    private static void Range<T, TUpdate>(TUpdate update, in Streams<T> streams, long start, long end, T? scale)
        where T : unmanaged, INumberBase<T>
        where TUpdate : struct, IFusedUpdate<T>
    {
        var width = Vector<T>.Count;
        var i = start;
        for (; i + width <= end; i += width)
        {
            var at = streams.At((nint)i);
            if (scale is { } s) Unscale(at.Grad, s);
            update.Update(at);
        }
        if (i < end) Tail(update, streams.At((nint)i), (int)(end - i), scale);
    }

    // The gradient divided by the scaler's scale and written back, as ATen's fused kernels leave it.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unscale<T>(T* grad, T scale) where T : unmanaged, INumberBase<T> =>
        Unsafe.WriteUnaligned(grad, Unsafe.ReadUnaligned<Vector<T>>(grad) / new Vector<T>(scale));

    private static void Tail<T, TUpdate>(TUpdate update, in Streams<T> at, int count, T? scale)
        where T : unmanaged, INumberBase<T>
        where TUpdate : struct, IFusedUpdate<T>
    {
        var width = Vector<T>.Count;
        // Padding of ones keeps the unused lanes finite (nothing reads them back).
        var buffer = stackalloc T[6 * width];
        new Span<T>(buffer, 6 * width).Fill(T.One);
        var padded = new Streams<T>(buffer, buffer + width, buffer + 2 * width, buffer + 3 * width, buffer + 4 * width, buffer + 5 * width);
        for (var k = 0; k < 6; k++)
        {
            if (at[k] != null) new Span<T>(at[k], count).CopyTo(new Span<T>(padded[k], count));
        }
        var run = new Streams<T>(padded.Param, padded.Grad, at.S0 == null ? null : padded.S0, at.S1 == null ? null : padded.S1,
            at.S2 == null ? null : padded.S2, at.S3 == null ? null : padded.S3);
        if (scale is { } s) Unscale(run.Grad, s);
        update.Update(run);
        for (var k = 0; k < 6; k++)
        {
            if (at[k] != null) new Span<T>(padded[k], count).CopyTo(new Span<T>(at[k], count));
        }
    }

    /// <summary>A double hyperparameter in the arithmetic's type, rounded once as ATen's kernels round Python scalars.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Scalar<T>(double value) where T : unmanaged =>
        typeof(T) == typeof(float) ? (T)(object)(float)value : (T)(object)value;

    /// <summary>ATen's lerp: <c>start + w * (end - start)</c> from the start, <c>end - (end - start) * (1 - w)</c> from the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Lerp<T>(Vector<T> start, Vector<T> end, T factor, bool fromStart) where T : unmanaged =>
        fromStart ? start + (end - start) * factor : end - (end - start) * factor;

    /// <summary>
    /// <c>torch.maximum</c>: NaN in either operand gives NaN. <see cref="Vector.Max{T}(Vector{T}, Vector{T})"/> alone
    /// does not promise that (its NaN handling has differed between .NET versions and instruction sets).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Maximum<T>(Vector<T> a, Vector<T> b) where T : unmanaged, IFloatingPointIeee754<T> =>
        Vector.ConditionalSelect(Vector.Equals(a, a) & Vector.Equals(b, b), Vector.Max(a, b), a + b);

    /// <summary><c>torch.minimum</c>: NaN in either operand gives NaN (see <see cref="Maximum{T}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Minimum<T>(Vector<T> a, Vector<T> b) where T : unmanaged, IFloatingPointIeee754<T> =>
        Vector.ConditionalSelect(Vector.Equals(a, a) & Vector.Equals(b, b), Vector.Min(a, b), a + b);

    /// <summary>The lanes at <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Load<T>(T* p) where T : unmanaged => Unsafe.ReadUnaligned<Vector<T>>(p);

    /// <summary>Writes <paramref name="v"/> at <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<T>(T* p, Vector<T> v) where T : unmanaged => Unsafe.WriteUnaligned(p, v);
}

/// <summary>
/// The first ops of most algorithms' for-loop (<see cref="GradientPreparation.SingleTensor"/>) on lanes: the gradient
/// negated for maximize, then the parameter scaled by <c>1 - lr * weight_decay</c> (decoupled) or the L2 term added
/// to the gradient.
/// </summary>
/// <typeparam name="T">The element type.</typeparam>
internal readonly struct FusedGradient<T> where T : unmanaged, INumberBase<T>
{
    private readonly bool _maximize, _coupled, _decoupled;
    private readonly T _weightDecay, _decayFactor;

    public FusedGradient(bool maximize, double lr, double weightDecay, bool decoupled = false)
    {
        _maximize = maximize;
        _coupled = weightDecay != 0 && !decoupled;
        _decoupled = weightDecay != 0 && decoupled;
        _weightDecay = CpuFused.Scalar<T>(weightDecay);
        _decayFactor = CpuFused.Scalar<T>(1 - lr * weightDecay);
    }

    /// <summary>
    /// The gradient the update uses, from the lanes at <paramref name="at"/>; <paramref name="param"/> gets the
    /// parameter's lanes (scaled for decoupled decay).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe Vector<T> Of(in Streams<T> at, out Vector<T> param)
    {
        param = CpuFused.Load(at.Param);
        var grad = CpuFused.Load(at.Grad);
        if (_maximize) grad = -grad;
        if (_coupled) grad += param * _weightDecay;
        else if (_decoupled) param *= _decayFactor;
        return grad;
    }
}

/// <summary>
/// <c>start.lerp_(end, weight)</c> with a scalar weight, as ATen runs it: the weight rounded to <typeparamref name="T"/>
/// once, then from the start (|w| &lt; 0.5, factor w) or from the end (factor 1 - w); see <see cref="CpuFused.Lerp"/>.
/// The running averages of gradients (exp_avg, RMSprop's grad_avg) are this with weight 1 - beta.
/// </summary>
internal readonly unsafe struct LerpInPlace<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _factor;
    private readonly bool _fromStart;

    public LerpInPlace(double weight)
    {
        var w = CpuFused.Scalar<T>(weight);
        (_fromStart, _factor) = T.Abs(w) < CpuFused.Scalar<T>(0.5) ? (true, w) : (false, T.One - w);
    }

    /// <summary>Updates <paramref name="start"/> in place and returns the new values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Apply(T* start, Vector<T> end)
    {
        var updated = CpuFused.Lerp(CpuFused.Load(start), end, _factor, _fromStart);
        CpuFused.Store(start, updated);
        return updated;
    }
}

/// <summary>
/// <c>avg.mul_(decay).addcmul_(x, x, value=1 - decay)</c>: the running average of squares most algorithms keep, with
/// <c>decay</c> and <c>1 - decay</c> (computed in double, as Python does) rounded to <typeparamref name="T"/> once.
/// </summary>
internal readonly unsafe struct SquareAverage<T> where T : unmanaged
{
    private readonly T _decay, _oneMinusDecay;

    public SquareAverage(double decay)
    {
        _decay = CpuFused.Scalar<T>(decay);
        _oneMinusDecay = CpuFused.Scalar<T>(1 - decay);
    }

    /// <summary>The average <paramref name="old"/> updated with <paramref name="x"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Of(Vector<T> old, Vector<T> x) => old * _decay + x * _oneMinusDecay * x;

    /// <summary>Updates the average at <paramref name="avg"/> in place and returns the new values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector<T> Apply(T* avg, Vector<T> x)
    {
        var updated = Of(CpuFused.Load(avg), x);
        CpuFused.Store(avg, updated);
        return updated;
    }
}
