using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace Optim.Tests.Support;

/// <summary>One file of golden cases (tools/golden/generate.py) in the Goldens folder.</summary>
/// <param name="File">The file name.</param>
/// <param name="Algorithm">The catalog name of the algorithm it covers.</param>
/// <param name="IsReplay">
/// Whether it replays PyTorch 2.x's op order with PyTorch 1.13's ops (the file says what it replays in its
/// <c>reference</c> field) rather than running PyTorch's own class.
/// </param>
/// <param name="ClosureDriven">
/// Whether its cases are closure-driven (the file says <c>"closure_driven": true</c>; tools/golden/lbfgs.py): each a
/// problem whose closure the optimizer evaluates, checked per <c>step</c> call, rather than a sequence of gradients. Its
/// algorithm's own tests read them (LBFGSTests); <see cref="GoldenCase"/> and the generic golden tests take the others.
/// </param>
/// <param name="SparseGradients">
/// Whether its cases train sparse embeddings (the file says <c>"sparse_gradients": true</c>; tools/golden/sparse_adam.py):
/// lookups and upstream values per step rather than dense gradients. SparseAdamTests reads them.
/// </param>
public sealed record GoldenFile(string File, string Algorithm, bool IsReplay, bool ClosureDriven = false, bool SparseGradients = false)
{
    /// <summary>Every golden file, found in the Goldens folder: adding an algorithm's goldens needs no list edited.</summary>
    public static IReadOnlyList<GoldenFile> All { get; } = Discover();

    /// <summary>The files of dense gradient sequences (<see cref="GoldenCase"/>): every file but the closure-driven and sparse ones.</summary>
    public static IEnumerable<GoldenFile> Stepwise => All.Where(f => !f.ClosureDriven && !f.SparseGradients);

    /// <summary>The closure-driven files (LBFGS's), which their algorithms' own tests read.</summary>
    public static IEnumerable<GoldenFile> ClosureDrivenFiles => All.Where(f => f.ClosureDriven);

    /// <summary>The files that run PyTorch's own classes (gradient sequences).</summary>
    public static IEnumerable<GoldenFile> Direct => Stepwise.Where(f => !f.IsReplay);

    /// <summary>The files that replay PyTorch 2.x's op order (gradient sequences).</summary>
    public static IEnumerable<GoldenFile> Replays => Stepwise.Where(f => f.IsReplay);

    /// <summary>
    /// The files whose op order is PyTorch 2.x's, one per algorithm: its replay where it has one, otherwise its direct
    /// file (an algorithm without a replay has the same op order in PyTorch 1.13 and 2.x).
    /// </summary>
    public static IEnumerable<GoldenFile> InPyTorch2Order =>
        Stepwise.GroupBy(f => f.Algorithm).SelectMany(g => g.Any(f => f.IsReplay) ? g.Where(f => f.IsReplay) : g);

    /// <summary>xunit theory data: (file, case) for every case of <paramref name="files"/>.</summary>
    public static TheoryData<string, string> Cases(IEnumerable<GoldenFile> files)
    {
        var data = new TheoryData<string, string>();
        foreach (var file in files)
        {
            if (file.ClosureDriven)
                throw new ArgumentException($"{file.File} holds closure-driven cases, which {file.Algorithm}'s own tests read", nameof(files));
            foreach (var c in GoldenCase.Load(file.File)) data.Add(file.File, c.ToString());
        }
        return data;
    }

    private static IReadOnlyList<GoldenFile> Discover() =>
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Goldens"), "*.json")
            .OrderBy(p => p, StringComparer.Ordinal)
            .Select(path =>
            {
                using var stream = System.IO.File.OpenRead(path);
                using var doc = JsonDocument.Parse(stream);
                var root = doc.RootElement;
                // Other goldens (schedulers, clipping) share the folder; optimizer goldens name their algorithm.
                return root.ValueKind == JsonValueKind.Object && root.TryGetProperty("algorithm", out var algorithm)
                    ? new GoldenFile(Path.GetFileName(path), algorithm.GetString()!, root.TryGetProperty("reference", out _),
                        IsTrue(root, "closure_driven"), IsTrue(root, "sparse_gradients"))
                    : null;
            })
            .OfType<GoldenFile>()
            .ToList();

    private static bool IsTrue(JsonElement root, string property) =>
        root.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.True;
}
