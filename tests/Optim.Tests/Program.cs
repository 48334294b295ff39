using System;
using System.Globalization;
using Optim.Tests.Reliability;

namespace Optim.Tests;

/// <summary>
/// The test assembly's entry point, which the test runner does not call: tests that run risky work in a child process
/// start it (<c>dotnet Optim.Tests.dll fuzz ALGORITHM SEED TRIALS</c>, <c>gcstress ALGORITHM MILLISECONDS</c>, <c>gcstress-io ALGORITHM MILLISECONDS</c>), and <c>dotnet Optim.Tests.dll run FILTER...</c>
/// runs the tests whose name contains a filter where no SDK is installed (<see cref="Support.DirectRunner"/>).
/// </summary>
public static class Program
{
    /// <summary>
    /// Runs a fuzz worker (<c>fuzz</c>), a garbage-collection stress worker (<c>gcstress</c>, see <see cref="GcStress"/>; <c>gcstress-io</c>, see <see cref="GcStressIo"/>) or
    /// the named tests (<c>run</c>); exit code 0 when every outcome was clean or every test passed, 1 otherwise.
    /// </summary>
    public static int Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "run") return Support.DirectRunner.Run(args[1..], Console.Out);
        if (args.Length == 3 && args[0] is "gcstress" or "gcstress-io")
        {
            var algorithm = AlgorithmCatalog.Get(args[1]);
            var milliseconds = int.Parse(args[2], CultureInfo.InvariantCulture);
            var (count, found) = args[0] == "gcstress" ? GcStress.Run(algorithm, milliseconds) : GcStressIo.Run(algorithm, milliseconds);
            foreach (var v in found) Console.WriteLine(v);
            var done = args[0] == "gcstress"
                ? $"{count} steps and {found.Count} tampering violations"
                : $"{count} rounds of state dicts, checkpoints and averages and {found.Count} violations";
            Console.WriteLine($"{algorithm.Name}: {done} under GC stress");
            return found.Count == 0 ? 0 : 1;
        }
        if (args.Length != 4 || args[0] != "fuzz")
        {
            Console.Error.WriteLine("usage: Optim.Tests fuzz ALGORITHM SEED TRIALS | gcstress ALGORITHM MILLISECONDS | gcstress-io ALGORITHM MILLISECONDS | run FILTER...");
            return 2;
        }
        var info = AlgorithmCatalog.Get(args[1]);
        var violations = Tamper.Run(info, int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture));
        foreach (var v in violations) Console.WriteLine(v);
        Console.WriteLine($"{info.Name}: {Tamper.Outcomes[0]} succeeded, {Tamper.Outcomes[1]} failed cleanly, {violations.Count} violations");
        return violations.Count == 0 ? 0 : 1;
    }
}
