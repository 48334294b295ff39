#!/usr/bin/python3
"""PyTorch checkpoints of every algorithm, and the trajectories PyTorch continues with.

Two modes:

  generate (default): for each case, runs PyTorch's optimizer K steps on float64 parameters with given gradients,
  writes `torch.save(optimizer.state_dict())` to tests/Optim.Tests/Fixtures/PyTorch/<case>.pt, then loads that file
  into a fresh optimizer (torch.load + load_state_dict, as a user resumes) and continues N steps; the parameters, the
  gradients and the continued trajectory go to pytorch_checkpoints.json beside the files.

  resume MANIFEST (used by the tests): loads the checkpoints Optim wrote (torch.load(weights_only=True)), continues
  them with the gradients the manifest gives and writes the parameters it reaches to MANIFEST's "result" file.

References, per algorithm: PyTorch 1.13's own classes where they compute PyTorch 2.x's update (SGD, Adam, AdamW,
Adagrad, RMSprop, Adadelta, Adamax, ASGD, RAdam, Rprop, LBFGS; Adam, AdamW, Adamax and centered RMSprop with 1.13's
mul_().add_() where 2.x has lerp_, so within rounding of 2.x), and the 2.x transcriptions in generate.py where 1.13
computes another algorithm (NAdam, whose checkpoint is still 1.13's own NAdam state dict) or has none (Adafactor and
Muon: the state dict is built by hand in 2.x's shape and saved with torch.save; SGDMomentumNesterov: Optim's own
algorithm, saved in the shape Optim writes). SparseAdam is 1.13's own class, stepped with sparse gradients as an
embedding's: each step's gradient leaves some rows out (dense.to_sparse(1), as the .NET side builds them).

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/pytorch_checkpoints.py
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402  (the 2.x replays and SGDMomentumNesterov)

GENERATOR = "tools/golden/pytorch_checkpoints.py"
SHAPES = [[5], [3, 4]]
K = 3  # steps before the checkpoint
N = 3  # steps PyTorch continues after loading it

# (case, algorithm, options as PyTorch's constructor takes them)
CASES = [
    ("sgd", "SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd_momentum_nesterov", "SGDMomentumNesterov", dict(lr=0.1, momentum=0.9, weight_decay=0.01,
                                                          decoupled_weight_decay=True)),
    ("adam", "Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.05)),
    ("adagrad", "Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("rmsprop", "RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("adadelta", "Adadelta", dict(lr=1.0, rho=0.8, weight_decay=0.01)),
    ("adamax", "Adamax", dict(lr=0.01, betas=(0.85, 0.99))),
    ("asgd", "ASGD", dict(lr=0.01, lambd=1e-3, t0=2)),
    ("nadam", "NAdam", dict(lr=0.01, momentum_decay=0.005)),
    ("radam", "RAdam", dict(lr=0.01)),
    ("rprop", "Rprop", dict(lr=0.01, etas=(0.4, 1.3), step_sizes=(1e-5, 10.0))),
    ("adafactor", "Adafactor", dict(lr=0.01, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0)),
    ("lbfgs", "LBFGS", dict(lr=1.0, max_iter=3, history_size=4)),
    ("sparseadam", "SparseAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, maximize=True)),
    # ns_steps 0: no Newton-Schulz iteration, whose bfloat16 products differ between 1.13 and libtorch 2.10 (MuonTests);
    # the rest of the update (momentum, Nesterov, bfloat16 normalization, lr adjustment, weight decay) is then exact.
    # The coefficients still travel through the file as PyTorch's tuple.
    ("muon", "Muon", dict(lr=0.02, weight_decay=0.05, momentum=0.9, nesterov=True, ns_coefficients=(3.0, -3.2, 1.2),
                          eps=1e-7, ns_steps=0, adjust_lr_fn="match_rms_adamw", use_addmm=False)),
]

# Muon takes matrices only (a wide and a tall one); the others take SHAPES.
SHAPES_OF = {"Muon": [[1, 5], [4, 3]]}


def shapes_of(algorithm):
    return SHAPES_OF.get(algorithm, SHAPES)


# The rows each step's gradient leaves out, as an embedding's gradient does for the rows its batch did not look up.
def sparse_gradients(grads):
    for s, step in enumerate(grads):
        for gr in step:
            gr[s % gr.shape[0]] = 0
            gr[(s + 2) % gr.shape[0]] = 0
    return grads


# ---- replays that load a state dict (the classes of generate.py keep state per parameter, names as Optim's) ----

def _replay_group(algorithm, group):
    out = {}
    for key, value in group.items():
        if key in ("params", "param_names", "initial_lr", "foreach", "fused", "capturable", "differentiable"):
            continue
        if key == "betas":
            out["beta1"], out["beta2"] = value
        elif key == "eps" and algorithm == "Adafactor":
            out["eps1"], out["eps2"] = value
        else:
            out[key] = value
    return out


class Replay:
    """A generate.py replay (NAdam2x, Adafactor2x) or SGDMomentumNesterov with state_dict()/load_state_dict()."""

    def __init__(self, algorithm, params, options):
        self.algorithm = algorithm
        self.params = params
        self.options = options
        self.inner = self._make(_replay_group(algorithm, {**options, "params": None}))

    def _make(self, options):
        if self.algorithm == "SGDMomentumNesterov":
            opts = dict(options)
            return g.SGDMomentumNesterov(self.params, opts.pop("lr"), **opts)
        return {"NAdam": g.NAdam2x, "Adafactor": g.Adafactor2x, "Muon": g.Muon2x}[self.algorithm](self.params, options)

    def step(self):
        self.inner.step()

    def state_dict(self):
        state = {}
        for i, p in enumerate(self.params):
            s = self.inner.state.get(p)
            if s is None:
                continue
            state[i] = {"momentum_buffer": s} if self.algorithm == "SGDMomentumNesterov" else dict(s)
        group = dict(self.options)
        if self.algorithm == "Adafactor":
            group.update(foreach=None, maximize=False)
        elif self.algorithm == "Muon":
            group = {**g.Muon2x.DEFAULTS, **group}
        elif self.algorithm == "SGDMomentumNesterov":
            group.update(nesterov=True, dampening=0.0, maximize=False, foreach=None, differentiable=False, fused=None)
        group["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, sd):
        (group,) = sd["param_groups"]
        self.inner = self._make(_replay_group(self.algorithm, group))
        for i, s in sd["state"].items():
            p = self.params[i]
            if self.algorithm == "SGDMomentumNesterov":
                self.inner.state[p] = s["momentum_buffer"].clone()
            else:
                self.inner.state[p] = {k: v.clone() for k, v in s.items()}


def make_optimizer(algorithm, params, options):
    if algorithm in ("NAdam", "Adafactor", "Muon", "SGDMomentumNesterov"):
        return Replay(algorithm, params, options)
    return getattr(torch.optim, algorithm)(params, **options)


# ---- the data ----

def inputs(case, shapes):
    gen = torch.Generator().manual_seed(sum(map(ord, case)))
    initial = [torch.randn(s, dtype=torch.float64, generator=gen) for s in shapes]
    grads = [[torch.randn(s, dtype=torch.float64, generator=gen) for s in shapes] for _ in range(K + N)]
    # LBFGS evaluates a closure instead: loss = sum_i sum(weights_i * (p_i - targets_i)^2) + 0.1 * sum(p_i^4)
    targets = [torch.randn(s, dtype=torch.float64, generator=gen) for s in shapes]
    weights = [torch.rand(s, dtype=torch.float64, generator=gen) + 0.5 for s in shapes]
    return initial, grads, targets, weights


def closure_for(params, targets, weights):
    def closure():
        for p in params:
            p.grad = None
        loss = sum(((w * (p - t) ** 2).sum() + 0.1 * (p ** 4).sum()) for p, t, w in zip(params, targets, weights))
        loss.backward()
        return loss
    return closure


def run(optimizer, params, grads, closure, sparse=False):
    out = []
    for step_grads in grads:
        if closure is not None:
            optimizer.step(closure)
        else:
            for p, gr in zip(params, step_grads):
                p.grad = gr.to_sparse(1) if sparse else gr.clone()
            optimizer.step()
        out.append([flat(p) for p in params])
    return out


def flat(t):
    return t.detach().reshape(-1).tolist()


def generate(out_dir):
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    cases = []
    for case, algorithm, options in CASES:
        shapes = shapes_of(algorithm)
        initial, grads, targets, weights = inputs(case, shapes)
        sparse = algorithm == "SparseAdam"
        if sparse:
            grads = sparse_gradients(grads)
        params = [t.clone().requires_grad_(True) for t in initial]
        # NAdam's checkpoint is 1.13's own (the file format in the wild); PyTorch 2.x's update continues it.
        optimizer = torch.optim.NAdam(params, **options) if algorithm == "NAdam" else make_optimizer(algorithm, params, options)
        closure = closure_for(params, targets, weights) if algorithm == "LBFGS" else None
        run(optimizer, params, grads[:K], closure, sparse)
        path = os.path.join(out_dir, f"{case}.pt")
        torch.save(optimizer.state_dict(), path)
        at_checkpoint = [flat(p) for p in params]

        # Resume as a user does: a fresh optimizer over the same parameters loads the file.
        resumed = [p.detach().clone().requires_grad_(True) for p in params]
        loaded = make_optimizer(algorithm, resumed, options)
        loaded.load_state_dict(torch.load(path))
        closure = closure_for(resumed, targets, weights) if algorithm == "LBFGS" else None
        trajectory = run(loaded, resumed, grads[K:], closure, sparse)
        cases.append({
            "case": case,
            "algorithm": algorithm,
            "file": f"{case}.pt",
            "reference": "PyTorch 2.x transcription (generate.py)" if isinstance(loaded, Replay) else f"torch.optim.{algorithm}",
            "shapes": shapes,
            "params": at_checkpoint,
            "grads": [[flat(gr) for gr in step] for step in grads[K:]],
            "targets": [flat(t) for t in targets],
            "weights": [flat(w) for w in weights],
            "trajectory": trajectory,
        })
        print(f"wrote {path}")
    doc = {"generator": GENERATOR, "torch_version": torch.__version__, "steps_before": K, "cases": cases,
           "schedulers": schedulers(out_dir), "scaler": scaler(out_dir), "training": training(out_dir)}
    with open(os.path.join(out_dir, "pytorch_checkpoints.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")


# torch.load(weights_only=True) exists since 1.13, but 1.13's restricted unpickler lacks BINFLOAT (it cannot read a
# float, so not even the state dicts 1.13 itself writes); from 2.0 on it reads them. Where it cannot, the same
# allowlist is checked on the pickle's opcodes (check_allowlisted) and the file is loaded without the restriction.
WEIGHTS_ONLY_READS_FLOATS = int(torch.__version__.split(".")[0]) >= 2
ALLOWED_GLOBALS = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2"} | {
    f"torch {t}Storage" for t in ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
                                  "ComplexFloat", "ComplexDouble")}


def check_allowlisted(path):
    """The file's pickle is protocol 2 and names only globals of torch.load(weights_only=True)'s allowlist."""
    import pickletools
    import zipfile
    with zipfile.ZipFile(path) as z:
        (name,) = [n for n in z.namelist() if n.endswith("/data.pkl")]
        ops = list(pickletools.genops(z.read(name)))
    if ops[0][0].name != "PROTO" or ops[0][1] != 2:
        raise AssertionError(f"{path}: not pickle protocol 2")
    for op, arg, _ in ops:
        if op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"):
            if op.name != "GLOBAL" or arg not in ALLOWED_GLOBALS:
                raise AssertionError(f"{path}: {op.name} {arg} is not on the allowlist")


# (case, steps before the checkpoint, factory over an SGD with two groups (lr 0.1 and 0.05)); the .NET test builds the
# same scheduler by case name.
SCHEDULERS = [
    ("steplr", 3, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5)),
    ("multisteplr", 3, lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 4, 4], gamma=0.5)),
    ("cosineannealinglr", 4, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("sequentiallr", 3, lambda o: torch.optim.lr_scheduler.SequentialLR(o, [
        torch.optim.lr_scheduler.LinearLR(o, start_factor=0.5, total_iters=2),
        torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)], milestones=[2])),
]


def sgd_two_groups():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    return torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1)


def schedulers(out_dir):
    """Each scheduler's state_dict() after some steps, and the rates PyTorch continues with after loading it."""
    out = []
    for case, steps, factory in SCHEDULERS:
        optimizer = sgd_two_groups()
        scheduler = factory(optimizer)
        for _ in range(steps):
            optimizer.step()
            scheduler.step()
        torch.save(scheduler.state_dict(), os.path.join(out_dir, f"{case}.pt"))
        lrs = [g["lr"] for g in optimizer.param_groups]
        resumed_optimizer = sgd_two_groups()
        resumed = factory(resumed_optimizer)
        for g, lr in zip(resumed_optimizer.param_groups, lrs):
            g["lr"] = lr
        resumed.load_state_dict(torch.load(os.path.join(out_dir, f"{case}.pt")))
        rates = []
        for _ in range(N):
            resumed_optimizer.step()
            resumed.step()
            rates.append([g["lr"] for g in resumed_optimizer.param_groups])
        out.append({"case": case, "file": f"{case}.pt", "lrs": lrs, "rates": rates})
    return out


# PyTorch 1.13 enables GradScaler on CUDA only; this is the dict 2.x's GradScaler.state_dict() returns (floats from
# get_scale() and the factors, ints for the interval and the tracker), saved with torch.save.
SCALER_STATE = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 100, "_growth_tracker": 7}


def scaler(out_dir):
    torch.save(dict(SCALER_STATE), os.path.join(out_dir, "scaler.pt"))
    return {"file": "scaler.pt", "state": SCALER_STATE}


def model():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()


def training(out_dir):
    """A Python run's training checkpoint, torch.save({"model", "optimizer", "scheduler", "scaler", "epoch"}), and the
    weights the run reaches when it resumes from it."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, 3, dtype=torch.float64, generator=gen)
    y = torch.randn(8, 2, dtype=torch.float64, generator=gen)
    torch.manual_seed(3)
    net = model()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    def iteration(net, optimizer, scheduler):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
        scheduler.step()

    for _ in range(K):
        iteration(net, optimizer, scheduler)
    path = os.path.join(out_dir, "training.pt")
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": dict(SCALER_STATE), "epoch": K}, path)

    resumed = model()
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=0.01)
    resumed_scheduler = torch.optim.lr_scheduler.StepLR(resumed_optimizer, step_size=2, gamma=0.5)
    checkpoint = torch.load(path)
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    resumed_scheduler.load_state_dict(checkpoint["scheduler"])
    for _ in range(N):
        iteration(resumed, resumed_optimizer, resumed_scheduler)
    return {"file": "training.pt", "x": flat(x), "y": flat(y), "steps": N,
            "weights": {k: flat(v) for k, v in resumed.state_dict().items()}}


def resume(manifest_path):
    """Continues checkpoints written by Optim: for each case, a fresh PyTorch optimizer over the manifest's parameters
    loads the file with torch.load(weights_only=True) and steps with the manifest's gradients."""
    torch.set_num_threads(1)
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    results = {}
    for case in manifest["cases"]:
        params = [torch.tensor(v, dtype=torch.float64).reshape(s).requires_grad_(True)
                  for v, s in zip(case["params"], case["shapes"])]
        optimizer = make_optimizer(case["algorithm"], params, {"lr": 1e-3})  # the file's hyperparameters replace these
        check_allowlisted(case["file"])
        sd = torch.load(case["file"], weights_only=WEIGHTS_ONLY_READS_FLOATS)
        optimizer.load_state_dict(sd)
        closure = None
        if case["algorithm"] == "LBFGS":
            targets = [torch.tensor(v, dtype=torch.float64).reshape(s) for v, s in zip(case["targets"], case["shapes"])]
            weights = [torch.tensor(v, dtype=torch.float64).reshape(s) for v, s in zip(case["weights"], case["shapes"])]
            closure = closure_for(params, targets, weights)
        grads = [[torch.tensor(v, dtype=torch.float64).reshape(s) for v, s in zip(step, case["shapes"])]
                 for step in case["grads"]]
        results[case["case"]] = run(optimizer, params, grads, closure, case["algorithm"] == "SparseAdam")
    training_weights = None
    if "training" in manifest:
        # A training checkpoint written by Optim: PyTorch's model, Adam and StepLR resume from it.
        t = manifest["training"]
        check_allowlisted(t["file"])
        checkpoint = torch.load(t["file"], weights_only=WEIGHTS_ONLY_READS_FLOATS)
        net = model()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        net.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        x = torch.tensor(t["x"], dtype=torch.float64).reshape(8, 3)
        y = torch.tensor(t["y"], dtype=torch.float64).reshape(8, 2)
        for _ in range(t["steps"]):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            optimizer.step()
            scheduler.step()
        training_weights = {k: flat(v) for k, v in net.state_dict().items()}
    with open(manifest["result"], "w", encoding="utf-8") as f:
        json.dump({"torch_version": torch.__version__, "weights_only": WEIGHTS_ONLY_READS_FLOATS, "trajectories": results,
                   "training": training_weights}, f)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "resume":
        resume(sys.argv[2])
    else:
        default_out = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                    "tests", "Optim.Tests", "Fixtures", "PyTorch"))
        generate(sys.argv[1] if len(sys.argv) > 1 else default_out)
