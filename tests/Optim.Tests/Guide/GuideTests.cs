using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;

namespace Optim.Tests.Guide;

/// <summary>docs/guide.md shows exactly the code <see cref="GuideSnippets"/> compiles and runs.</summary>
public partial class GuideTests
{
    [Fact]
    public void Every_csharp_block_of_the_guide_is_a_snippet_that_the_tests_run_in_the_same_order()
    {
        var blocks = CodeBlocks(Resource("guide.md"));
        var snippets = Snippets(Resource("GuideSnippets.cs"));

        blocks.Should().NotBeEmpty();
        for (var i = 0; i < blocks.Count; i++)
        {
            var match = snippets.FindIndex(s => s.Text == blocks[i]);
            match.Should().BeGreaterThanOrEqualTo(0, "the guide's csharp block {0} (starting \"{1}\") must be a snippet of GuideSnippets.cs, character for character", i + 1, blocks[i].Split('\n')[0]);
        }
        blocks.Should().Equal(snippets.Select(s => s.Text), "GuideSnippets.cs has the snippets {0}, in this order", string.Join(", ", snippets.Select(s => s.Name)));
    }

    [Fact]
    public void The_extraction_sees_blocks_and_snippets_with_their_indentation_removed()
    {
        CodeBlocks("text\n```csharp\n  a();\n    b();\n```\n```text\nc\n```\n")
            .Should().Equal("a();\n  b();");
        Snippets("class C {\n    void M() {\n        // guide: one\n        a();\n        // end guide\n    }\n}\n")
            .Should().Equal(("one", "a();"));
        var unclosed = () => Snippets("// guide: one\na();\n");
        unclosed.Should().Throw<InvalidDataException>().WithMessage("*one*");
    }

    /// <summary>The guide's ```csharp blocks, dedented.</summary>
    internal static List<string> CodeBlocks(string markdown) =>
        Fence().Matches(markdown.ReplaceLineEndings("\n")).Select(m => Dedent(m.Groups[1].Value.Split('\n'))).ToList();

    /// <summary>The (name, text) of each <c>// guide: NAME</c> ... <c>// end guide</c> region, dedented.</summary>
    internal static List<(string Name, string Text)> Snippets(string source)
    {
        var lines = source.ReplaceLineEndings("\n").Split('\n');
        var snippets = new List<(string, string)>();
        for (var i = 0; i < lines.Length; i++)
        {
            var start = lines[i].Trim();
            if (!start.StartsWith("// guide: ", StringComparison.Ordinal)) continue;
            var name = start["// guide: ".Length..];
            var end = Array.FindIndex(lines, i + 1, l => l.Trim() == "// end guide");
            if (end < 0) throw new InvalidDataException($"snippet '{name}' has no '// end guide' line");
            snippets.Add((name, Dedent(lines[(i + 1)..end])));
            i = end;
        }
        return snippets;
    }

    private static string Dedent(IReadOnlyList<string> lines)
    {
        var body = lines.Select(l => l.TrimEnd()).ToList();
        while (body.Count > 0 && body[^1].Length == 0) body.RemoveAt(body.Count - 1);
        var indent = body.Where(l => l.Length > 0).Select(l => l.Length - l.TrimStart().Length).DefaultIfEmpty(0).Min();
        return string.Join("\n", body.Select(l => l.Length == 0 ? l : l[indent..]));
    }

    private static string Resource(string name)
    {
        using var stream = typeof(GuideTests).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the test assembly embeds no '{name}'");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [GeneratedRegex(@"^```csharp[ \t]*\n(.*?)^```[ \t]*$", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex Fence();
}
