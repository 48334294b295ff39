using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace Optim.Benchmarks;

/// <summary>
/// <c>--quick</c>: the Stopwatch harness (<see cref="QuickRun"/>), a few minutes, writes docs/benchmarks.md, the charts and
/// the README's table. Otherwise: BenchmarkDotNet over <see cref="StepBenchmarks"/> and <see cref="UnfusedStepBenchmarks"/>.
/// Both take <c>--algorithm Adam,SGD</c> and <c>--shape 2000x100</c> to run part of the matrix (a partial quick run
/// prints its table but rewrites nothing), and <c>--threads N</c> to set ATen's thread count. Quick mode also takes
/// <c>--out DIR</c> (write the markdown and charts there instead), <c>--no-write</c> and <c>--deadline SECONDS</c> (the
/// time the measurements must fit in, default 150; budgets shrink on a slow machine to meet it). <c>--clip</c> measures
/// gradient clipping instead (<see cref="ClipBenchmark"/>).
/// <c>--kernel-costs</c> prints what one call through the ATen bridge costs (see <see cref="KernelCosts"/>);
/// <c>--flat-costs</c> what flat mode's checks cost per step (see <see cref="FlatCosts"/>); <c>--flat-slices [--sizes N,M]</c>
/// how the slice size of flat mode's op-by-op paths moves a step (see <see cref="FlatSlicing"/>).
/// <c>--device cuda</c> runs the quick harness on a GPU (see <see cref="BenchDevice"/>).
/// <c>--simd [--rounds N]</c>: the C# fused kernels against ATen's for-loop and the copy bound (see <see cref="SimdBench"/>).
/// <c>--checkpoint-big [--parameters N]</c>: saves and loads an Adam checkpoint of more than 2 GiB (<see cref="CheckpointBig"/>).
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Contains("--checkpoint-big")) return CheckpointBig.Run(args);
        var (selection, rest) = Selection.Parse(args);
        Catalog.Selected = selection;
        // --threads N: ATen's intra-op threads (default: libtorch's choice, one per core). One thread makes numbers on a
        // machine shared with other work far steadier (no parallel region waits for a descheduled thread); the
        // report states the count either way.
        var threadsAt = Array.IndexOf(rest, "--threads");
        if (threadsAt >= 0)
        {
            if (threadsAt + 1 >= rest.Length || !int.TryParse(rest[threadsAt + 1], out var threads) || threads < 1)
                throw new ArgumentException("--threads needs a positive count.");
            TorchSharp.torch.set_num_threads(threads);
            rest = rest.Where((_, i) => i != threadsAt && i != threadsAt + 1).ToArray();
        }
        // --device cuda: the quick harness on a GPU (steps and copies timed to the device's completion); writes only to --out.
        var deviceAt = Array.IndexOf(rest, "--device");
        if (deviceAt >= 0)
        {
            if (deviceAt + 1 >= rest.Length) throw new ArgumentException("--device needs a device, such as cuda or cuda:0.");
            BenchDevice.Use(rest[deviceAt + 1]);
            rest = rest.Where((_, i) => i != deviceAt && i != deviceAt + 1).ToArray();
        }
        if (rest.Contains("--flat-costs"))
        {
            FlatCosts.Run(args.Contains("--algorithm") ? selection.Algorithms[0] : Adam.Info, args.Contains("--shape") ? selection.Shapes[0] : Shape.Parse("2000x100"), Console.WriteLine);
            return 0;
        }
        if (rest.Contains("--simd"))
        {
            var roundsAt = Array.IndexOf(rest, "--rounds");
            var rounds = roundsAt >= 0 && roundsAt + 1 < rest.Length ? int.Parse(rest[roundsAt + 1], System.Globalization.CultureInfo.InvariantCulture) : 7;
            SimdBench.Run(selection.Algorithms, rounds, Console.WriteLine);
            return 0;
        }
        if (rest.Contains("--flat-slices"))
        {
            FlatSlicing.Run(selection, rest, Console.WriteLine);
            return 0;
        }
        if (rest.Contains("--kernel-costs"))
        {
            KernelCosts.Run(Console.WriteLine);
            return 0;
        }
        // --clip: clip_grad_norm_ against TorchSharp's (ClipBenchmark); 2,000 x 100 unless --shape says otherwise.
        if (rest.Contains("--clip"))
            return ClipBenchmark.Run(args.Contains("--shape") ? selection.Shapes : new[] { Shape.Parse("2000x100") }, Console.WriteLine);
        if (rest.Contains("--quick"))
        {
            var deadlineAt = Array.IndexOf(rest, "--deadline");
            if (deadlineAt >= 0)
            {
                if (deadlineAt + 1 >= rest.Length || !double.TryParse(rest[deadlineAt + 1], System.Globalization.CultureInfo.InvariantCulture, out var seconds) || seconds <= 0)
                    throw new ArgumentException("--deadline needs a positive number of seconds.");
                QuickRun.Deadline = TimeSpan.FromSeconds(seconds);
            }
            var outAt = Array.IndexOf(rest, "--out");
            return Quick(selection, rest.Contains("--no-write"), outAt >= 0 && outAt + 1 < rest.Length ? rest[outAt + 1] : null);
        }

        // In-process: TorchSharp's native library is patched in this project's output folder by the build, and a
        // generated benchmark project would not be. A short job (3 warm-up and 10 measured iterations of ~250 ms) keeps
        // the whole matrix (one case per algorithm, shape and path, about 5 s each) to 10-15 minutes on two cores; BenchmarkDotNet's own options (--job, --filter,
        // --iterationCount...) still apply on top.
        var job = Job.Default
            .WithWarmupCount(3)
            .WithIterationCount(10)
            .WithIterationTime(TimeInterval.FromMilliseconds(250))
            .WithToolchain(InProcessEmitToolchain.Instance);
        var config = DefaultConfig.Instance
            .AddJob(job)
            .AddColumn(StatisticColumn.Median)
            .AddColumn(FullRunRecords.Columns)
            .WithOptions(ConfigOptions.DisableOptimizationsValidator | ConfigOptions.JoinSummary);
        var types = new List<Type>();
        if (StepBenchmarks.Names.Any()) types.Add(typeof(StepBenchmarks));
        if (UnfusedStepBenchmarks.Names.Any()) types.Add(typeof(UnfusedStepBenchmarks));
        BenchmarkSwitcher.FromTypes(types.ToArray()).Run(rest.Any(a => a.StartsWith("--filter", StringComparison.Ordinal) || a == "-f") ? rest : rest.Concat(new[] { "--filter", "*" }).ToArray(), config);
        return 0;
    }

    private static int Quick(Selection selection, bool noWrite, string? outFolder)
    {
        Console.WriteLine($"Quick mode: median step time per (algorithm, shape, path), fp32 on {BenchDevice.Current}.");
        if (Catalog.SkippedNote is { } skipped) Console.WriteLine(skipped);
        var clock = Stopwatch.StartNew();
        var contention = Contention.Start();
        var results = QuickRun.Run(selection, Console.WriteLine);
        var elapsed = clock.Elapsed;
        var others = contention.OthersShare();
        Console.WriteLine();

        // A full run rewrites docs/ and the README's table; --out DIR writes the markdown and charts there instead
        // (any selection); --no-write writes nothing.
        var root = RepositoryRoot();
        var docs = outFolder ?? (selection.IsEverything && root is not null ? Path.Combine(root, "docs") : null);
        // docs/ holds the CPU's numbers: another device's run writes only where --out says.
        if (noWrite || (outFolder is null && BenchDevice.Current.type != TorchSharp.DeviceType.CPU)) docs = null;
        var charts = docs is null ? Array.Empty<string>() : Charts.Write(results, docs);
        var markdown = Report.Markdown(results, elapsed, others, charts);
        Console.WriteLine(markdown);
        if (docs is not null)
        {
            var docsFile = Path.Combine(docs, "benchmarks.md");
            File.WriteAllText(docsFile, Report.WithNotes(markdown, docsFile));
            var readme = outFolder is null && Report.UpdateReadme(Path.Combine(root!, "README.md"), Report.Summary(results, elapsed, others));
            Console.WriteLine($"Wrote {Path.Combine(docs, "benchmarks.md")} and {charts.Count} chart(s){(readme ? "; updated README.md" : "")}.");
        }
        else
        {
            Console.WriteLine("Nothing written: a partial run (--algorithm/--shape) or --no-write writes nothing unless --out DIR is given; a full quick run rewrites docs/benchmarks.md, the charts and the README table.");
        }
        Console.WriteLine($"Quick mode measurements took {elapsed.TotalSeconds:F0} s.");
        return 0;
    }

    /// <summary>The folder holding Optim.sln: from the working directory up, else from the executable up.</summary>
    private static string? RepositoryRoot()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Optim.sln"))) return dir.FullName;
            }
        }
        return null;
    }
}
