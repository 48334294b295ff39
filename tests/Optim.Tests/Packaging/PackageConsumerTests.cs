using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace Optim.Tests.Packaging;

/// <summary>
/// What a NuGet user gets: src/Optim packed under a unique prerelease version into a temporary feed, and a throw-away
/// console app outside the repository (no Directory.Build.* of ours) that references it and TorchSharp-cpu, built,
/// run (dotnet run) and published. The app trains a tiny linear model with Optim.Adam. On a Linux whose libstdc++
/// lacks GLIBCXX_3.4.32 (Debian 12, Ubuntu 22.04) it runs only because the package's buildTransitive targets patched
/// the copies of libLibTorchSharp.so in the output and publish folders; the copy in the NuGet cache stays as it was.
/// </summary>
public sealed class PackageConsumerTests(ITestOutputHelper output) : IDisposable
{
    private const string TorchSharpVersion = "0.107.0";
    private const string GlibcxxVersion = "GLIBCXX_3.4.32";
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(2);

    // A unique prerelease version: the global packages folder can never serve a stale Optim to this test.
    private readonly string _version = "0.0.0-consumertest." + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) +
                                       ".g" + Guid.NewGuid().ToString("N")[..12];
    private readonly string _work = Directory.CreateTempSubdirectory("optim-package-consumer-").FullName;
    private string? _packagesRoot;

    public void Dispose()
    {
        TryDelete(_work);
        // Restore extracted this version into the global packages folder; nothing else will ever use it.
        TryDelete(Path.Combine(_packagesRoot ?? DefaultPackagesRoot(), "optim", _version));
    }

    [Fact]
    public void An_app_outside_the_repository_that_references_the_packed_package_trains_and_gets_the_libstdcxx_fix()
    {
        var repo = RepositoryRoot();
        var feed = Path.Combine(_work, "feed");
        var app = Path.Combine(_work, "app");
        Path.GetFullPath(app).StartsWith(repo, StringComparison.Ordinal).Should().BeFalse(
            $"the app must live outside the repository ({repo}) so that none of its Directory.Build.* files apply; the temp folder is {_work}");

        // Pack. --artifacts-path keeps the pack's bin/obj out of the repository's own build folders.
        Dotnet(repo, BuildTimeout, "pack", Path.Combine(repo, "src", "Optim", "Optim.csproj"), "-c", "Release", "-o", feed,
            "--artifacts-path", Path.Combine(_work, "artifacts"), $"-p:Version={_version}");
        var nupkg = Path.Combine(feed, $"Optim.{_version}.nupkg");
        File.Exists(nupkg).Should().BeTrue($"dotnet pack should have written {nupkg}");
        using (var zip = ZipFile.OpenRead(nupkg))
            zip.Entries.Select(e => e.FullName).Should().Contain(["buildTransitive/Optim.targets", "build/Optim.targets"]);

        WriteApp(app, feed);

        // Build, then run the built app the way a user does; then publish it and run the published copy.
        var build = Dotnet(app, BuildTimeout, "build", "-c", "Release");
        var run = Dotnet(app, RunTimeout, "run", "--no-build", "-c", "Release");
        ShouldHaveTrained(run, "dotnet run");
        var publish = Path.Combine(_work, "publish");
        Dotnet(app, BuildTimeout, "publish", "--no-build", "-c", "Release", "-o", publish);
        ShouldHaveTrained(Dotnet(publish, RunTimeout, Path.Combine(publish, "App.dll")), "the published app");

        _packagesRoot = PackagesRoot(app);
        if (!OperatingSystem.IsLinux()) return;
        var cached = Path.Combine(_packagesRoot, "torchsharp", TorchSharpVersion, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        File.Exists(cached).Should().BeTrue($"TorchSharp's native library should be in the global packages folder at {cached}");
        var copies = new[] { Path.Combine(app, "bin"), publish }
            .Select(dir => Directory.EnumerateFiles(dir, "libLibTorchSharp.so", SearchOption.AllDirectories).SingleOrDefault()).ToArray();
        copies.Should().NotContainNulls("the build output and the publish folder should each hold one libLibTorchSharp.so");

        if (SystemLibstdcxxHas(GlibcxxVersion) != false)
        {
            // libstdc++ has the version (or is not where we look): the targets leave the copies alone.
            foreach (var copy in copies)
                File.ReadAllBytes(copy!).SequenceEqual(File.ReadAllBytes(cached)).Should().BeTrue($"{copy} should be TorchSharp's file unchanged");
            return;
        }
        VersionRequirementFlags(cached).Should().Be((ushort)0, $"the NuGet cache's copy must keep its strong {GlibcxxVersion} requirement");
        foreach (var copy in copies)
            VersionRequirementFlags(copy!).Should().Be((ushort)2, // VER_FLG_WEAK
                $"the package's targets should have marked {GlibcxxVersion} weak in {copy}; build output:\n{build}");
    }

    private void WriteApp(string app, string feed)
    {
        Directory.CreateDirectory(app);
        // Empty Directory.Build.* and Directory.Packages.props: nothing above the temp folder applies to the app.
        foreach (var file in new[] { "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
            File.WriteAllText(Path.Combine(app, file), "<Project />\n");
        // The feed is added to the sources configured for this machine (nuget.org for TorchSharp), not in their place.
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="optim-under-test" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "App.csproj"), """
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Optim" Version="[VERSION]" />
                <PackageReference Include="TorchSharp-cpu" Version="TORCHSHARP" />
              </ItemGroup>
            </Project>
            """.Replace("VERSION", _version, StringComparison.Ordinal)
               .Replace("TORCHSHARP", TorchSharpVersion, StringComparison.Ordinal));
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using System;
            using System.Globalization;
            using TorchSharp;
            using static TorchSharp.torch;

            torch.manual_seed(0);
            var model = nn.Linear(3, 1);
            var x = torch.randn(64, 3);
            var y = x.matmul(torch.tensor(new float[] { 1f, -2f, 0.5f }).reshape(3, 1)) + 0.3f;
            var optimizer = new Optim.Adam(model.parameters(), lr: 0.1);
            for (int step = 0; step < 5; step++)
            {
                optimizer.zero_grad();
                using var loss = nn.functional.mse_loss(model.forward(x), y);
                loss.backward();
                optimizer.step();
                Console.WriteLine("LOSS " + loss.item<float>().ToString("R", CultureInfo.InvariantCulture));
            }
            """);
    }

    private static void ShouldHaveTrained(string processOutput, string what)
    {
        var losses = processOutput.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("LOSS ", StringComparison.Ordinal))
            .Select(l => double.Parse(l["LOSS ".Length..], CultureInfo.InvariantCulture)).ToArray();
        losses.Should().HaveCount(5, $"{what} should print the loss of each of its 5 Adam steps; its output:\n{processOutput}");
        losses.Should().OnlyContain(l => double.IsFinite(l), $"{what}'s losses should be finite; its output:\n{processOutput}");
        losses[^1].Should().BeLessThan(losses[0], $"Adam should bring {what}'s loss down; its output:\n{processOutput}");
    }

    /// <summary>Runs dotnet and returns its output; a non-zero exit or a timeout fails the test with that output.</summary>
    private string Dotnet(string directory, TimeSpan timeout, params string[] arguments)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var info = new ProcessStartInfo(dotnet) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        // A clean MSBuild: none of the settings `dotnet test` leaves in our environment, and no build server or
        // node that outlives the command (they would hold its output pipes open, and it would never end).
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            info.Environment.Remove(key);
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        info.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        info.Environment["UseSharedCompilation"] = "false";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";

        var text = new StringBuilder();
        void Append(object sender, DataReceivedEventArgs e) { if (e.Data != null) lock (text) text.AppendLine(e.Data); }
        var command = $"{dotnet} {string.Join(' ', arguments)} (in {directory})";
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += Append;
        process.ErrorDataReceived += Append;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"{command} ran past {timeout}; its output:\n{text}");
        }
        process.WaitForExit(); // the last lines of output
        output.WriteLine($"{command}: exit {process.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s");
        string result;
        lock (text) result = text.ToString();
        process.ExitCode.Should().Be(0, $"{command} should succeed; its output:\n{result}");
        return result;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Optim.sln"))) return dir.FullName + Path.DirectorySeparatorChar;
        throw new InvalidOperationException($"No Optim.sln above {AppContext.BaseDirectory}");
    }

    /// <summary>The global packages folder restore used for the app, as recorded in its project.assets.json.</summary>
    private static string PackagesRoot(string app)
    {
        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(app, "obj", "project.assets.json")));
        return assets.RootElement.GetProperty("packageFolders").EnumerateObject().First().Name;
    }

    private static string DefaultPackagesRoot() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages
            ? packages
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Whether the system libstdc++ defines the version (null: none found where the targets look).</summary>
    private static bool? SystemLibstdcxxHas(string version)
    {
        string[] candidates =
        [
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        ];
        var system = candidates.FirstOrDefault(File.Exists);
        return system == null ? null : File.ReadAllBytes(system).AsSpan().IndexOf(Encoding.ASCII.GetBytes(version + "\0")) >= 0;
    }

    /// <summary>
    /// The vna_flags of the library's requirement of <see cref="GlibcxxVersion"/> (its Elf64_Vernaux entry in
    /// .gnu.version_r): 0 for a plain requirement, 2 (VER_FLG_WEAK) once weakened.
    /// </summary>
    private static ushort VersionRequirementFlags(string library)
    {
        var elf = File.ReadAllBytes(library);
        ulong U64(long at) => BinaryPrimitives.ReadUInt64LittleEndian(elf.AsSpan((int)at));
        uint U32(long at) => BinaryPrimitives.ReadUInt32LittleEndian(elf.AsSpan((int)at));
        ushort U16(long at) => BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan((int)at));
        var needle = Encoding.ASCII.GetBytes(GlibcxxVersion + "\0");

        long sections = (long)U64(0x28);
        int size = U16(0x3A), count = U16(0x3C);
        for (var s = 0; s < count; s++)
        {
            var header = sections + (long)s * size;
            if (U32(header + 4) != 0x6ffffffe) continue; // SHT_GNU_verneed
            var strings = (long)U64(sections + U32(header + 0x28) * size + 0x18);
            for (var need = (long)U64(header + 0x18); ; )
            {
                var aux = need + U32(need + 8);
                for (var a = 0; a < U16(need + 2); a++, aux += U32(aux + 12))
                    if (elf.AsSpan((int)(strings + U32(aux + 8))).StartsWith(needle)) return U16(aux + 4);
                if (U32(need + 12) == 0) break;
                need += U32(need + 12);
            }
        }
        throw new InvalidOperationException($"{library} does not require {GlibcxxVersion}");
    }
}
