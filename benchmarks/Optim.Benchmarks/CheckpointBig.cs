using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--checkpoint-big [--parameters N]</c>: an Adam checkpoint whose state exceeds 2 GiB (default 300 M float32
/// parameters: 2.4 GB of exp_avg and exp_avg_sq) is saved to a file and loaded back, and the state must come back bit for
/// bit. Prints save and load times and the process's peak memory above its resident size before each (Linux: VmHWM,
/// reset through /proc/self/clear_refs). Too large for the test suite's time and memory; run by hand.
/// </summary>
internal static class CheckpointBig
{
    public static int Run(string[] args)
    {
        var at = Array.IndexOf(args, "--parameters");
        var n = at >= 0 && at + 1 < args.Length ? long.Parse(args[at + 1], System.Globalization.CultureInfo.InvariantCulture) : 300_000_000L;
        var directory = Directory.CreateTempSubdirectory("optim-checkpoint-big").FullName;
        var path = Path.Combine(directory, "adam.ckpt");
        try
        {
            var p = new Parameter(torch.randn(n));
            using var adam = new Adam(new[] { p }, lr: 1e-3);
            using (var grad = torch.randn(n))
            {
                p.grad = grad;
                adam.step();
                p.grad = null;
            }
            var state = adam.State[p];
            var stateBytes = state.Values.Sum(t => t.numel() * t.ElementSize);
            Console.WriteLine($"Adam over {n:N0} float32 parameters: {stateBytes / (double)(1 << 30):F2} GiB of state.");
            var expected = state.ToDictionary(e => e.Key, e => Hash(e.Value));

            var (saveSeconds, saveExtra) = Measure(() => adam.Save(path));
            var fileBytes = new FileInfo(path).Length;
            foreach (var t in state.Values) t.zero_();
            var (loadSeconds, loadExtra) = Measure(() => adam.Load(path));
            var same = adam.State[p].All(e => Hash(e.Value).SequenceEqual(expected[e.Key]));

            // Resuming: a fresh optimizer (no state yet) loads the file. Its state is allocated once, as the load's
            // staging tensors, which the commit takes over: nothing beyond the state itself.
            double resumeSeconds;
            long resumeExtra;
            bool resumedSame;
            {
                var fresh = new Parameter(torch.zeros(n));
                using var resumed = new Adam(new[] { fresh }, lr: 1e-3);
                (resumeSeconds, resumeExtra) = Measure(() => resumed.Load(path));
                resumedSame = resumed.State[fresh].All(e => Hash(e.Value).SequenceEqual(expected[e.Key]));
                fresh.Dispose();
            }

            Console.WriteLine($"file: {fileBytes / (double)(1 << 30):F2} GiB");
            Console.WriteLine($"save: {saveSeconds:F1} s, peak extra memory {Mib(saveExtra)} ({saveExtra / (double)stateBytes:P1} of the state)");
            Console.WriteLine($"load: {loadSeconds:F1} s, peak extra memory {Mib(loadExtra)} ({loadExtra / (double)stateBytes:P1} of the state)");
            Console.WriteLine(same ? "state after load: bit for bit" : "state after load: DIFFERENT");
            Console.WriteLine($"resume (a fresh optimizer loads): {resumeSeconds:F1} s, peak memory growth {Mib(resumeExtra)} " +
                $"({resumeExtra / (double)stateBytes:P1} of the state, which it now holds; beyond it: {Mib(Math.Max(0, resumeExtra - stateBytes))})");
            Console.WriteLine(resumedSame ? "resumed state: bit for bit" : "resumed state: DIFFERENT");
            return same && resumedSame ? 0 : 1;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static (double Seconds, long PeakExtraBytes) Measure(Action action)
    {
        GC.Collect();
        var baseline = Status("VmRSS");
        ResetPeak();
        var clock = Stopwatch.StartNew();
        action();
        var seconds = clock.Elapsed.TotalSeconds;
        return (seconds, Math.Max(0, Status("VmHWM") - baseline));
    }

    // SHA-256 of a tensor's bytes, 64 MiB at a time.
    private static byte[] Hash(Tensor tensor)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var scope = NewDisposeScope();
        var flat = tensor.reshape(-1);
        const long Chunk = 16L << 20;
        for (long start = 0; start < flat.numel(); start += Chunk)
        {
            using var inner = NewDisposeScope();
            hash.AppendData(flat.narrow(0, start, Math.Min(Chunk, flat.numel() - start)).bytes);
        }
        return hash.GetHashAndReset();
    }

    private static string Mib(long bytes) => $"{bytes / (double)(1 << 20):N0} MiB";

    private static void ResetPeak()
    {
        if (OperatingSystem.IsLinux()) File.WriteAllText("/proc/self/clear_refs", "5");
    }

    // A field of /proc/self/status in bytes (Linux); 0 elsewhere.
    private static long Status(string field)
    {
        if (!OperatingSystem.IsLinux()) return 0;
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }
}
