#!/usr/bin/python3
"""Golden trajectories for the Lion optimizer of samples/CustomOptimizer.

torch.optim has no Lion, so this is a reference written from the paper (Chen et al., 2023, "Symbolic Discovery of
Optimization Algorithms", Program 1 and Algorithm 2), run with this machine's real torch ops, one per line of the
paper's update, per parameter:

    p = p * (1 - lr * weight_decay)                       (decoupled weight decay; skipped when weight_decay == 0)
    p = p - lr * sign(beta1 * m + (1 - beta1) * g)        (g negated first with maximize)
    m = beta2 * m + (1 - beta2) * g

m starts at zero on a parameter's first gradient. The cases, seeds, shapes and gradients are generate.py's (same
schedule of missing and all-zero gradients), so lion.json reads like the other golden files. It lives in Goldens/Samples/
because Lion is not one of the library's algorithms (the generic golden tests take every file in Goldens/).

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/lion.py
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import DTYPES, build_case  # noqa: E402

GENERATOR = "tools/golden/lion.py"
REFERENCE = ("No torch.optim class: the paper's update transcribed with torch tensor ops "
             "(mul, add with alpha, sign), see tools/golden/lion.py")

LION_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.01}),
    ("betas", {"lr": 0.01, "beta1": 0.8, "beta2": 0.9}),
    ("weight_decay", {"lr": 0.01, "weight_decay": 0.5}),
    ("maximize", {"lr": 0.01, "maximize": True}),
    ("all", {"lr": 0.02, "beta1": 0.95, "beta2": 0.98, "weight_decay": 0.1, "maximize": True}),
]


class Lion:
    DEFAULTS = dict(lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0, maximize=False)

    def __init__(self, params, options):
        unknown = set(options) - set(self.DEFAULTS)
        if unknown:
            raise TypeError(f"unknown options {sorted(unknown)}")
        self.params = list(params)
        self.group = dict(self.DEFAULTS)
        self.group.update(options)
        self.state = {}

    @torch.no_grad()
    def step(self):
        g = self.group
        lr, beta1, beta2, wd = g["lr"], g["beta1"], g["beta2"], g["weight_decay"]
        for p in self.params:
            if p.grad is None:
                continue
            grad = p.grad if not g["maximize"] else -p.grad
            if p not in self.state:
                self.state[p] = {"exp_avg": torch.zeros_like(p)}
            exp_avg = self.state[p]["exp_avg"]
            if wd != 0:
                p.mul_(1 - lr * wd)
            update = exp_avg.mul(beta1).add_(grad, alpha=1 - beta1).sign_()
            p.add_(update, alpha=-lr)
            exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)


def main():
    torch.set_num_threads(1)
    out = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "Optim.Tests",
                                        "Goldens", "Samples", "lion.json"))
    doc = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "algorithm": "Lion",
        "reference": REFERENCE,
        "cases": [build_case(name, options, dtype_name, lambda params, o: Lion(params, o))
                  for name, options in LION_CASES for dtype_name in DTYPES],
    }
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {out} ({len(doc['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
