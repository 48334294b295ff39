#!/usr/bin/python3
"""Generate golden optimizer trajectories from PyTorch's torch.optim.

Writes one JSON file per algorithm (sgd.json, adam.json, adamw.json,
adagrad.json, rmsprop.json, sgd_momentum_nesterov.json) into
tests/Optim.Tests/Goldens/ (or --out DIR). See README.md next to this file.

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/generate.py
"""

import argparse
import inspect
import json
import os
import sys
import zlib

import torch

GENERATOR = "tools/golden/generate.py"
SHAPES = [[], [5], [3, 4]]
NUM_STEPS = 25
# Parameter 1 (shape [5]) has p.grad = None on these 0-based steps.
NO_GRAD_STEPS = {3, 7, 8}
NO_GRAD_PARAM = 1
# Parameter 2 (shape [3, 4]) gets an all-zero gradient on this step.
ZERO_GRAD_STEP = 5
ZERO_GRAD_PARAM = 2
DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------
# Case definitions: (name, options). Options hold ONLY the keys that differ
# from the defaults (plus lr for SGD / SGDMomentumNesterov, always recorded).
# Adam/AdamW betas are written as "beta1"/"beta2".
# ---------------------------------------------------------------------------

SGD_CASES = [
    ("default", {"lr": 1e-3}),
    ("lr", {"lr": 0.1}),
    ("weight_decay", {"lr": 0.1, "weight_decay": 0.1}),
    ("momentum", {"lr": 0.1, "momentum": 0.9}),
    ("dampening", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("momentum_weight_decay", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
    ("nesterov", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("nesterov_weight_decay", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("maximize", {"lr": 0.1, "maximize": True}),
    ("momentum_maximize", {"lr": 0.1, "momentum": 0.9, "maximize": True}),
    ("nesterov_maximize_weight_decay",
     {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True}),
    ("dampening_weight_decay_maximize",
     {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05, "maximize": True}),
]

ADAM_CASES = [
    ("default", {}),
    ("lr_0_01", {"lr": 0.01}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("maximize", {"maximize": True}),
    ("amsgrad", {"amsgrad": True}),
    ("amsgrad_weight_decay_maximize", {"amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("betas", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99}),
    ("eps", {"lr": 0.01, "eps": 1e-3}),
]

# Same list for AdamW; "default" keeps weight_decay at AdamW's default 1e-2.
ADAMW_CASES = list(ADAM_CASES)

ADAGRAD_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.1}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("maximize", {"maximize": True}),
    ("lr_decay", {"lr_decay": 0.5}),
    ("initial_accumulator_value", {"initial_accumulator_value": 0.1}),
    ("eps", {"eps": 1e-3}),
    ("all", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1,
             "initial_accumulator_value": 0.2, "maximize": True}),
]

RMSPROP_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.05}),
    ("alpha", {"alpha": 0.9}),
    ("centered", {"centered": True}),
    ("momentum", {"momentum": 0.5}),
    ("centered_momentum", {"centered": True, "momentum": 0.5}),
    ("centered_momentum_weight_decay", {"centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("maximize", {"maximize": True}),
    ("all", {"centered": True, "momentum": 0.3, "weight_decay": 0.1,
             "maximize": True, "alpha": 0.95}),
]

SGDMN_CASES = [
    ("nesterov", {"lr": 0.1}),
    ("coupled_weight_decay", {"lr": 0.1, "weight_decay": 0.1}),
    ("decoupled_weight_decay", {"lr": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("decoupled_maximize",
     {"lr": 0.1, "weight_decay": 0.05, "decoupled_weight_decay": True, "maximize": True}),
    ("no_nesterov", {"lr": 0.1, "nesterov": False, "dampening": 0.2}),
    ("momentum_0_5", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01,
                      "decoupled_weight_decay": True}),
]


# ---------------------------------------------------------------------------
# Reference implementation of SGDMomentumNesterov (not part of torch.optim).
# ---------------------------------------------------------------------------

class SGDMomentumNesterov:
    DEFAULTS = dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.0,
                    decoupled_weight_decay=False, maximize=False)

    def __init__(self, params, lr, **kwargs):
        unknown = set(kwargs) - set(self.DEFAULTS)
        if unknown:
            raise TypeError(f"unknown options {sorted(unknown)}")
        self.params = list(params)
        self.lr = lr
        self.opts = dict(self.DEFAULTS)
        self.opts.update(kwargs)
        self.state = {}

    @torch.no_grad()
    def step(self):
        lr = self.lr
        momentum = self.opts["momentum"]
        dampening = self.opts["dampening"]
        nesterov = self.opts["nesterov"]
        weight_decay = self.opts["weight_decay"]
        decoupled = self.opts["decoupled_weight_decay"]
        maximize = self.opts["maximize"]
        for p in self.params:
            if p.grad is None:
                continue
            grad = p.grad if not maximize else -p.grad
            if weight_decay != 0:
                if decoupled:
                    p.mul_(1 - lr * weight_decay)
                else:
                    grad = grad.add(p, alpha=weight_decay)
            buf = self.state.get(p)
            if buf is None:
                buf = torch.clone(grad).detach()
                self.state[p] = buf
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            grad = grad.add(buf, alpha=momentum) if nesterov else buf
            p.add_(grad, alpha=-lr)


# ---------------------------------------------------------------------------
# Optimizer construction
# ---------------------------------------------------------------------------

def _accepts(cls, kw):
    return kw in inspect.signature(cls.__init__).parameters


def _torch_kwargs(cls, options):
    kwargs = dict(options)
    if "beta1" in kwargs or "beta2" in kwargs:
        b1 = kwargs.pop("beta1", 0.9)
        b2 = kwargs.pop("beta2", 0.999)
        kwargs["betas"] = (b1, b2)
    for kw in kwargs:
        if not _accepts(cls, kw):
            raise TypeError(f"{cls.__name__} in torch {torch.__version__} does not accept '{kw}'")
    if _accepts(cls, "foreach"):
        kwargs["foreach"] = False
    return kwargs


def make_torch_factory(cls):
    def factory(params, options):
        return cls(params, **_torch_kwargs(cls, options))
    return factory


def sgdmn_factory(params, options):
    opts = dict(options)
    lr = opts.pop("lr")
    return SGDMomentumNesterov(params, lr, **opts)


# ---------------------------------------------------------------------------
# Trajectory generation
# ---------------------------------------------------------------------------

def case_seed(name, dtype_name):
    return zlib.crc32(f"{name}:{dtype_name}".encode("utf-8"))


def flat(t):
    return t.detach().reshape(-1).tolist()


def make_inputs(seed, dtype):
    """Initial values and the per-step gradients (None = no grad), from `seed`.

    A gradient is drawn for every parameter at every step (so the RNG stream
    does not depend on the exceptions), then replaced by None / zeros where
    the schedule says so.
    """
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        initial = [torch.randn(shape, dtype=dtype) for shape in SHAPES]
        steps = []
        for s in range(NUM_STEPS):
            grads = []
            for i, shape in enumerate(SHAPES):
                g = torch.randn(shape, dtype=dtype)
                if i == NO_GRAD_PARAM and s in NO_GRAD_STEPS:
                    g = None
                elif i == ZERO_GRAD_PARAM and s == ZERO_GRAD_STEP:
                    g = torch.zeros(shape, dtype=dtype)
                grads.append(g)
            steps.append(grads)
    finally:
        torch.random.set_rng_state(gen_state)
    return initial, steps


def run_trajectory(factory, options, initial, grad_steps):
    """Returns a list (one per step) of lists of param tensors after step()."""
    params = [t.clone().requires_grad_(True) for t in initial]
    opt = factory(params, options)
    out = []
    for grads in grad_steps:
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.clone()
        opt.step()
        out.append([p.detach().clone() for p in params])
    return out


def build_case(name, options, dtype_name, factory):
    dtype = DTYPES[dtype_name]
    initial, grad_steps = make_inputs(case_seed(name, dtype_name), dtype)
    traj = run_trajectory(factory, options, initial, grad_steps)
    steps = []
    for grads, params in zip(grad_steps, traj):
        for p in params:
            if not torch.isfinite(p).all():
                raise RuntimeError(f"non-finite parameter in case {name} ({dtype_name})")
        steps.append({
            "grads": [None if g is None else flat(g) for g in grads],
            "params": [flat(p) for p in params],
        })
    return {
        "name": f"{name}_{dtype_name}",
        "dtype": dtype_name,
        "options": dict(options),
        "shapes": [list(s) for s in SHAPES],
        "initial": [flat(t) for t in initial],
        "steps": steps,
    }


def self_check_sgdmn():
    """The reference 'coupled_weight_decay' trajectory must equal torch.optim.SGD
    (lr 0.1, momentum 0.9, nesterov, weight_decay 0.1) bit for bit."""
    options = dict(SGDMN_CASES)["coupled_weight_decay"]
    torch_options = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}
    sgd = make_torch_factory(torch.optim.SGD)
    for dtype_name, dtype in DTYPES.items():
        initial, grad_steps = make_inputs(case_seed("coupled_weight_decay", dtype_name), dtype)
        ref = run_trajectory(sgdmn_factory, options, initial, grad_steps)
        tor = run_trajectory(sgd, torch_options, initial, grad_steps)
        for s, (a, b) in enumerate(zip(ref, tor)):
            for i, (x, y) in enumerate(zip(a, b)):
                if not torch.equal(x, y):
                    raise AssertionError(
                        f"SELF-CHECK FAILED: SGDMomentumNesterov reference differs from "
                        f"torch.optim.SGD(nesterov=True) at step {s}, param {i}, {dtype_name}:\n"
                        f"  reference: {flat(x)}\n  torch:     {flat(y)}")


ALGORITHMS = [
    # (file name, algorithm label, cases, factory)
    ("sgd.json", "SGD", SGD_CASES, make_torch_factory(torch.optim.SGD)),
    ("adam.json", "Adam", ADAM_CASES, make_torch_factory(torch.optim.Adam)),
    ("adamw.json", "AdamW", ADAMW_CASES, make_torch_factory(torch.optim.AdamW)),
    ("adagrad.json", "Adagrad", ADAGRAD_CASES, make_torch_factory(torch.optim.Adagrad)),
    ("rmsprop.json", "RMSprop", RMSPROP_CASES, make_torch_factory(torch.optim.RMSprop)),
    ("sgd_momentum_nesterov.json", "SGDMomentumNesterov", SGDMN_CASES, sgdmn_factory),
]


def main(argv=None):
    default_out = os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "Optim.Tests", "Goldens"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help=f"output folder (default: {default_out})")
    args = ap.parse_args(argv)

    # Single-threaded CPU kernels: no dependence on the machine's core count.
    torch.set_num_threads(1)

    self_check_sgdmn()

    os.makedirs(args.out, exist_ok=True)
    for file_name, algorithm, cases, factory in ALGORITHMS:
        names = [n for n, _ in cases]
        if len(set(names)) != len(names):
            raise AssertionError(f"duplicate case names for {algorithm}")
        doc = {
            "generator": GENERATOR,
            "torch_version": torch.__version__,
            "algorithm": algorithm,
            "cases": [build_case(name, options, dtype_name, factory)
                      for name, options in cases
                      for dtype_name in DTYPES],
        }
        path = os.path.join(args.out, file_name)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
            f.write("\n")
        print(f"wrote {path} ({len(doc['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
