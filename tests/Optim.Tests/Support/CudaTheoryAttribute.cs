using TorchSharp;

namespace Optim.Tests.Support;

/// <summary>A theory that runs only where a CUDA device exists, and is reported as skipped elsewhere.</summary>
public sealed class CudaTheoryAttribute : TheoryAttribute
{
    public CudaTheoryAttribute()
    {
        if (!torch.cuda.is_available()) Skip = "no CUDA device (TorchSharp-cpu, or no GPU)";
    }
}
