#!/usr/bin/python3
"""LBFGS goldens (tests/Optim.Tests/Goldens/lbfgs.json) with Debian's PyTorch 1.13.

Each case runs several step(closure) calls on a deterministic problem (Rosenbrock in float64, a small least-squares
problem in float32 and float64) split over two parameters (so the flat gradient is a cat of views), and records per
step: the loss step returns, the parameters after it, the state's func_evals and n_iter, and how often the closure ran.

Every case is produced by `lbfgs_2x_step`, PyTorch's newest torch/optim/lbfgs.py (2.x) transcribed op for op below and
run with real torch ops. It differs from 1.13's class in one place: the strong-Wolfe line search gets the step's
remaining evaluation budget (`max_ls=max_eval - current_evals`) where 1.13 always passes 25. For the cases without a
line search the two are the same code; the generator also runs 1.13's own torch.optim.LBFGS on them and asserts the
same bits, which checks the transcription. The float64 line-search cases differ from 1.13's class only where the
budget binds (the generator records which, in "matches_1_13").

Run from the repository root: /usr/bin/python3 tools/golden/lbfgs.py
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "Optim.Tests", "Goldens", "lbfgs.json")


# ---- PyTorch 2.x's torch/optim/lbfgs.py, transcribed -------------------------------------------------------------

def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square.sqrt()
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    else:
        return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    d_norm = d.abs().max()
    g = g.clone(memory_format=torch.contiguous_format)
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.clone(memory_format=torch.contiguous_format)]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.clone(memory_format=torch.contiguous_format)]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new.clone(memory_format=torch.contiguous_format)
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new.clone(memory_format=torch.contiguous_format)
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new.clone(memory_format=torch.contiguous_format)
            bracket_gtd[low_pos] = gtd_new
    t = bracket[low_pos]
    f_new = bracket_f[low_pos]
    g_new = bracket_g[low_pos]
    return f_new, g_new, t, ls_func_evals


class LBFGS2x(torch.optim.LBFGS):
    """1.13's class (helpers _gather_flat_grad, _add_grad, _clone_param, _set_param, _directional_evaluate are the same
    in 2.x) with 2.x's step."""

    @torch.no_grad()
    def step(self, closure):
        assert len(self.param_groups) == 1
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = group["lr"]
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        opt_cond = flat_grad.abs().max() <= tolerance_grad
        if opt_cond:
            return orig_loss
        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs")
        old_stps = state.get("old_stps")
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                old_dirs = []
                old_stps = []
                ro = []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = flat_grad.neg()
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q.add_(old_dirs[i], alpha=-al[i])
                d = r = torch.mul(q, H_diag)
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r.add_(old_stps[i], alpha=al[i] - be_i)
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                else:
                    x_init = self._clone_param()

                    def obj_func(x, t, d):
                        return self._directional_evaluate(closure, x, t, d)

                    loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                        obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    with torch.enable_grad():
                        loss = closure()
                    loss = float(loss)
                    flat_grad = self._gather_flat_grad()
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if d.mul(t).abs().max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break
        state["d"] = d
        state["t"] = t
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = H_diag
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss


# ---- problems ----------------------------------------------------------------------------------------------------

def rosenbrock(n):
    start = [(-1.2 if i % 2 == 0 else 1.0) for i in range(n)]
    split = 2

    def loss(ps, data):
        x = torch.cat([p.reshape(-1) for p in ps])
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()

    return [start[:split], start[split:]], [[split], [n - split]], None, loss


def least_squares(seed, m, n):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, n, generator=g, dtype=torch.float64)
    b = torch.randn(m, generator=g, dtype=torch.float64)
    w = torch.randn(n, generator=g, dtype=torch.float64) * 0.1

    def loss(ps, data):
        a, b = data
        r = (a * ps[0]).sum(1) + ps[1] - b       # elementwise and row sums: no BLAS
        return 0.5 * (r * r).sum()

    return [w.tolist(), [0.0]], [[n], []], {"A": a.tolist(), "b": b.tolist()}, loss


def run(cls, case, problem, dtype):
    initial, shapes, data, loss_fn = problem
    ps = [torch.tensor(v, dtype=dtype).reshape(s).requires_grad_() for v, s in zip(initial, shapes)]
    tdata = None if data is None else (torch.tensor(data["A"], dtype=dtype), torch.tensor(data["b"], dtype=dtype))
    opt = cls(ps, **case["options"])
    calls = [0]

    def closure():
        calls[0] += 1
        opt.zero_grad()
        loss = loss_fn(ps, tdata)
        loss.backward()
        return loss

    steps = []
    for _ in range(case["steps"]):
        calls[0] = 0
        loss = opt.step(closure)
        st = opt.state[ps[0]]
        steps.append({
            "loss": float(loss),
            "params": [p.detach().reshape(-1).tolist() for p in ps],
            "func_evals": st["func_evals"],
            "n_iter": st["n_iter"],
            "closure_calls": calls[0],
        })
    return steps


# Fixed-step Rosenbrock runs are chaotic: a one-ulp difference in a dot product (MKL in libtorch 2.10, the reference
# BLAS in Debian's 1.13) grows about tenfold per step, so those runs are kept short enough for a 1e-9 comparison.
CASES = [
    # name, problem, dtype, options, steps
    ("rosenbrock4_nols", "rosenbrock4", torch.float64, {}, 2),
    ("rosenbrock4_nols_lr05_hist2_iter7", "rosenbrock4", torch.float64,
     {"lr": 0.5, "history_size": 2, "max_iter": 7}, 3),
    ("rosenbrock4_wolfe", "rosenbrock4", torch.float64, {"line_search_fn": "strong_wolfe"}, 4),
    ("rosenbrock6_wolfe_hist3_eval12", "rosenbrock6", torch.float64,
     {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 10, "max_eval": 12}, 4),
    ("rosenbrock2_wolfe_tolgrad_converges", "rosenbrock2", torch.float64,
     {"line_search_fn": "strong_wolfe", "max_iter": 50, "tolerance_grad": 1e-5}, 3),
    ("rosenbrock6_wolfe_lr03_iter3", "rosenbrock6", torch.float64,
     {"line_search_fn": "strong_wolfe", "lr": 0.3, "max_iter": 3}, 8),
    # The budget binds: 1.13's class (max_ls 25) takes other steps and closure counts on these.
    ("rosenbrock4_wolfe_eval6_budget_binds", "rosenbrock4", torch.float64,
     {"line_search_fn": "strong_wolfe", "max_iter": 10, "max_eval": 6}, 4),
    ("rosenbrock4_wolfe_lr10_eval4_budget_binds", "rosenbrock4", torch.float64,
     {"line_search_fn": "strong_wolfe", "lr": 10, "max_iter": 10, "max_eval": 4}, 4),
    ("rosenbrock2_wolfe_lr30_eval3_budget_binds", "rosenbrock2", torch.float64,
     {"line_search_fn": "strong_wolfe", "lr": 30, "max_iter": 10, "max_eval": 3}, 4),
    ("lsq_nols_float64", "lsq", torch.float64, {"max_iter": 5}, 4),
    ("lsq_wolfe_float64", "lsq", torch.float64, {"line_search_fn": "strong_wolfe", "max_iter": 6}, 3),
    ("lsq_nols_float32", "lsq", torch.float32, {"max_iter": 5}, 4),
    ("lsq_nols_hist2_eval3_float32", "lsq", torch.float32, {"history_size": 2, "max_iter": 4, "max_eval": 3, "lr": 0.7}, 4),
]



def problem(name):
    if name.startswith("rosenbrock"):
        n = int(name[len("rosenbrock"):])
        if n == 2:
            start = [-1.2, 1.0]

            def loss(ps, data):
                x = torch.cat([p.reshape(-1) for p in ps])
                return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()

            return [start[:1], start[1:]], [[1], []], None, loss
        return rosenbrock(n)
    return least_squares(7, 8, 5)


def main():
    torch.set_num_threads(1)
    out = []
    for name, prob, dtype, options, nsteps in CASES:
        case = {"options": options, "steps": nsteps}
        p = problem(prob)
        steps = run(LBFGS2x, case, p, dtype)
        direct = run(torch.optim.LBFGS, case, p, dtype)
        matches = direct == steps
        if "line_search_fn" not in options:
            assert matches, f"{name}: the 2.x transcription differs from 1.13's class where they share code"
        initial, shapes, data, _ = p
        out.append({
            "name": name, "problem": prob, "dtype": str(dtype).replace("torch.", ""), "options": options,
            "shapes": shapes, "initial": initial, "data": data, "matches_1_13": matches, "steps": steps,
        })
        print(f"{name}: {[s['closure_calls'] for s in steps]} evals, loss {steps[-1]['loss']:.6g}, 1.13 class {'same' if matches else 'differs'}")
    doc = {"generator": "tools/golden/lbfgs.py", "torch_version": torch.__version__,
           # How tests/Optim.Tests/Support/GoldenFiles.cs recognizes it: its algorithm, and closure-driven cases
           # (a problem and its closure, checked per step call) instead of generate.py's gradient sequences.
           "algorithm": "LBFGS", "closure_driven": True,
           "reference": "PyTorch 2.x's lbfgs.py transcribed (strong-Wolfe max_ls = max_eval - current_evals), run with 1.13's ops",
           "lbfgs_cases": out}
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
