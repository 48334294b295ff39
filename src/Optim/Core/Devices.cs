using static TorchSharp.torch;

namespace Optim;

/// <summary>Device comparisons shared by the core (TorchSharp's <c>Device</c> objects are not compared by value).</summary>
internal static class Devices
{
    /// <summary>Whether <paramref name="a"/> and <paramref name="b"/> live on the same device (type and index).</summary>
    public static bool Same(Tensor a, Tensor b) => a.device_type == b.device_type && a.device_index == b.device_index;
}
