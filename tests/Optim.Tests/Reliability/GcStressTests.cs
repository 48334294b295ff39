using Xunit.Abstractions;

namespace Optim.Tests.Reliability;

/// <summary>
/// Every algorithm's steps, on every path (<see cref="GcStress"/>), and the state dicts and checkpoints of a few
/// (<see cref="GcStressIo"/>), under constant garbage collection in a child process: a native object freed by its
/// finalizer while a native call still reads it aborts the child (exit code 134) and fails the test, instead of failing
/// some other test at random under load.
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

    // Algorithms whose state takes different routes through the formats: TorchSharp's format and eager state (Adam,
    // Adagrad), optimizer-wide state with lists of tensors (LBFGS), state of another shape than the parameter
    // (Adafactor), sparse gradients (SparseAdam).
    [Theory]
    [InlineData("Adam")]
    [InlineData("Adagrad")]
    [InlineData("LBFGS")]
    [InlineData("Adafactor")]
    [InlineData("SparseAdam")]
    public async System.Threading.Tasks.Task State_dicts_and_checkpoints_survive_constant_garbage_collection(string algorithm)
    {
        var (exitCode, stdout, stderr) = await Worker.Run("gcstress-io", algorithm, "2500");
        output.WriteLine(stdout);
        exitCode.Should().Be(0, $"{algorithm}'s state dicts and checkpoints must survive garbage collection at any moment and restore the state (exit code {exitCode}; 134 is an abort).\n{stdout}\n{stderr}");
    }
}
