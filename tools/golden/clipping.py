#!/usr/bin/python3
"""Generate gradient-clipping goldens (tests/Optim.Tests/Goldens/clipping.json).

Each case is a set of gradients (some parameters without one) and an operation:
clip_grad_norm_ (norm types 2, inf, 1, 3 and 0.5; a max_norm that clips and one
that does not), get_total_norm, clip_grads_with_norm_ with a given total norm,
and clip_grad_value_; gradients with inf or NaN too. float32, float64 and
bfloat16. The file records the gradients before, the total norm and the
gradients after, as doubles (exact for every dtype).

PyTorch 2.x's formula, transcribed with real torch ops (Debian's PyTorch 1.13
is the torch on this machine; its clip_grad_norm_ is different):

| | PyTorch 1.13 clip_grad_norm_ | PyTorch 2.x |
| --- | --- | --- |
| per-tensor norms | `torch.norm(g, p)`; inf: `g.abs().max()` | `torch._foreach_norm(grads, p)` per (device, dtype) (on CPU: `linalg.vector_norm(g, p)` per tensor) |
| total | `torch.norm(stack(norms), p)`; inf: `torch.max(stack(norms))`, or the one norm itself | `linalg.vector_norm(stack(norms), p)` |
| clipping | `g.mul_(clamp(max_norm / (total + 1e-6), max=1))` | same, as `_foreach_mul_(grads, coef)` |

`max_norm / tensor` is Python's Tensor.__rtruediv__: `tensor.reciprocal() * max_norm`.
The script also runs 1.13's own clip_grad_norm_ on every case and records, per
case, whether its total norm and gradients equal the 2.x transcription bit for
bit (`matches_torch_1_13`): on 1.13's CPU kernels they do in every case here
(torch.norm and linalg.vector_norm share a kernel, and max is exact), so the
formulas differ only in the ops named, not in these results. libtorch 2.10's
norm kernels round some cases differently from 1.13's (see ClipGradTests).

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/clipping.py
"""

import argparse
import json
import math
import os
import zlib

import torch
import torch.nn.utils as nn_utils

GENERATOR = "tools/golden/clipping.py"
SHAPES = [[], [5], [3, 4], [2, 3, 7], [64]]
NO_GRAD_PARAM = 2
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
INF = float("inf")

# (name, op, norm_type, max_norm or clip_value, poison)
CASES = [
    ("norm2_clips", "clip_grad_norm_", 2.0, 1.0, None),
    ("norm2_no_clip", "clip_grad_norm_", 2.0, 1e6, None),
    ("norm_inf_clips", "clip_grad_norm_", INF, 0.5, None),
    ("norm1_clips", "clip_grad_norm_", 1.0, 2.0, None),
    ("norm3_clips", "clip_grad_norm_", 3.0, 0.75, None),
    ("norm0_5_clips", "clip_grad_norm_", 0.5, 10.0, None),
    ("norm2_inf_grad", "clip_grad_norm_", 2.0, 1.0, "inf"),
    ("norm2_nan_grad", "clip_grad_norm_", 2.0, 1.0, "nan"),
    ("norm_inf_inf_grad", "clip_grad_norm_", INF, 1.0, "inf"),
    ("total_norm2", "get_total_norm", 2.0, None, None),
    ("total_norm_inf", "get_total_norm", INF, None, None),
    ("total_norm3", "get_total_norm", 3.0, None, None),
    ("with_norm", "clip_grads_with_norm_", None, 1.5, None),
    ("value", "clip_grad_value_", None, 0.3, None),
    ("value_nan_grad", "clip_grad_value_", None, 0.3, "nan"),
]
WITH_NORM_TOTAL = 7.25  # the total norm handed to clip_grads_with_norm_


def make_grads(name, dtype_name):
    dtype = DTYPES[dtype_name]
    torch.manual_seed(zlib.crc32(f"{name}:{dtype_name}".encode()))
    grads = []
    for i, shape in enumerate(SHAPES):
        g = (torch.randn(shape, dtype=torch.float64) * (0.5 + i)).to(dtype)
        grads.append(None if i == NO_GRAD_PARAM else g)
    return grads


def poison(grads, kind):
    if kind is None:
        return
    g = grads[3].view(-1)
    g[5] = INF if kind == "inf" else float("nan")


# ---- PyTorch 2.x, transcribed ----

def total_norm_2x(grads, norm_type):
    grads = [g for g in grads if g is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]  # _foreach_norm's CPU fallback
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


def clip_with_norm_2x(grads, max_norm, total_norm):
    clip_coef = (total_norm + 1e-6).reciprocal() * max_norm  # max_norm / (total_norm + 1e-6)
    clip_coef_clamped = torch.clamp(clip_coef, max=1.0)
    for g in grads:
        if g is not None:
            g.mul_(clip_coef_clamped)


def clip_value_2x(grads, clip_value):
    for g in grads:
        if g is not None:
            g.clamp_min_(-clip_value)  # _foreach_clamp_min_
            g.clamp_max_(clip_value)   # _foreach_clamp_max_


def run_2x(op, grads, norm_type, arg):
    if op == "clip_grad_norm_":
        total = total_norm_2x(grads, norm_type)
        clip_with_norm_2x(grads, arg, total)
        return total
    if op == "get_total_norm":
        return total_norm_2x(grads, norm_type)
    if op == "clip_grads_with_norm_":
        clip_with_norm_2x(grads, arg, torch.tensor(WITH_NORM_TOTAL, dtype=grads[0].dtype))
        return None
    clip_value_2x(grads, arg)
    return None


def run_1_13(op, grads, norm_type, arg):
    """1.13's own function where it has one, for the matches_torch_1_13 flag."""
    params = []
    for i, g in enumerate(grads):
        p = torch.zeros(SHAPES[i], dtype=grads[0].dtype)
        p.grad = g
        params.append(p)
    if op == "clip_grad_norm_":
        return nn_utils.clip_grad_norm_(params, arg, norm_type)
    if op == "clip_grad_value_":
        nn_utils.clip_grad_value_(params, arg)
    return None


def values(t):
    return [float(v) for v in t.detach().to(torch.float64).reshape(-1).tolist()]


def same_bits(a, b):
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(-1).to(torch.float64).nan_to_num(1e300, 1e301, -1e301),
                                                                       b.view(-1).to(torch.float64).nan_to_num(1e300, 1e301, -1e301))


def number(v):
    if v is None:
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if math.isnan(v):
        return "nan"
    return v


def grads_json(grads):
    return [None if g is None else [number(v) for v in values(g)] for g in grads]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "Optim.Tests", "Goldens"))
    args = parser.parse_args()

    cases = []
    for dtype_name, dtype in DTYPES.items():
        for name, op, norm_type, arg, kind in CASES:
            grads = make_grads(name, dtype_name)
            poison(grads, kind)
            before = [None if g is None else g.clone() for g in grads]
            total = run_2x(op, grads, norm_type, arg)

            old = [None if g is None else g.clone() for g in before]
            old_total = run_1_13(op, old, norm_type, arg)
            matches = None
            if op in ("clip_grad_norm_", "clip_grad_value_"):
                matches = all(same_bits(a, b) for a, b in zip(old, grads)) and (total is None or same_bits(old_total, total))

            cases.append({
                "name": f"{name}_{dtype_name}",
                "dtype": dtype_name,
                "op": op,
                "norm_type": number(norm_type),
                "max_norm": arg if op in ("clip_grad_norm_", "clip_grads_with_norm_") else None,
                "clip_value": arg if op == "clip_grad_value_" else None,
                "given_total_norm": WITH_NORM_TOTAL if op == "clip_grads_with_norm_" else None,
                "shapes": SHAPES,
                "grads": grads_json(before),
                "total_norm": None if total is None else number(values(total)[0]),
                "total_norm_dtype": None if total is None else str(total.dtype).replace("torch.", ""),
                "expected_grads": grads_json(grads),
                "matches_torch_1_13": matches,
            })

    out = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "formula": "PyTorch 2.x torch.nn.utils.clip_grad (see the generator's docstring)",
        "cases": cases,
    }
    path = os.path.join(args.out, "clipping.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    differing = [c["name"] for c in cases if c["matches_torch_1_13"] is False]
    print(f"wrote {len(cases)} cases to {path}; 1.13's own function differs in: {differing or 'none'}")


if __name__ == "__main__":
    main()
