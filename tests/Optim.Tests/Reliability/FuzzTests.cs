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
        var (exitCode, stdout, stderr) = await Worker.Run("fuzz", algorithm, "20251130", "40");
        output.WriteLine(stdout);
        exitCode.Should().Be(0, $"the fuzz worker for {algorithm} must finish cleanly (exit code {exitCode}; a negative or >128 code is a signal).\n{stdout}\n{stderr}");
    }
}
