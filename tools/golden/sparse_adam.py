#!/usr/bin/python3
"""SparseAdam goldens (tests/Optim.Tests/Goldens/sparse_adam.json) with Debian's PyTorch 1.13.

Each case trains two torch.nn.Embedding(..., sparse=True) tables with 1.13's own torch.optim.SparseAdam. Every step
looks up a batch of indices in each table (drawn with repeats, so the sparse gradient is uncoalesced and SparseAdam's
coalesce sums rows), backpropagates sum(output * upstream) so the gradient's values are `upstream`, and records the
indices, the upstream values and both tables after step(). Table 1 gets no gradient on NO_GRAD_STEPS and an empty
lookup (a sparse gradient without values) on EMPTY_STEP.

PyTorch 1.13's SparseAdam runs the same ops in the same order as PyTorch 2.x's (torch/optim/_functional.py's
sparse_adam), so its class is the reference, as adadelta.json's is, with one exception: a gradient without values
makes 1.13 fail (a shape mismatch), where 2.x counts the step (SparseAdam.step increments state["step"] for every
parameter with a gradient) and then skips the update (`if grad_values.numel() == 0: continue`). On EMPTY_STEP the
generator records the empty lookup, hides that gradient from 1.13's step and then adds the 1 to the table's step
count that 2.x's step adds, which is all 2.x does for it.

Run from the repository root: /usr/bin/python3 tools/golden/sparse_adam.py
"""
import json
import os
import zlib

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "Optim.Tests", "Goldens", "sparse_adam.json")
GENERATOR = "tools/golden/sparse_adam.py"
TABLES = [[10, 3], [6, 4]]
BATCH = [7, 5]
NUM_STEPS = 20
NO_GRAD_STEPS = {3, 7}
EMPTY_STEP = 5
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Options as Optim names them (betas as beta1/beta2, as TorchSharp's Adam).
CASES = [
    ("default", {}),
    ("lr", {"lr": 0.05}),
    ("betas", {"beta1": 0.8, "beta2": 0.99}),
    ("eps", {"eps": 1e-3}),
    ("maximize", {"maximize": True}),
    ("all", {"lr": 0.02, "beta1": 0.7, "beta2": 0.95, "eps": 1e-6, "maximize": True}),
]


def torch_kwargs(options):
    kwargs = dict(options)
    if "beta1" in kwargs or "beta2" in kwargs:
        kwargs["betas"] = (kwargs.pop("beta1", 0.9), kwargs.pop("beta2", 0.999))
    return kwargs


def flat(t):
    return t.detach().reshape(-1).tolist()


def build_case(name, options, dtype_name):
    dtype = DTYPES[dtype_name]
    torch.manual_seed(zlib.crc32(f"{name}:{dtype_name}".encode("utf-8")))
    tables = [torch.nn.Embedding(n, d, sparse=True).to(dtype) for n, d in TABLES]
    for t in tables:
        with torch.no_grad():
            t.weight.copy_(torch.randn(t.weight.shape, dtype=dtype))
    initial = [flat(t.weight) for t in tables]
    opt = torch.optim.SparseAdam([t.weight for t in tables], **torch_kwargs(options))
    steps = []
    for s in range(NUM_STEPS):
        # Draw every table's batch every step, so the random stream does not depend on the exceptions.
        drawn = [(torch.randint(0, n, (b,)), torch.randn(b, d, dtype=dtype)) for (n, d), b in zip(TABLES, BATCH)]
        opt.zero_grad(set_to_none=True)
        indices, upstream = [], []
        for i, (table, (idx, up)) in enumerate(zip(tables, drawn)):
            if i == 1 and s in NO_GRAD_STEPS:
                indices.append(None)
                upstream.append(None)
                continue
            if i == 1 and s == EMPTY_STEP:
                idx, up = idx[:0], up[:0]
            (table(idx) * up).sum().backward()
            if not table.weight.grad.is_sparse:
                raise AssertionError("expected a sparse gradient")
            indices.append(idx.tolist())
            upstream.append(flat(up))
        hidden = None
        if s == EMPTY_STEP:
            hidden = tables[1].weight
            if hidden.grad._values().numel() != 0 or len(opt.state[hidden]) == 0:
                raise AssertionError("the empty step needs an empty gradient and existing state")
            hidden.grad = None
        opt.step()
        if hidden is not None:
            opt.state[hidden]["step"] += 1  # 2.x counts the step, then skips the empty update
        params = [flat(t.weight) for t in tables]
        for p in params:
            if not all(map(lambda v: v == v and abs(v) != float("inf"), p)):
                raise RuntimeError(f"non-finite parameter in case {name} ({dtype_name})")
        steps.append({"indices": indices, "upstream": upstream, "params": params,
                      "step": [opt.state[t.weight]["step"] if t.weight in opt.state else None for t in tables]})
    return {
        "name": f"{name}_{dtype_name}",
        "dtype": dtype_name,
        "options": options,
        "shapes": TABLES,
        "initial": initial,
        "steps": steps,
    }


def main():
    torch.set_num_threads(1)
    doc = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "algorithm": "SparseAdam",
        "sparse_gradients": True,
        "cases": [build_case(name, options, dtype_name) for name, options in CASES for dtype_name in DTYPES],
    }
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({len(doc['cases'])} cases)")


if __name__ == "__main__":
    main()
