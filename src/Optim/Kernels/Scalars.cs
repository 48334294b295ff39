using System;
using TorchSharp;

namespace Optim.Kernels;

/// <summary>
/// The <see cref="Scalar"/> arguments of TorchSharp ops, kept alive through the native call.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp's ops take a <see cref="Scalar"/>, a wrapper of a native <c>at::Scalar</c> with a finalizer that frees it,
/// and pass only its handle to native code. A Scalar made on the spot (C#'s implicit conversion in <c>t.mul_(0.9)</c>,
/// or one TorchSharp makes inside <c>add_(t)</c>, <c>add_(x)</c>, <c>addcdiv_(a, b)</c>, the operators <c>t + u</c>,
/// <c>t + 1</c> and <c>t * x</c>, and <c>linalg.vector_norm(t, ord)</c>) is unreachable once its handle is read, so a
/// garbage collection on another thread during the native call may run its finalizer and free the <c>at::Scalar</c>
/// before ATen reads it: the op then fails with "Unknown scalar type" or a failed <c>toDouble</c>/<c>toLong</c> (an
/// unhandled exception that aborts the process), crashes, or reads a wrong value. DisposeScopes hold tensors only. Every Scalar argument in this library therefore comes from <see cref="S(double)"/> (or is
/// <see cref="One"/>), and the TorchSharp overloads that make Scalars inside are not called
/// (<c>ScalarLifetimeTests</c> checks both in the compiled library).
/// </para>
/// <para>
/// <see cref="S(double)"/> keeps the Scalar it makes in a ring of the calling thread, so it stays reachable until
/// <see cref="RingSize"/> more Scalars were made on that thread, and is disposed then: far past the one op, on the
/// same thread, that it is made for. Use it only as an argument of the call it is made for; never keep it.
/// </para>
/// <para>
/// A custom optimizer's step should do the same (<c>using static Optim.Kernels.Scalars;</c>, then
/// <c>param.add_(update, S(-lr))</c>), as the CustomOptimizer sample's Lion does.
/// </para>
/// </remarks>
public static class Scalars
{
    /// <summary>How many Scalars each thread keeps alive; no single op takes more than a few.</summary>
    public const int RingSize = 256;

    [ThreadStatic]
    private static Scalar?[]? _ring;

    [ThreadStatic]
    private static int _next;

    /// <summary>The integer 1, as the <c>alpha</c> or <c>value</c> TorchSharp's shorter overloads pass; never disposed (internal: a user's Dispose would break every op that passes it; use <c>S(1L)</c>).</summary>
    internal static Scalar One { get; } = 1L.ToScalar();

    /// <summary>A double Scalar for the op it is passed to (a Python float in PyTorch).</summary>
    public static Scalar S(double value) => Keep(value.ToScalar());

    /// <summary>An integer Scalar for the op it is passed to (a Python int in PyTorch).</summary>
    public static Scalar S(long value) => Keep(value.ToScalar());

    private static Scalar Keep(Scalar scalar)
    {
        var ring = _ring ??= new Scalar?[RingSize];
        ring[_next]?.Dispose();
        ring[_next] = scalar;
        _next = (_next + 1) % RingSize;
        return scalar;
    }
}
