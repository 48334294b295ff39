using Optim.Tests.Support;

namespace Optim.Tests;

/// <summary>
/// The foreach and fused paths against the for-loop path, on every golden configuration.
/// On CPU, ATen's foreach ops fall back to the same per-tensor kernels, so foreach must match the for-loop bit for
/// bit. The fused CPU kernels fuse the arithmetic differently (one pass, different rounding of intermediate results),
/// so fused is compared within a tolerance.
/// </summary>
public class PathParityTests
{
    public static TheoryData<string, string> Cases() => GoldenFile.Cases(GoldenFile.Direct);

    private static System.Collections.Generic.List<double[][]> Run(GoldenCase c, Implementation impl)
    {
        var ps = c.MakeParameters();
        using var opt = c.Create(ps, impl);
        return c.Run(ps, opt);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Foreach_matches_the_for_loop_bit_for_bit(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        if (!c.Info.HasForeach) return;
        if (c.Info.ForeachMatchesForLoop)
            Trajectories.ShouldBeBitwise(Run(c, Implementation.Foreach), Run(c, Implementation.ForLoop));
        else
            Trajectories.ShouldBeClose(Run(c, Implementation.Foreach), Run(c, Implementation.ForLoop), Tolerance(c).Atol, Tolerance(c).Rtol);
    }

    // The default path must give PyTorch's default (CPU: for-loop) numbers exactly, whatever it picks.
    [Theory]
    [MemberData(nameof(Cases))]
    public void Auto_gives_the_for_loops_bits(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        Trajectories.ShouldBeBitwise(Run(c, Implementation.Auto), Run(c, Implementation.ForLoop));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fused_matches_the_for_loop_within_rounding(string file, string id)
    {
        var c = GoldenCase.Get(file, id);
        if (!c.Info.HasFusedKernel) return; // ATen has no fused kernel for it (tested elsewhere).
        Trajectories.ShouldBeClose(Run(c, Implementation.Fused), Run(c, Implementation.ForLoop), Tolerance(c).Atol, Tolerance(c).Rtol);
    }

    // 25 steps of a differently-rounded update: a few ulp per step, relative to the values' size. ASGD's foreach computes
    // eta (a float32 state value in both paths) with float32 tensor ops where the for-loop rounds a Python float: eta can
    // differ by a float32 ulp (6e-8 relative), which moves an fp64 update of about lr·|grad| ≈ 1e-2 by about 1e-9.
    private static (double Atol, double Rtol) Tolerance(GoldenCase c) =>
        c.Dtype == TorchSharp.torch.ScalarType.Float32 ? (2e-6, 2e-5) : c.Algorithm == "ASGD" ? (3e-8, 0) : (1e-14, 1e-13);
}
