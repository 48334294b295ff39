using System;
using System.IO;
using System.Linq;
using Optim.Formats;
using TorchSharp;
using TrainClassifier;
using static TorchSharp.torch;

namespace Optim.Tests.Samples;

/// <summary>
/// The TrainClassifier sample's trainer and data (linked from samples/TrainClassifier) on a small configuration of the
/// digits: a run that is interrupted after a checkpoint and resumed in a fresh model and optimizer ends bit-identical to
/// an uninterrupted one, learning curves included.
/// </summary>
public class TrainClassifierTests : IDisposable
{
    // 16 steps per epoch, 64 in all; a checkpoint every 10 steps.
    private static readonly TrainerOptions Small = new()
    {
        TrainSamples = 512, ValidationSamples = 512, Hidden = 16, Epochs = 4, BatchSize = 32, CheckpointEvery = 10,
    };

    private readonly string _dir = Directory.CreateTempSubdirectory("optim-train-classifier").FullName;

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        GC.SuppressFinalize(this);
    }

    [Fact]
    public void A_run_interrupted_between_checkpoints_and_resumed_ends_bit_identical()
    {
        var result = ResumeCheck.Run(Small, _dir);

        result.Differences.Should().BeEmpty();
        result.Passed.Should().BeTrue();
        result.InterruptedAfter.Should().Be(35);                 // mid-epoch, 5 steps after the checkpoint at 30
        result.ResumedFrom.Should().Be(30);
        result.ComparedTensors.Should().Be(6);
        result.ComparedLearningRates.Should().Be(64 - 30);
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_at_an_epoch_boundary_ends_bit_identical()
    {
        var result = ResumeCheck.Run(Small with { CheckpointEvery = 16 }, _dir, interruptAfter: 40);

        result.Differences.Should().BeEmpty();
        result.ResumedFrom.Should().Be(32);                      // the end of epoch 2: resumes at epoch 3, batch 0
    }

    [Fact]
    public void Resuming_the_final_checkpoint_changes_nothing()
    {
        var trainer = new Trainer(Small);
        var full = trainer.Run(_dir, resume: false);
        var again = trainer.Run(_dir, resume: true);

        again.Completed.Should().BeTrue();
        again.Steps.Should().Be(64);
        again.LearningRates.Should().BeEmpty();
        again.Weights.Keys.Should().BeEquivalentTo(full.Weights.Keys);
        foreach (var (name, bytes) in full.Weights) again.Weights[name].Should().Equal(bytes, name);
    }

    [Fact]
    public void The_classifier_learns_the_digits_and_records_each_epoch()
    {
        var result = new Trainer(Small with { Epochs = 8 }).Run(_dir, resume: false);

        result.ValidationAccuracy.Should().BeGreaterThan(0.85);  // ten classes: chance is 10%
        result.History.Select(r => r.Epoch).Should().Equal(Enumerable.Range(0, 8));
        result.History.Select(r => r.Step).Should().Equal(Enumerable.Range(1, 8).Select(e => 16L * e));
        result.History[^1].ValidationAccuracy.Should().Be(result.ValidationAccuracy);
        result.History[^1].TrainLoss.Should().BeLessThan(result.History[0].TrainLoss / 4);
    }

    [Fact]
    public void The_digits_file_has_1797_labelled_images_and_the_split_is_disjoint()
    {
        var (pixels, labels) = DigitsData.Read(DigitsData.DefaultPath);

        pixels.Should().HaveCount(1797 * 64).And.OnlyContain(p => p >= 0 && p <= 16);
        labels.GroupBy(l => l).OrderBy(g => g.Key).Select(g => g.Count())
            .Should().Equal(178, 182, 177, 183, 181, 182, 181, 179, 174, 180);   // digits.rst's class counts of the UCI test set

        using var data = DigitsData.Load(Small.Seed, 1437, 360);
        data.TrainX.shape.Should().Equal(1437, 64);
        data.ValidationY.shape.Should().Equal(360);
        data.TrainX.max().item<float>().Should().Be(1f);
        using var joined = torch.cat(new[] { data.TrainX, data.ValidationX });
        using var unique = joined.unique(dim: 0).Item1;
        unique.shape[0].Should().BeGreaterThan(1700);            // (a handful of images occur twice in the data set itself)
    }

    [Fact]
    public void A_damaged_digits_file_is_refused_naming_the_row()
    {
        var path = Path.Combine(_dir, "digits.csv.gz");
        using (var file = new System.IO.Compression.GZipStream(File.Create(path), System.IO.Compression.CompressionLevel.Fastest))
        using (var writer = new StreamWriter(file))
        {
            writer.WriteLine(string.Join(',', Enumerable.Repeat("0", 64)) + ",3");
            writer.WriteLine(string.Join(',', Enumerable.Repeat("17", 64)) + ",3");
        }

        var act = () => DigitsData.Read(path);

        act.Should().Throw<InvalidDataException>().WithMessage("*row 2, column 1: '17' is not an integer in 0..16");
        ((Action)(() => DigitsData.Load(1, 1500, 360))).Should().Throw<ArgumentException>().WithMessage("*1797 images*");
    }

    [Fact]
    public void Checkpoints_are_single_files_and_only_the_newest_are_kept()
    {
        var result = new Trainer(Small).Run(_dir, resume: false, stopAfterStep: 45);

        result.Completed.Should().BeFalse();
        Directory.GetDirectories(_dir).Should().BeEmpty();
        Directory.GetFiles(_dir).Select(Path.GetFileName).Order()
            .Should().Equal("step-0000030.ckpt", "step-0000040.ckpt");  // KeepCheckpoints = 2, no temporary files left
        var latest = Path.Combine(_dir, "step-0000040.ckpt");
        Trainer.FindLatestCheckpoint(_dir).Should().Be(latest);

        var state = Trainer.ReadState(latest);
        state.Options.Should().Be(Small);
        state.Position.Should().Be(new TrainingPosition { Step = 40, Epoch = 2, NextBatch = 8, EpochLossSum = state.Position.EpochLossSum, EpochCorrect = state.Position.EpochCorrect, EpochSeen = 256 });
        state.Shuffle.Epoch.Should().Be(2);

        // The scheduler's state is in the same file: a fresh run loads it with everything else.
        var (model, optimizer, scheduler) = Trainer.CreateRun(Small);
        using var ownedModel = model;
        using var ownedOptimizer = optimizer;
        TrainingCheckpoint.Load(latest, model, optimizer, [scheduler])["step"].Should().Be(40L);
        scheduler.last_epoch.Should().Be(40);                    // stepped after each of the 40 optimizer steps
        scheduler.StateDict().GetInt64("total_steps").Should().Be(64);
        BitConverter.DoubleToInt64Bits(optimizer.ParamGroups[0].LearningRate).Should().Be(BitConverter.DoubleToInt64Bits(state.LearningRate));
    }

    [Fact]
    public void A_damaged_checkpoint_is_refused_and_resuming_fails_cleanly()
    {
        new Trainer(Small).Run(_dir, resume: false, stopAfterStep: 12);
        var latest = Trainer.FindLatestCheckpoint(_dir)!;
        var bytes = File.ReadAllBytes(latest);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(latest, bytes);

        var act = () => new Trainer(Small).Run(_dir, resume: true);

        act.Should().Throw<InvalidDataException>().WithMessage("*checksum*");
    }

    [Fact]
    public void Resuming_with_other_options_is_refused()
    {
        new Trainer(Small).Run(_dir, resume: false, stopAfterStep: 12);

        var act = () => new Trainer(Small with { MaxLr = 0.02 }).Run(_dir, resume: true);

        act.Should().Throw<InvalidOperationException>().WithMessage("*different options*");
    }

    [Fact]
    public void Resuming_without_a_checkpoint_is_refused()
    {
        var act = () => new Trainer(Small).Run(_dir, resume: true);

        act.Should().Throw<InvalidOperationException>().WithMessage("no checkpoint*");
    }

    [Fact]
    public void The_shuffle_is_a_permutation_that_depends_on_seed_and_epoch()
    {
        var a = DigitsData.Permutation(1, 0, 100);

        a.Order().Should().Equal(Enumerable.Range(0, 100).Select(i => (long)i));
        DigitsData.Permutation(1, 0, 100).Should().Equal(a);
        DigitsData.Permutation(1, 1, 100).Should().NotEqual(a);
        DigitsData.Permutation(2, 0, 100).Should().NotEqual(a);
    }

    /// <summary>
    /// One reason the sample uses Optim.Schedulers (which resume through their state dicts, or through
    /// <c>last_epoch</c>): TorchSharp 0.107's OneCycleLR only sets up its momentum phases when <c>last_epoch</c> is
    /// -1, so a scheduler created to resume fails, and it has no state dict. If this starts failing, TorchSharp has
    /// fixed the first part.
    /// </summary>
    [Fact]
    public void TorchSharp_OneCycleLR_cannot_be_recreated_with_last_epoch_when_it_cycles_momentum()
    {
        using var p = new TorchSharp.Modules.Parameter(torch.zeros(2));
        using var optimizer = new AdamW(new[] { p }, lr: 0.01);

        var act = () => optim.lr_scheduler.OneCycleLR(optimizer, max_lr: 0.01, total_steps: 10, last_epoch: 3);

        act.Should().Throw<System.Collections.Generic.KeyNotFoundException>();
    }
}
