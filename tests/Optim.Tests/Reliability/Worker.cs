using System;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;

namespace Optim.Tests.Reliability;

/// <summary>
/// Runs this test assembly as a child process (its <see cref="Program"/>): work that may crash the process natively
/// fails a test with the child's output instead of ending the test run.
/// </summary>
public static class Worker
{
    /// <summary>Runs <c>dotnet Optim.Tests.dll ARGS</c>; returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> Run(params string[] args)
    {
        var assembly = typeof(Worker).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(assembly)!,
        };
        start.ArgumentList.Add(assembly);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var child = Process.Start(start)!;
        var stderr = child.StandardError.ReadToEndAsync();
        var stdout = await child.StandardOutput.ReadToEndAsync();
        await child.WaitForExitAsync();
        return (child.ExitCode, stdout, await stderr);
    }
}
