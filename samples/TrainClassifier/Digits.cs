// The digits data set, the model and every random number of the sample. The random numbers come from SplitMix64
// streams keyed by (seed, purpose, index), computed in C#: the same on every machine and runtime, independent of
// torch's global generator (which other code in the same process, such as tests running in parallel, may draw from
// at any time). samples/CompareOptimizers and tests/Optim.Tests compile this file too.
using System;
using System.Globalization;
using System.IO;
using System.IO.Compression;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TrainClassifier;

/// <summary>SplitMix64 (Steele, Lea and Flood): a tiny, fast, well-mixed 64-bit generator with a 64-bit state.</summary>
internal struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>A generator for one purpose: independent streams for (seed, stream, index).</summary>
    public static SplitMix64 For(long seed, ulong stream, long index = 0)
    {
        var mixer = new SplitMix64(unchecked((ulong)seed));
        var a = mixer.Next();
        var b = new SplitMix64(a ^ (stream * 0x9E3779B97F4A7C15UL)).Next();
        return new SplitMix64(b ^ new SplitMix64(unchecked((ulong)index) + 0xD1B54A32D192ED03UL).Next());
    }

    public ulong Next()
    {
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, n) without modulo bias (rejection sampling).</summary>
    public int NextInt(int n)
    {
        var bound = (ulong)n;
        var limit = ulong.MaxValue - (ulong.MaxValue % bound);
        ulong value;
        do { value = Next(); } while (value >= limit);
        return (int)(value % bound);
    }

    /// <summary>0, 1, ..., count - 1 in the order of a Fisher-Yates shuffle drawn from this generator.</summary>
    public long[] Permutation(int count)
    {
        var order = new long[count];
        for (var i = 0; i < count; i++) order[i] = i;
        for (var i = count - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }
}

/// <summary>
/// The UCI handwritten digits (samples/data/digits: 1,797 8×8 images of 0..16, ten classes), split once into a
/// validation set and a training set by a shuffle drawn from the seed. Pixels are scaled to [0, 1].
/// </summary>
internal sealed class DigitsData : IDisposable
{
    public const int Features = 64, Classes = 10, Count = 1797;

    /// <summary>The streams the split and the epochs' shuffles draw from (recorded in checkpoints).</summary>
    public const ulong SplitStream = 1, ShuffleStream = 4;

    private DigitsData(Tensor trainX, Tensor trainY, Tensor validationX, Tensor validationY)
    {
        TrainX = trainX;
        TrainY = trainY;
        ValidationX = validationX;
        ValidationY = validationY;
    }

    public Tensor TrainX { get; }
    public Tensor TrainY { get; }
    public Tensor ValidationX { get; }
    public Tensor ValidationY { get; }

    /// <summary>Where the build copies the data file: <c>data/digits.csv.gz</c> beside the binaries.</summary>
    public static string DefaultPath => Path.Combine(AppContext.BaseDirectory, "data", "digits.csv.gz");

    /// <summary>
    /// The first <paramref name="validationSamples"/> images of the seed's shuffle for validation, the next
    /// <paramref name="trainSamples"/> for training.
    /// </summary>
    public static DigitsData Load(long seed, int trainSamples, int validationSamples, string? path = null)
    {
        if (trainSamples < 1 || validationSamples < 1 || trainSamples + validationSamples > Count)
            throw new ArgumentException($"the digits have {Count} images: {trainSamples} training and {validationSamples} validation samples do not fit");
        var (pixels, labels) = Read(path ?? DefaultPath);
        var order = SplitMix64.For(seed, SplitStream).Permutation(Count);
        using var all = torch.tensor(pixels, new long[] { Count, Features }).div_(16f);
        using var allLabels = torch.tensor(labels);
        using var validation = torch.tensor(order[..validationSamples]);
        using var train = torch.tensor(order[validationSamples..(validationSamples + trainSamples)]);
        return new DigitsData(all.index_select(0, train), allLabels.index_select(0, train),
                              all.index_select(0, validation), allLabels.index_select(0, validation));
    }

    /// <summary>The file's rows: 64 pixels in 0..16 and the digit, comma-separated.</summary>
    /// <exception cref="InvalidDataException">A row that is not that, naming its line.</exception>
    public static (float[] Pixels, long[] Labels) Read(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"the digits data set is not at {path} (the build copies samples/data/digits/digits.csv.gz there)", path);
        var pixels = new float[Count * Features];
        var labels = new long[Count];
        using var reader = new StreamReader(new GZipStream(File.OpenRead(path), CompressionMode.Decompress));
        var row = 0;
        for (var line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            if (line.Length == 0) continue;
            if (row == Count) throw new InvalidDataException($"{path}: more than {Count} rows");
            var fields = line.Split(',');
            if (fields.Length != Features + 1) throw new InvalidDataException($"{path}, row {row + 1}: {fields.Length} values, expected {Features + 1}");
            for (var i = 0; i <= Features; i++)
            {
                var max = i < Features ? 16 : Classes - 1;
                if (!int.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value > max)
                    throw new InvalidDataException($"{path}, row {row + 1}, column {i + 1}: '{fields[i]}' is not an integer in 0..{max}");
                if (i < Features) pixels[row * Features + i] = value;
                else labels[row] = value;
            }
            row++;
        }
        if (row != Count) throw new InvalidDataException($"{path}: {row} rows, expected {Count}");
        return (pixels, labels);
    }

    /// <summary>The order of the training samples in <paramref name="epoch"/>: a Fisher-Yates shuffle from (seed, epoch).</summary>
    public static long[] Permutation(long seed, int epoch, int count) => SplitMix64.For(seed, ShuffleStream, epoch).Permutation(count);

    public void Dispose()
    {
        TrainX.Dispose();
        TrainY.Dispose();
        ValidationX.Dispose();
        ValidationY.Dispose();
    }
}

/// <summary>The classifier: an MLP 64-hidden-hidden-10 with ReLUs.</summary>
internal static class DigitsModel
{
    public static Sequential Build(int hidden, long seed)
    {
        var model = nn.Sequential(
            ("fc1", nn.Linear(DigitsData.Features, hidden)), ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(hidden, hidden)), ("relu2", nn.ReLU()),
            ("out", nn.Linear(hidden, DigitsData.Classes)));
        Initialize(model, seed);
        return model;
    }

    /// <summary>Correct predictions of <paramref name="model"/> on (x, y), and its mean cross-entropy there, without gradients.</summary>
    public static (double Accuracy, double Loss) Evaluate(Sequential model, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        var logits = model.call(x);
        var correct = logits.argmax(1).eq(y).sum().item<long>();
        var loss = nn.functional.cross_entropy(logits, y).item<float>();
        model.train();
        return ((double)correct / y.shape[0], loss);
    }

    /// <summary>PyTorch's default Linear initialization (uniform within ±1/sqrt(fan_in)), drawn from our own generator.</summary>
    private static void Initialize(Sequential model, long seed)
    {
        using var noGrad = no_grad();
        var index = 0;
        foreach (var layer in model.modules().OfType<Linear>())
        {
            var bound = 1.0 / Math.Sqrt(layer.weight!.shape[1]);
            Fill(layer.weight, bound, index++);
            if (layer.bias is { } bias) Fill(bias, bound, index++);
        }

        void Fill(Parameter parameter, double bound, int stream)
        {
            var rng = SplitMix64.For(seed, 100, stream);
            var values = new float[parameter.numel()];
            for (var i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
            using var source = torch.tensor(values, parameter.shape);
            parameter.copy_(source);
        }
    }
}
