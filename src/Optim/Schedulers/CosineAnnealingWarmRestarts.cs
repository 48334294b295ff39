using System;
using System.Collections.Generic;
using System.Linq;
using TorchOptimizer = TorchSharp.torch.optim.Optimizer;

namespace Optim.Schedulers;

/// <summary>
/// PyTorch's <c>CosineAnnealingWarmRestarts</c> (SGDR): cosine annealing from the base rate to <c>eta_min</c> over
/// <c>T_i</c> epochs, then a restart; the period starts at <c>T_0</c> and is multiplied by <c>T_mult</c> at each
/// restart. <see cref="step(double)"/> accepts fractional epochs (e.g. <c>epoch + batch / batches</c>).
/// </summary>
/// <remarks>As in PyTorch, <c>step</c> here does not count in <c>_step_count</c>.</remarks>
public sealed class CosineAnnealingWarmRestarts : LRScheduler
{
    private int _t0;
    private long _tI;
    private int _tMult;
    private double _etaMin;
    private double _tCur;

    /// <summary>Creates the scheduler and takes its initial step.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="T_0">The number of epochs until the first restart (positive).</param>
    /// <param name="T_mult">The factor by which the period grows after each restart (≥ 1).</param>
    /// <param name="eta_min">The minimum learning rate.</param>
    /// <param name="last_epoch">The index of the last epoch; -1 to start.</param>
    public CosineAnnealingWarmRestarts(TorchOptimizer optimizer, int T_0, int T_mult = 1, double eta_min = 0.0, int last_epoch = -1)
        : base(optimizer)
    {
        if (T_0 <= 0) throw new ArgumentException($"Expected positive integer T_0, but got {T_0}", nameof(T_0));
        if (T_mult < 1) throw new ArgumentException($"Expected integer T_mult >= 1, but got {T_mult}", nameof(T_mult));
        _t0 = T_0;
        _tI = T_0;
        _tMult = T_mult;
        _etaMin = Args.Finite(eta_min, nameof(eta_min));
        _tCur = last_epoch;
        Initialize(last_epoch);
    }

    /// <summary>The first period.</summary>
    public int T_0 => _t0;

    /// <summary>The current period.</summary>
    public long T_i => _tI;

    /// <summary>The period's growth factor.</summary>
    public int T_mult => _tMult;

    /// <summary>The minimum learning rate.</summary>
    public double eta_min => _etaMin;

    /// <summary>Epochs since the last restart (fractional after <see cref="step(double)"/>).</summary>
    public double T_cur => _tCur;

    /// <summary>Advances one epoch, restarting when the period is over.</summary>
    public override void step() => Advance(null);

    /// <summary>Jumps to <paramref name="epoch"/>.</summary>
    /// <param name="epoch">The epoch (non-negative).</param>
    public override void step(int epoch) => Advance(epoch);

    /// <summary>Jumps to a possibly fractional <paramref name="epoch"/> (e.g. <c>epoch + i / iters</c> after batch i).</summary>
    /// <param name="epoch">The epoch (non-negative).</param>
    public void step(double epoch) => Advance(epoch);

    private void Advance(double? epoch)
    {
        if (epoch is null && last_epoch < 0) epoch = 0;

        double e;
        if (epoch is null)
        {
            e = last_epoch + 1;
            _tCur += 1;
            if (_tCur >= _tI)
            {
                _tCur %= _tI;
                _tI *= _tMult;
            }
        }
        else
        {
            e = epoch.Value;
            if (!(e >= 0) || double.IsInfinity(e)) throw new ArgumentException($"Expected non-negative epoch, but got {Args.Py(e)}", nameof(epoch));
            if (e >= _t0)
            {
                if (_tMult == 1)
                {
                    _tCur = e % _t0;
                }
                else
                {
                    var n = (int)(Math.Log(e / _t0 * (_tMult - 1) + 1) / Math.Log(_tMult));
                    var power = (long)Math.Pow(_tMult, n);
                    _tCur = e - (double)(_t0 * (power - 1)) / (_tMult - 1);
                    _tI = _t0 * power;
                }
            }
            else
            {
                _tI = _t0;
                _tCur = e;
            }
        }

        last_epoch = (int)Math.Floor(e);
        ApplyLearningRates(get_lr());
    }

    /// <inheritdoc />
    protected override IReadOnlyList<double> get_lr() =>
        base_lrs.Select(b => _etaMin + (b - _etaMin) * (1 + Math.Cos(Math.PI * _tCur / _tI)) / 2).ToArray();

    /// <inheritdoc />
    protected override IEnumerable<KeyValuePair<string, object?>> WriteOwnState() => new KeyValuePair<string, object?>[]
    {
        new("T_0", (long)_t0),
        new("T_i", _tI),
        new("T_mult", (long)_tMult),
        new("eta_min", _etaMin),
        new("T_cur", _tCur),
    };

    /// <inheritdoc />
    protected override Action PrepareOwnState(StateReader reader)
    {
        var t0 = reader.Int("T_0", min: 1);
        var tI = reader.Int64("T_i", min: 1);
        var tMult = reader.Int("T_mult", min: 1);
        var etaMin = reader.Double("eta_min");
        var tCur = reader.Double("T_cur");
        return () => (_t0, _tI, _tMult, _etaMin, _tCur) = (t0, tI, tMult, etaMin, tCur);
    }
}
