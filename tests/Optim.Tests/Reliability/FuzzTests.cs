using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using Xunit.Abstractions;

namespace Optim.Tests.Reliability;

/// <summary>
/// For every algorithm and path: random tampering with parameters (<c>set_</c> to other sizes and dtypes), state tensors
/// (the public <see cref="ParameterState.Set"/>), state dicts and checkpoint bytes, each followed by a step or a load.
/// Each worker runs in a child process, so a native crash (which these inputs used to cause) fails the test with the
/// child's output instead of ending the test run.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    public static TheoryData<string> Algorithms() => new(AlgorithmCatalog.All.Select(a => a.Name));

    [Theory]
    [MemberData(nameof(Algorithms))]
    public async System.Threading.Tasks.Task Tampering_never_crashes_and_a_failure_changes_nothing(string algorithm)
    {
        var assembly = typeof(Tamper).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(assembly)!,
        };
        foreach (var arg in new[] { assembly, "fuzz", algorithm, "20251130", "40" }) start.ArgumentList.Add(arg);
        using var child = Process.Start(start)!;
        var stderr = child.StandardError.ReadToEndAsync();
        var stdout = await child.StandardOutput.ReadToEndAsync();
        await child.WaitForExitAsync();
        output.WriteLine(stdout);
        child.ExitCode.Should().Be(0, $"the fuzz worker for {algorithm} must finish cleanly (exit code {child.ExitCode}; a negative or >128 code is a signal).\n{stdout}\n{await stderr}");
    }
}
