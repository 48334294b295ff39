using System;
using System.IO;

namespace Optim.Tests.Support;

// The runner the CUDA machine uses in place of `dotnet test`: it must run, report and fail as the test host would.
public class DirectRunnerTests
{
    [Fact]
    public void It_runs_facts_and_theory_rows_reports_skips_and_fails_on_a_failure()
    {
        using var log = new StringWriter();
        DirectRunner.Run(new[] { "Planted" }, log, new[] { typeof(PlantedTests) }).Should().Be(1);
        var text = log.ToString();
        text.Should().Contain("PASS Optim.Tests.Support.PlantedTests.Passes");
        text.Should().Contain("PASS Optim.Tests.Support.PlantedTests.Rows(1)").And.Contain("PASS Optim.Tests.Support.PlantedTests.Rows(2)");
        text.Should().Contain("SKIP Optim.Tests.Support.PlantedTests.Skipped: planted skip");
        text.Should().Contain("FAIL Optim.Tests.Support.PlantedTests.Fails").And.Contain("planted failure");
        text.Should().Contain("3 passed, 1 failed, 1 skipped");
    }

    [Fact]
    public void A_clean_run_passes_and_a_run_of_nothing_fails()
    {
        using var log = new StringWriter();
        DirectRunner.Run(new[] { "PlantedTests.Passes", "PlantedTests.Rows" }, log, new[] { typeof(PlantedTests) }).Should().Be(0);
        log.ToString().Should().Contain("3 passed, 0 failed, 0 skipped");
        DirectRunner.Run(new[] { "NoSuchTestAnywhere" }, log).Should().Be(1, "a filter that matches nothing ran nothing");
    }
}

// Not public, so xunit does not run it: only the runner above, given the type.
#pragma warning disable xUnit1000
internal sealed class PlantedTests
#pragma warning restore xUnit1000
{
    [Fact]
    public void Passes()
    {
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Rows(int row) => row.Should().BePositive();

    [Fact(Skip = "planted skip")]
    public void Skipped() => throw new InvalidOperationException("a skipped test ran");

    [Fact]
    public void Fails() => throw new InvalidOperationException("planted failure");
}
