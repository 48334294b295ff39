using System;
using System.Globalization;
using Optim.Tests.Reliability;

namespace Optim.Tests;

/// <summary>
/// The test assembly's entry point, which the test runner does not call: tests that run risky work in a child process
/// start it (<c>dotnet Optim.Tests.dll fuzz ALGORITHM SEED TRIALS</c>), and <c>dotnet Optim.Tests.dll run FILTER...</c>
/// runs the tests whose name contains a filter where no SDK is installed (<see cref="Support.DirectRunner"/>).
/// </summary>
public static class Program
{
    /// <summary>Runs a fuzz worker (exit code 0 when every outcome was clean, 1 with the violations printed otherwise) or the named tests (0 when all passed).</summary>
    public static int Main(string[] args)
    {
        if (args.Length >= 2 && args[0] == "run") return Support.DirectRunner.Run(args[1..], Console.Out);
        if (args.Length != 4 || args[0] != "fuzz")
        {
            Console.Error.WriteLine("usage: Optim.Tests fuzz ALGORITHM SEED TRIALS | run FILTER...");
            return 2;
        }
        var info = AlgorithmCatalog.Get(args[1]);
        var violations = Tamper.Run(info, int.Parse(args[2], CultureInfo.InvariantCulture), int.Parse(args[3], CultureInfo.InvariantCulture));
        foreach (var v in violations) Console.WriteLine(v);
        Console.WriteLine($"{info.Name}: {Tamper.Outcomes[0]} succeeded, {Tamper.Outcomes[1]} failed cleanly, {violations.Count} violations");
        return violations.Count == 0 ? 0 : 1;
    }
}
