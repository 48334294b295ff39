using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Optim.Benchmarks;

/// <summary>
/// How much of the machine other processes used while we measured: busy CPU time of the whole machine (Linux
/// <c>/proc/stat</c>) minus this process's CPU time, over wall time × logical processors. On a shared two-core machine a
/// concurrent build halves the cores ATen's two threads expect, and its parallel kernels slow far more than twice, so
/// the report states this next to the numbers.
/// </summary>
public sealed class Contention
{
    private const double TicksPerSecond = 100; // USER_HZ: 100 on every Linux ABI .NET runs on
    private readonly double? _machineBusyStart;
    private readonly TimeSpan _ownStart;
    private readonly long _wallStart;

    private Contention(double? busy, TimeSpan own, long wall) => (_machineBusyStart, _ownStart, _wallStart) = (busy, own, wall);

    /// <summary>Starts watching.</summary>
    public static Contention Start() => new(MachineBusySeconds(), Process.GetCurrentProcess().TotalProcessorTime, Stopwatch.GetTimestamp());

    /// <summary>Share of all logical processors that other processes kept busy since <see cref="Start"/> (0..1), or null off Linux.</summary>
    public double? OthersShare()
    {
        if (_machineBusyStart is not { } start || MachineBusySeconds() is not { } end) return null;
        var own = (Process.GetCurrentProcess().TotalProcessorTime - _ownStart).TotalSeconds;
        var wall = Stopwatch.GetElapsedTime(_wallStart).TotalSeconds;
        return Math.Clamp((end - start - own) / (wall * Environment.ProcessorCount), 0, 1);
    }

    private static double? MachineBusySeconds()
    {
        try
        {
            if (!File.Exists("/proc/stat")) return null;
            var cpu = File.ReadLines("/proc/stat").First(l => l.StartsWith("cpu ", StringComparison.Ordinal));
            var f = cpu.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait; steal counts as taken from us.
            var busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f.Length > 7 ? f[7] : 0);
            return busy / TicksPerSecond;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
