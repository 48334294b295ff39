using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// In-process: TorchSharp's native library is patched in this project's output folder by the build, and a generated
// benchmark project would not be. `--quick` runs a short job that CI-sized machines can afford.
var quick = System.Array.IndexOf(args, "--quick") >= 0;
var job = (quick ? Job.ShortRun : Job.Default).WithToolchain(InProcessEmitToolchain.Instance);
var config = DefaultConfig.Instance.AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator);
var rest = System.Array.FindAll(args, a => a != "--quick");
BenchmarkSwitcher.FromAssembly(typeof(Optim.Benchmarks.SgdStepBenchmarks).Assembly).Run(rest.Length == 0 ? new[] { "--filter", "*" } : rest, config);
