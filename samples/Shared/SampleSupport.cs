// What the samples that write files share: where those files go, the charts' font and the console for tables. Each sample's project compiles
// this file in (it is no part of the library).
using System;
using System.IO;
using System.Linq;
using System.Reflection;
using ScottPlot;
using Spectre.Console;

namespace Samples;

/// <summary>Folders of the repository, found from the sample's source folder (recorded at build time).</summary>
internal static class SampleFolders
{
    /// <summary>
    /// <paramref name="relative"/> under the sample's source folder (the <c>SampleDirectory</c> assembly metadata) when the
    /// sources are there, else under the folder of the binaries.
    /// </summary>
    public static string FromSample(string relative)
    {
        var source = Assembly.GetEntryAssembly()?.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "SampleDirectory")?.Value;
        return source is not null && Directory.Exists(source)
            ? Path.GetFullPath(Path.Combine(source, relative))
            : Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, Path.GetFileName(relative)));
    }

    /// <summary>The repository's docs/ folder (or docs/ beside the binaries).</summary>
    public static string Docs => FromSample(Path.Combine("..", "..", "docs"));
}

/// <summary>The charts' font: Skia draws text with the system's fonts (ScottPlot ships none).</summary>
internal static class ChartFont
{
    private static readonly string[] Preferred = ["DejaVu Sans", "Segoe UI", "Helvetica", "Arial", "Liberation Sans"];

    /// <summary>On a Linux without any font (a bare container) the pictures would have no text: say so instead of failing silently.</summary>
    public static string? Warning => SkiaSharp.SKFontManager.Default.FontFamilies.Any() ? null :
        "warning: no fonts found, so the pictures will have no text (on Debian or Ubuntu: apt-get install fonts-dejavu-core)";

    /// <summary>A common sans-serif when there is one (the default is the first family Skia finds, often a serif).</summary>
    public static void Apply(Plot plot)
    {
        var font = Preferred.FirstOrDefault(f => SkiaSharp.SKFontManager.Default.FontFamilies.Contains(f));
        if (font is not null) plot.Font.Set(font);
    }
}

/// <summary>The console that prints a sample's tables.</summary>
internal static class SampleConsole
{
    /// <summary>
    /// Spectre's console on a terminal; in a pipe or a log, one without colours or escape codes whose tables are
    /// Markdown, wide enough not to wrap.
    /// </summary>
    public static (IAnsiConsole Console, bool Interactive) ForTables()
    {
        if (!System.Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive) return (AnsiConsole.Console, true);
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(System.Console.Out),
        });
        console.Profile.Width = 200;
        return (console, false);
    }
}
