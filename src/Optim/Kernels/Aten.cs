using System;
using System.Threading;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Kernels;

/// <summary>
/// The one bridge to ATen ops that TorchSharp does not bind (the Scalar overload of <c>lerp_</c>, the
/// <c>_foreach_*</c> and <c>_fused_*</c> kernels). It compiles a TorchScript unit once per process, lazily and
/// thread-safely, and exposes typed C# methods; no TorchScript leaves this file.
/// </summary>
/// <remarks>
/// TorchScript pitfalls handled here (REFERENCE.md §1): floats arrive as double, <c>double[]</c> is not accepted (per
/// tensor scalars are passed as tensors), a lone <c>Tensor[]</c> must be boxed, invoking an undefined name crashes
/// the process (only the names below are invoked), and disposing a unit does not free it (we keep one forever).
/// </remarks>
internal static class Aten
{
    private const string Script = """
        def lerp_scalar_(self: Tensor, end: Tensor, weight: float):
            self.lerp_(end, weight)
        """;

    private static int _compilations;
    private static readonly Lazy<jit.CompilationUnit> Unit = new(Compile, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>How many times the unit was compiled in this process (tests check it is at most one).</summary>
    public static int Compilations => Volatile.Read(ref _compilations);

    private static jit.CompilationUnit Compile()
    {
        Interlocked.Increment(ref _compilations);
        return jit.compile(Script);
    }

    private static void Invoke(string name, params object?[] args)
    {
        // Grad mode of the caller applies inside the unit; optimizer math never records graphs.
        using var _ = no_grad();
        Unit.Value.invoke(name, args!);
    }

    /// <summary>
    /// <c>self.lerp_(end, weight)</c> with a Scalar weight, as PyTorch calls it. For float32/float64 a 0-dim weight
    /// tensor of the same dtype gives the same bits without the TorchScript call; for half precision it does not
    /// (the Scalar overload keeps the weight in float), so those go through the unit.
    /// </summary>
    public static void Lerp_(Tensor self, Tensor end, double weight)
    {
        if (self.dtype is ScalarType.Float32 or ScalarType.Float64)
        {
            using var w = torch.tensor(weight, self.dtype, self.device);
            self.lerp_(end, w);
        }
        else
        {
            Invoke("lerp_scalar_", self, end, weight);
        }
    }
}
