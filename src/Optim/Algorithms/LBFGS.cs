using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Optim.Kernels.Scalars;

namespace Optim;

/// <summary>
/// The hyperparameters of <see cref="LBFGS"/>. A new instance holds PyTorch's defaults (<c>lr</c> 1, <c>max_eval</c>
/// <c>max_iter * 5 // 4</c> = 25). LBFGS has one group and no kernel choice: <see cref="OptimizerOptions.Implementation"/>
/// is not one of its hyperparameters.
/// </summary>
public sealed record LBFGSOptions : OptimizerOptions
{
    /// <summary>The only line search PyTorch has (<c>line_search_fn="strong_wolfe"</c>).</summary>
    public const string StrongWolfe = "strong_wolfe";

    /// <summary>The declared hyperparameters, in PyTorch's order (its group dict's).</summary>
    public static OptionSchema<LBFGSOptions> Schema { get; } = new OptionSchema<LBFGSOptions>()
        .Lr()
        .Long("max_iter", o => o.MaxIter, (o, v) => o with { MaxIter = v }, Rules.AtLeast(1L, "Invalid max_iter"))
        .Long("max_eval", o => o.MaxEval, (o, v) => o with { MaxEval = v }, Rules.AtLeast(1L, "Invalid max_eval"))
        .Double("tolerance_grad", o => o.ToleranceGrad, (o, v) => o with { ToleranceGrad = v }, Rules.Finite("Invalid tolerance_grad"))
        .Double("tolerance_change", o => o.ToleranceChange, (o, v) => o with { ToleranceChange = v }, Rules.Finite("Invalid tolerance_change"))
        .Long("history_size", o => o.HistorySize, (o, v) => o with { HistorySize = v }, Rules.AtLeast(1L, "Invalid history_size"))
        .String("line_search_fn", o => o.LineSearchFn, (o, v) => o with { LineSearchFn = v },
            new Rule<string?>(v => v is null or StrongWolfe, _ => "only 'strong_wolfe' is supported", "None or 'strong_wolfe'"));

    /// <summary>Creates options with PyTorch's LBFGS defaults (<c>lr</c> 1).</summary>
    public LBFGSOptions() => Lr = 1;

    /// <summary>The most iterations per <c>step</c> (PyTorch's <c>max_iter</c>).</summary>
    public long MaxIter { get; init; } = 20;

    /// <summary>The most closure evaluations per <c>step</c> (PyTorch's <c>max_eval</c>; its default is <c>max_iter * 5 // 4</c>).</summary>
    public long MaxEval { get; init; } = 25;

    /// <summary>A step ends when the largest absolute gradient element is at most this (first-order optimality).</summary>
    public double ToleranceGrad { get; init; } = 1e-7;

    /// <summary>A step ends when the loss or the parameters change by less than this.</summary>
    public double ToleranceChange { get; init; } = 1e-9;

    /// <summary>How many correction pairs the inverse-Hessian approximation keeps.</summary>
    public long HistorySize { get; init; } = 100;

    /// <summary>Null for fixed steps of <c>lr</c>, or <see cref="StrongWolfe"/>.</summary>
    public string? LineSearchFn { get; init; }

    /// <inheritdoc/>
    public override OptionSchema GetSchema() => Schema;
}

/// <summary>
/// L-BFGS: PyTorch 2.x's <c>torch.optim.LBFGS</c>, op for op, with its strong-Wolfe line search (cubic interpolation and
/// zoom, given the step's remaining evaluation budget as PyTorch's newest does). One parameter group; <c>step</c>
/// requires a closure that re-evaluates the model (zeroing and recomputing the gradients) and returns the loss, and
/// returns the first evaluation's loss. Its state is optimizer-wide (<see cref="Optimizer{TOptions}.GlobalState"/>, PyTorch's
/// keys: <c>func_evals</c>, <c>n_iter</c>, <c>d</c>, <c>t</c>, <c>old_dirs</c>, <c>old_stps</c>, <c>ro</c>,
/// <c>H_diag</c>, <c>prev_flat_grad</c>, <c>prev_loss</c>, <c>al</c>), so state dicts and checkpoints carry it and a
/// resumed run continues bit for bit. Schedulers drive its learning rate.
/// </summary>
/// <remarks>
/// PyTorch computes the step's scalars partly as Python floats and partly as 0-dim tensors of the parameters' dtype; here
/// they are doubles, rounded to the parameters' dtype wherever PyTorch holds them in a tensor, so float32 runs without a
/// line search take PyTorch's path. In the line search every scalar is a double, which is PyTorch's arithmetic for
/// float64 parameters. PyTorch keeps the state under its first parameter; here it is optimizer-wide, and the entries of
/// <c>al</c> that PyTorch leaves <c>None</c> are zeros (they are written before they are read).
/// </remarks>
public sealed class LBFGS : Optimizer<LBFGSOptions>
{
    /// <summary>The algorithm's catalog entry.</summary>
    public static AlgorithmInfo<LBFGSOptions> Info { get; } =
        AlgorithmInfo.Of<LBFGS, LBFGSOptions>("LBFGS", g => new LBFGS(g), hasForeach: false,
            requiresClosure: true, singleGroupOnly: true, hasImplementations: false);

    private const string SingleGroupMessage = "LBFGS doesn't support per-parameter options (parameter groups)";

    /// <summary>Creates LBFGS over <paramref name="parameters"/>; arguments as TorchSharp's <c>torch.optim.LBFGS</c>, PyTorch's defaults.</summary>
    /// <param name="parameters">The parameters to optimize (one dtype, one device).</param>
    /// <param name="lr">Learning rate: the step length (scaled on the first iteration), or the line search's first trial.</param>
    /// <param name="max_iter">The most iterations per <c>step</c>.</param>
    /// <param name="max_eval">The most closure evaluations per <c>step</c>; null for <c>max_iter * 5 / 4</c>.</param>
    /// <param name="tolerance_grad">Termination tolerance on first-order optimality (TorchSharp spells it <c>tolerange_grad</c>).</param>
    /// <param name="tolerance_change">Termination tolerance on function value and parameter changes.</param>
    /// <param name="history_size">The number of correction pairs kept.</param>
    /// <param name="line_search_fn">Null, or <c>"strong_wolfe"</c>.</param>
    /// <param name="flat">Keep the parameters and gradients in one flat buffer (see <see cref="Optimizer{TOptions}.Flat"/>); LBFGS's own step still works per parameter.</param>
    public LBFGS(IEnumerable<Parameter> parameters, double lr = 1, long max_iter = 20, long? max_eval = null, double tolerance_grad = 1e-7,
        double tolerance_change = 1e-9, long history_size = 100, string? line_search_fn = null, bool flat = false)
        : this(Groups.Single<LBFGSOptions>(parameters), lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size, line_search_fn, flat) { }

    /// <summary>Creates LBFGS over named parameters (names appear in error messages).</summary>
    /// <inheritdoc cref="LBFGS(IEnumerable{Parameter}, double, long, long?, double, double, long, string?, bool)"/>
    public LBFGS(IEnumerable<(string name, Parameter parameter)> parameters, double lr = 1, long max_iter = 20, long? max_eval = null,
        double tolerance_grad = 1e-7, double tolerance_change = 1e-9, long history_size = 100, string? line_search_fn = null, bool flat = false)
        : this(Groups.Named<LBFGSOptions>(parameters), lr, max_iter, max_eval, tolerance_grad, tolerance_change, history_size, line_search_fn, flat) { }

    /// <summary>Creates LBFGS over one parameter group (PyTorch refuses more than one, and so does this).</summary>
    /// <param name="groups">Exactly one parameter group.</param>
    /// <inheritdoc cref="LBFGS(IEnumerable{Parameter}, double, long, long?, double, double, long, string?, bool)"/>
    public LBFGS(IEnumerable<ParamGroupSpec<LBFGSOptions>> groups, double lr = 1, long max_iter = 20, long? max_eval = null,
        double tolerance_grad = 1e-7, double tolerance_change = 1e-9, long history_size = 100, string? line_search_fn = null, bool flat = false)
        : base(groups, new LBFGSOptions
        {
            Lr = lr, MaxIter = max_iter, MaxEval = max_eval ?? FloorDiv(max_iter * 5, 4), ToleranceGrad = tolerance_grad,
            ToleranceChange = tolerance_change, HistorySize = history_size, LineSearchFn = line_search_fn,
        })
        => UseFlatParameters(flat);

    // Python's //.
    private static long FloorDiv(long a, long b) => a / b - (a % b != 0 && (a < 0) != (b < 0) ? 1 : 0);

    private static readonly StateSchema NoParameterState = new();

    /// <inheritdoc/>
    protected override StateSchema StateSchema => NoParameterState;

    /// <inheritdoc/>
    protected override bool RequiresClosure => true;

    // Its directions and line search reduce over all parameters: it never takes the flat step.
    /// <inheritdoc/>
    protected override bool UpdateIsElementWise => false;

    /// <inheritdoc/>
    protected override string? RejectParamGroup(int existingGroups) => existingGroups >= 1 ? SingleGroupMessage : null;

    /// <inheritdoc/>
    protected override string SparseGradientMessage => "LBFGS does not support sparse gradients";

    /// <inheritdoc/>
    protected override void InitializeState(LBFGSOptions options, Parameter parameter, ParameterState state) { }

    /// <inheritdoc/>
    protected override void SingleTensorStep(LBFGSOptions options, StepBatch batch) =>
        throw new NotSupportedException("LBFGS steps through its closure.");

    /// <inheritdoc/>
    protected override void MultiTensorStep(LBFGSOptions options, StepBatch bucket) =>
        throw new NotSupportedException("LBFGS steps through its closure.");

    private IReadOnlyList<Parameter> Params => ParamGroups[0].Parameters;

    private long Numel => Params.Sum(p => p.numel());

    // Rounds a value to the parameters' dtype, as a 0-dim tensor holds it in PyTorch (identity for float64).
    private static double Round(double value, ScalarType dtype)
    {
        switch (dtype)
        {
            case ScalarType.Float64:
                return value;
            case ScalarType.Float32:
                return (float)value;
            default:
                using (var t = torch.tensor(value, ScalarType.Float64))
                using (var r = t.to(dtype))
                using (var back = r.to(ScalarType.Float64))
                    return back.item<double>();
        }
    }

    // float(tensor) / tensor.item() in Python: the value as a double.
    private static double Item(Tensor t)
    {
        using var d = t.to(ScalarType.Float64);
        return d.item<double>();
    }

    // PyTorch's _gather_flat_grad: cat of the gradients' flat views, zeros for a parameter without one.
    private Tensor GatherFlatGrad()
    {
        using var scope = NewDisposeScope();
        var views = Params.Select(p => p.grad is { } g ? g.reshape(-1) : zeros(p.numel(), p.dtype, p.device)).ToList();
        return torch.cat(views, 0).MoveToOuterDisposeScope();
    }

    // PyTorch's _add_grad: p += step_size * update[offset:offset + numel].view_as(p).
    private void AddGrad(double stepSize, Tensor update)
    {
        using var scope = NewDisposeScope();
        long offset = 0;
        foreach (var p in Params)
        {
            var numel = p.numel();
            p.add_(update.narrow(0, offset, numel).view_as(p), alpha: S(stepSize));
            offset += numel;
        }
    }

    private List<Tensor> CloneParams() => Params.Select(p => p.clone()).ToList();

    private void SetParams(List<Tensor> values)
    {
        for (var i = 0; i < values.Count; i++) Params[i].copy_(values[i]);
    }

    /// <inheritdoc/>
    protected override Tensor ClosureStep(Func<Tensor> evaluate)
    {
        var ps = Params;
        var dtype = ps[0].dtype;
        if (ps.Any(p => p.dtype != dtype || p.device_type != ps[0].device_type || p.device_index != ps[0].device_index))
            throw new InvalidOperationException("LBFGS needs all its parameters on one device and of one dtype");
        if (ps.Any(p => p.is_complex())) throw new NotSupportedException("LBFGS does not support complex parameters yet");
        // The state must still fit the parameters: one may have been resized or retyped since it was written, or a
        // value set through GlobalState that a load would have refused.
        try
        {
            ValidateGlobalState(GlobalState);
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException(
                $"{e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal)}: the parameters or the state changed since the state was written", e);
        }

        var o = ParamGroups[0].Options;
        var lr = o.Lr;
        var maxIter = o.MaxIter;
        var maxEval = o.MaxEval;
        var toleranceGrad = o.ToleranceGrad;
        var toleranceChange = o.ToleranceChange;
        var historySize = o.HistorySize;
        var state = GlobalState;
        double R(double v) => Round(v, dtype);
        // A loaded state may hold its numbers as any of the types a load accepts (ints, longs, floats, doubles).
        long Whole(string key) => state.TryGetValue(key, out var v) ? Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) : 0L;
        double Number(string key, double fallback) =>
            state.TryGetValue(key, out var v) ? Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;

        var funcEvals = Whole("func_evals");
        var nIterTotal = Whole("n_iter");
        state.Set("func_evals", funcEvals);
        state.Set("n_iter", nIterTotal);

        // evaluate initial f(x) and df/dx
        var origLoss = evaluate();
        var loss = Item(origLoss);
        long currentEvals = 1;
        state.Set("func_evals", ++funcEvals);

        var flatGrad = GatherFlatGrad();
        var optCond = Item(flatGrad.abs().max()) <= R(toleranceGrad);
        if (optCond) return origLoss;

        // the state of earlier steps
        var d = state.TryGetValue("d", out var dv) ? (Tensor)dv : null;
        var t = Number("t", 0.0);
        var oldDirs = state.TryGetValue("old_dirs", out var od) ? ((IReadOnlyList<Tensor>)od).ToList() : new List<Tensor>();
        var oldStps = state.TryGetValue("old_stps", out var os) ? ((IReadOnlyList<Tensor>)os).ToList() : new List<Tensor>();
        var ro = state.TryGetValue("ro", out var rv) ? ((IReadOnlyList<Tensor>)rv).Select(Item).ToList() : new List<double>();
        var hDiag = Number("H_diag", 1.0);
        var prevFlatGrad = state.TryGetValue("prev_flat_grad", out var pf) ? (Tensor)pf : null;
        var prevLoss = Number("prev_loss", 0.0);
        double[]? al = state.TryGetValue("al", out var av) ? ((IReadOnlyList<Tensor>)av).Select(Item).ToArray() : null;

        long nIter = 0;
        var ran = false;
        while (nIter < maxIter)
        {
            ran = true;
            nIter++;
            nIterTotal++;

            // compute the descent direction
            if (nIterTotal == 1)
            {
                d = flatGrad.neg();
                oldDirs = new List<Tensor>();
                oldStps = new List<Tensor>();
                ro = new List<double>();
                hDiag = 1;
            }
            else
            {
                // do the lbfgs update (update memory)
                var y = flatGrad.sub(prevFlatGrad!);
                var s = d!.mul(S(t));
                var ys = Item(y.dot(s));
                if (ys > R(1e-10))
                {
                    if (oldDirs.Count == historySize)
                    {
                        // shift the history by one (limited memory)
                        oldDirs.RemoveAt(0);
                        oldStps.RemoveAt(0);
                        ro.RemoveAt(0);
                    }
                    oldDirs.Add(y);
                    oldStps.Add(s);
                    ro.Add(R(1.0 / ys));
                    // the scale of the initial Hessian approximation
                    hDiag = R(ys / Item(y.dot(y)));
                }

                var numOld = oldDirs.Count;
                if (al is null)
                {
                    al = new double[historySize];
                    state.Set("al", ToTensors(al, dtype, ps[0].device));
                }
                else if (al.Length < historySize)
                {
                    Array.Resize(ref al, (int)historySize);
                }

                // the two-loop recursion, collapsed into one buffer
                var q = flatGrad.neg();
                for (var i = numOld - 1; i >= 0; i--)
                {
                    al[i] = R(Item(oldStps[i].dot(q)) * ro[i]);
                    q.add_(oldDirs[i], alpha: S(-al[i]));
                }

                // multiply by the initial Hessian; r/d is the final direction
                var r = q.mul(S(hDiag));
                d = r;
                for (var i = 0; i < numOld; i++)
                {
                    var be = R(Item(oldDirs[i].dot(r)) * ro[i]);
                    r.add_(oldStps[i], alpha: S(R(al[i] - be)));
                }
            }

            if (prevFlatGrad is null) prevFlatGrad = flatGrad.clone();
            else prevFlatGrad.copy_(flatGrad);
            prevLoss = loss;

            // the step length: scaled on the very first iteration
            if (nIterTotal == 1)
            {
                var reciprocal = R(1.0 / Item(flatGrad.abs().sum()));
                t = reciprocal < 1.0 ? R(reciprocal * R(lr)) : 1.0 * lr; // min(1.0, 1.0 / |g|_1) * lr
            }
            else
            {
                t = lr;
            }

            // the directional derivative
            var gtd = Item(flatGrad.dot(d));
            if (gtd > R(-toleranceChange)) break;

            long lsFuncEvals = 0;
            if (o.LineSearchFn is not null)
            {
                var xInit = CloneParams();
                (loss, flatGrad, t, lsFuncEvals) = StrongWolfe(evaluate, xInit, t, d, loss, flatGrad, gtd, dtype,
                    toleranceChange: 1e-9, maxLs: maxEval - currentEvals);
                AddGrad(t, d);
                optCond = Item(flatGrad.abs().max()) <= R(toleranceGrad);
            }
            else
            {
                // no line search: a fixed step
                AddGrad(t, d);
                if (nIter != maxIter)
                {
                    // re-evaluate only if not in the last iteration (no use in a stochastic setting)
                    loss = Item(evaluate());
                    flatGrad = GatherFlatGrad();
                    optCond = Item(flatGrad.abs().max()) <= R(toleranceGrad);
                    lsFuncEvals = 1;
                }
            }

            currentEvals += lsFuncEvals;
            funcEvals += lsFuncEvals;

            // check the conditions
            if (nIter == maxIter) break;
            if (currentEvals >= maxEval) break;
            if (optCond) break;
            // lack of progress
            if (Item(d.mul(S(t)).abs().max()) <= R(toleranceChange)) break;
            if (Math.Abs(loss - prevLoss) < toleranceChange) break;
        }

        state.Set("func_evals", funcEvals);
        state.Set("n_iter", nIterTotal);
        if (al is not null) state.Set("al", ToTensors(al, dtype, ps[0].device));
        if (ran)
        {
            state.Set("d", d!);
            state.Set("t", t);
            state.Set("old_dirs", oldDirs);
            state.Set("old_stps", oldStps);
            state.Set("ro", ToTensors(ro, dtype, ps[0].device));
            state.Set("H_diag", hDiag);
            state.Set("prev_flat_grad", prevFlatGrad!);
            state.Set("prev_loss", prevLoss);
        }
        return origLoss;
    }

    private static Tensor[] ToTensors(IEnumerable<double> values, ScalarType dtype, Device device) =>
        values.Select(v => torch.tensor(v, dtype, device)).ToArray();

    // PyTorch's _directional_evaluate: the loss and flat gradient at x + t·d; the parameters go back to x.
    private (double Loss, Tensor FlatGrad) DirectionalEvaluate(Func<Tensor> evaluate, List<Tensor> x, double t, Tensor d)
    {
        AddGrad(t, d);
        var loss = Item(evaluate());
        var flatGrad = GatherFlatGrad();
        SetParams(x);
        return (loss, flatGrad);
    }

    // Python's max(a, b) and min(a, b): the first argument unless the second is strictly larger (smaller).
    private static double PyMax(double a, double b) => b > a ? b : a;

    private static double PyMin(double a, double b) => b < a ? b : a;

    // PyTorch's _cubic_interpolate (ported from torch/optim's polyinterp.lua).
    internal static double CubicInterpolate(double x1, double f1, double g1, double x2, double f2, double g2, (double, double)? bounds = null)
    {
        var (xminBound, xmaxBound) = bounds ?? (x1 <= x2 ? (x1, x2) : (x2, x1));
        var d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
        var d2Square = d1 * d1 - g1 * g2;
        if (d2Square >= 0)
        {
            var d2 = Math.Sqrt(d2Square);
            var minPos = x1 <= x2
                ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
            return PyMin(PyMax(minPos, xminBound), xmaxBound);
        }
        return (xminBound + xmaxBound) / 2.0;
    }

    // PyTorch's _strong_wolfe (ported from torch/optim's lswolfe.lua), c1 = 1e-4, c2 = 0.9.
    private (double Loss, Tensor FlatGrad, double T, long Evals) StrongWolfe(Func<Tensor> evaluate, List<Tensor> x, double t, Tensor d,
        double f, Tensor g, double gtd, ScalarType dtype, double toleranceChange, long maxLs)
    {
        const double c1 = 1e-4;
        const double c2 = 0.9;
        double R(double v) => Round(v, dtype);
        var dNorm = Item(d.abs().max());
        g = g.clone();
        // evaluate the objective and gradient at the initial step
        var (fNew, gNew) = DirectionalEvaluate(evaluate, x, t, d);
        long lsFuncEvals = 1;
        var gtdNew = R(Item(gNew.dot(d)));

        // bracket an interval containing a point satisfying the Wolfe criteria
        double tPrev = 0, fPrev = f, gtdPrev = gtd;
        var gPrev = g;
        var done = false;
        long lsIter = 0;
        double[] bracket = Array.Empty<double>();
        double[] bracketF = Array.Empty<double>();
        Tensor[] bracketG = Array.Empty<Tensor>();
        double[] bracketGtd = Array.Empty<double>();
        while (lsIter < maxLs)
        {
            // check the conditions
            if (fNew > f + c1 * t * gtd || (lsIter > 1 && fNew >= fPrev))
            {
                bracket = new[] { tPrev, t };
                bracketF = new[] { fPrev, fNew };
                bracketG = new[] { gPrev, gNew.clone() };
                bracketGtd = new[] { gtdPrev, gtdNew };
                break;
            }
            if (Math.Abs(gtdNew) <= -c2 * gtd)
            {
                bracket = new[] { t };
                bracketF = new[] { fNew };
                bracketG = new[] { gNew };
                done = true;
                break;
            }
            if (gtdNew >= 0)
            {
                bracket = new[] { tPrev, t };
                bracketF = new[] { fPrev, fNew };
                bracketG = new[] { gPrev, gNew.clone() };
                bracketGtd = new[] { gtdPrev, gtdNew };
                break;
            }

            // interpolate
            var minStep = t + 0.01 * (t - tPrev);
            var maxStep = t * 10;
            var tmp = t;
            t = CubicInterpolate(tPrev, fPrev, gtdPrev, t, fNew, gtdNew, (minStep, maxStep));

            // next step
            tPrev = tmp;
            fPrev = fNew;
            gPrev = gNew.clone();
            gtdPrev = gtdNew;
            (fNew, gNew) = DirectionalEvaluate(evaluate, x, t, d);
            lsFuncEvals++;
            gtdNew = R(Item(gNew.dot(d)));
            lsIter++;
        }

        // reached the most iterations?
        if (lsIter == maxLs)
        {
            bracket = new[] { 0, t };
            bracketF = new[] { f, fNew };
            bracketG = new[] { g, gNew };
        }

        // zoom: refine the bracket until a point satisfies the criteria
        var insufProgress = false;
        var (lowPos, highPos) = bracketF[0] <= bracketF[^1] ? (0, 1) : (1, 0);
        while (!done && lsIter < maxLs)
        {
            // the bracket is too small
            if (Math.Abs(bracket[1] - bracket[0]) * dNorm < toleranceChange) break;

            // compute a new trial value
            t = CubicInterpolate(bracket[0], bracketF[0], bracketGtd[0], bracket[1], bracketF[1], bracketGtd[1]);

            // test that we are making sufficient progress: a t close to a boundary after insufficient progress, or at a
            // boundary, moves to 0.1 * the bracket's length from the nearest boundary
            var hi = PyMax(bracket[0], bracket[1]);
            var lo = PyMin(bracket[0], bracket[1]);
            var eps = 0.1 * (hi - lo);
            if (PyMin(hi - t, t - lo) < eps)
            {
                // interpolation close to a boundary
                if (insufProgress || t >= hi || t <= lo)
                {
                    t = Math.Abs(t - hi) < Math.Abs(t - lo) ? hi - eps : lo + eps;
                    insufProgress = false;
                }
                else
                {
                    insufProgress = true;
                }
            }
            else
            {
                insufProgress = false;
            }

            // evaluate the new point
            (fNew, gNew) = DirectionalEvaluate(evaluate, x, t, d);
            lsFuncEvals++;
            gtdNew = R(Item(gNew.dot(d)));
            lsIter++;

            if (fNew > f + c1 * t * gtd || fNew >= bracketF[lowPos])
            {
                // Armijo condition not satisfied or not lower than the lowest point
                bracket[highPos] = t;
                bracketF[highPos] = fNew;
                bracketG[highPos] = gNew.clone();
                bracketGtd[highPos] = gtdNew;
                (lowPos, highPos) = bracketF[0] <= bracketF[1] ? (0, 1) : (1, 0);
            }
            else
            {
                if (Math.Abs(gtdNew) <= -c2 * gtd)
                {
                    // Wolfe conditions satisfied
                    done = true;
                }
                else if (gtdNew * (bracket[highPos] - bracket[lowPos]) >= 0)
                {
                    // the old high becomes the new low
                    bracket[highPos] = bracket[lowPos];
                    bracketF[highPos] = bracketF[lowPos];
                    bracketG[highPos] = bracketG[lowPos];
                    bracketGtd[highPos] = bracketGtd[lowPos];
                }

                // the new point becomes the new low
                bracket[lowPos] = t;
                bracketF[lowPos] = fNew;
                bracketG[lowPos] = gNew.clone();
                bracketGtd[lowPos] = gtdNew;
            }
        }

        return (bracketF[lowPos], bracketG[lowPos], bracket[lowPos], lsFuncEvals);
    }

    /// <inheritdoc/>
    protected override void ValidateGlobalState(IReadOnlyDictionary<string, object> global)
    {
        ArgumentNullException.ThrowIfNull(global);
        var ps = Params;
        var numel = Numel;
        var dtype = ps[0].dtype;
        var device = ps[0].device;
        int? pairs = null;
        foreach (var (key, value) in global)
        {
            switch (key)
            {
                case "func_evals" or "n_iter":
                    if (value is not (long and >= 0) && value is not (int and >= 0))
                        throw Bad(key, "must be a non-negative integer");
                    break;
                case "t" or "H_diag" or "prev_loss":
                    if (value is not (double or float or long or int)) throw Bad(key, "must be a number");
                    break;
                case "d" or "prev_flat_grad":
                    if (value is not Tensor tensor) throw Bad(key, "must be a tensor");
                    CheckVector(key, tensor, numel);
                    break;
                case "old_dirs" or "old_stps" or "ro" or "al":
                    if (value is not IEnumerable<Tensor> list) throw Bad(key, "must be a list of tensors");
                    var items = list.ToList();
                    foreach (var item in items)
                    {
                        if (key is "old_dirs" or "old_stps") CheckVector(key, item, numel);
                        else CheckScalar(key, item);
                    }
                    if (key != "al")
                    {
                        if (pairs is not null && pairs != items.Count)
                            throw Bad(key, "must have as many entries as old_dirs, old_stps and ro");
                        pairs = items.Count;
                    }
                    break;
                default:
                    throw new ArgumentException($"the state dict has optimizer-wide state '{key}', which LBFGS does not keep", nameof(global));
            }
        }

        void CheckVector(string key, Tensor tensor, long n)
        {
            if (tensor is null || tensor.IsInvalid) throw Bad(key, "holds a disposed tensor");
            if (tensor.ndim != 1 || tensor.size(0) != n) throw Bad(key, $"must be a vector of {n} elements, the parameters' count, not of shape [{string.Join(", ", tensor.shape)}]");
            if (tensor.dtype != dtype || tensor.device_type != device.type || tensor.device_index != device.index)
                throw Bad(key, $"is {tensor.dtype} on {tensor.device}, but the parameters are {dtype} on {device}");
        }

        void CheckScalar(string key, Tensor tensor)
        {
            if (tensor is null || tensor.IsInvalid) throw Bad(key, "holds a disposed tensor");
            if (tensor.numel() != 1 || !tensor.is_floating_point()) throw Bad(key, "must hold one floating-point value per entry");
        }

        static ArgumentException Bad(string key, string what) => new($"LBFGS state '{key}' {what}", nameof(global));
    }
}
