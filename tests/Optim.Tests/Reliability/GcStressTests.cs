using Xunit.Abstractions;

namespace Optim.Tests.Reliability;

/// <summary>
/// Every algorithm's steps, on every path, under constant garbage collection (<see cref="GcStress"/>) in a child
/// process: a native object freed by its finalizer while a native call still reads it aborts the child (exit code 134)
/// and fails the test, instead of failing some other test at random under load.
/// </summary>
public class GcStressTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(Support.Algorithms.NameData), MemberType = typeof(Support.Algorithms))]
    public async System.Threading.Tasks.Task Steps_survive_constant_garbage_collection(string algorithm)
    {
        var (exitCode, stdout, stderr) = await Worker.Run("gcstress", algorithm, "1500");
        output.WriteLine(stdout);
        exitCode.Should().Be(0, $"{algorithm}'s steps must survive garbage collection at any moment (exit code {exitCode}; 134 is an abort).\n{stdout}\n{stderr}");
    }
}
