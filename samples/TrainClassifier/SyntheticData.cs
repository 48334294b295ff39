// The data set and every random number of the sample come from SplitMix64 streams keyed by (seed, purpose, index),
// computed in C#: the same on every machine and runtime, independent of torch's global generator (which other code
// in the same process, such as tests running in parallel, may draw from at any time).
using System;
using TorchSharp;
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

    /// <summary>Standard normal (Box-Muller; the second value is discarded to keep the state simple).</summary>
    public double NextGaussian()
    {
        var u1 = 1.0 - NextDouble();   // (0, 1]
        var u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}

/// <summary>
/// A teacher-student classification task: inputs are standard normal, labels are drawn from the softmax of a fixed
/// random two-layer "teacher" network. The classes overlap (the labels are noisy), so even the teacher itself scores
/// well below 100%: that ceiling is reported next to the student's accuracy.
/// </summary>
internal sealed class SyntheticData : IDisposable
{
    private const ulong TeacherStream = 1, TrainStream = 2, ValidationStream = 3;
    private const int TeacherHidden = 24;

    private SyntheticData(Tensor trainX, Tensor trainY, Tensor validationX, Tensor validationY, double ceiling)
    {
        TrainX = trainX;
        TrainY = trainY;
        ValidationX = validationX;
        ValidationY = validationY;
        ValidationCeiling = ceiling;
    }

    public Tensor TrainX { get; }
    public Tensor TrainY { get; }
    public Tensor ValidationX { get; }
    public Tensor ValidationY { get; }

    /// <summary>The teacher's own accuracy on the validation labels (its most likely class vs the drawn one).</summary>
    public double ValidationCeiling { get; }

    public static SyntheticData Generate(TrainerOptions options)
    {
        int f = options.Features, c = options.Classes;
        var rng = SplitMix64.For(options.Seed, TeacherStream);
        var w1 = new double[f, TeacherHidden];
        var b1 = new double[TeacherHidden];
        var w2 = new double[TeacherHidden, c];
        for (var i = 0; i < f; i++)
            for (var j = 0; j < TeacherHidden; j++) w1[i, j] = rng.NextGaussian() * 1.5 / Math.Sqrt(f);
        for (var j = 0; j < TeacherHidden; j++) b1[j] = rng.NextGaussian() * 0.5;
        for (var j = 0; j < TeacherHidden; j++)
            for (var k = 0; k < c; k++) w2[j, k] = rng.NextGaussian() * options.TeacherSharpness / Math.Sqrt(TeacherHidden);

        var (trainX, trainY, _) = Sample(options.TrainSamples, TrainStream);
        var (validationX, validationY, ceiling) = Sample(options.ValidationSamples, ValidationStream);
        return new SyntheticData(trainX, trainY, validationX, validationY, ceiling);

        (Tensor x, Tensor y, double ceiling) Sample(int n, ulong stream)
        {
            var r = SplitMix64.For(options.Seed, stream);
            var xs = new float[n * f];
            var ys = new long[n];
            var hidden = new double[TeacherHidden];
            var logits = new double[c];
            var agree = 0;
            for (var s = 0; s < n; s++)
            {
                for (var i = 0; i < f; i++) xs[s * f + i] = (float)r.NextGaussian();
                for (var j = 0; j < TeacherHidden; j++)
                {
                    var sum = b1[j];
                    for (var i = 0; i < f; i++) sum += xs[s * f + i] * w1[i, j];
                    hidden[j] = Math.Tanh(sum);
                }
                int best = 0, drawn = 0;
                double bestLogit = double.NegativeInfinity, bestPerturbed = double.NegativeInfinity;
                for (var k = 0; k < c; k++)
                {
                    double sum = 0;
                    for (var j = 0; j < TeacherHidden; j++) sum += hidden[j] * w2[j, k];
                    logits[k] = sum;
                    if (sum > bestLogit) (bestLogit, best) = (sum, k);
                    // Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits).
                    var perturbed = sum - Math.Log(-Math.Log(1.0 - r.NextDouble()));
                    if (perturbed > bestPerturbed) (bestPerturbed, drawn) = (perturbed, k);
                }
                ys[s] = drawn;
                if (drawn == best) agree++;
            }
            return (torch.tensor(xs, new long[] { n, f }), torch.tensor(ys), (double)agree / n);
        }
    }

    /// <summary>The order of the training samples in <paramref name="epoch"/>: a Fisher-Yates shuffle from (seed, epoch).</summary>
    public static long[] Permutation(long seed, int epoch, int count)
    {
        var rng = SplitMix64.For(seed, ShuffleStream, epoch);
        var order = new long[count];
        for (var i = 0; i < count; i++) order[i] = i;
        for (var i = count - 1; i > 0; i--)
        {
            var j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>The stream the shuffles draw from (recorded in checkpoints).</summary>
    public const ulong ShuffleStream = 4;

    public void Dispose()
    {
        TrainX.Dispose();
        TrainY.Dispose();
        ValidationX.Dispose();
        ValidationY.Dispose();
    }
}
