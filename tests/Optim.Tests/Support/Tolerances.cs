using static TorchSharp.torch;

namespace Optim.Tests.Support;

/// <summary>
/// Tolerances for the PyTorch 1.13 goldens of the algorithms whose kernels changed between 1.13 and libtorch 2.10
/// (Adam, AdamW, Adagrad, RMSprop: sqrt/addcmul/addcdiv differ by 1-2 ulp, and 1.13 uses mul_().add_() where 2.x uses
/// lerp_). They are kept at about 2 ulp, so wrong math or wrong scalars fail; what they cannot see
/// is exactly what they absorb (lerp_ versus mul_().add_(), sqrt(v)/c versus sqrt(v/c)): only bitwise goldens from
/// PyTorch 2.x can check that.
/// </summary>
public static class Tolerances
{
    /// <summary>
    /// About 2 ulp at the parameters' typical magnitude (~1). Measured worst over all cases (25 steps): 1.2e-7 for fp32
    /// (Adagrad, AdamW, RMSprop), 4.4e-16 for fp64 (Adam, at a parameter of magnitude ~2-4, i.e. 1 ulp there).
    /// </summary>
    public static double Atol(ScalarType dtype) => dtype == ScalarType.Float32 ? 3e-7 : 3e-16;

    /// <summary>
    /// fp64 needs a relative term (about 2 ulp relative) for parameters past magnitude 1, where one ulp exceeds the
    /// absolute tolerance; fp32 stays within its absolute tolerance.
    /// </summary>
    public static double Rtol(ScalarType dtype) => dtype == ScalarType.Float32 ? 0 : 4e-16;
}
