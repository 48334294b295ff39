#!/usr/bin/python3
"""PyTorch's final losses for TorchSharp's NAdam, RAdam and Rprop training tests.

TorchSharp's test/TorchSharpTest/TestTraining.cs trains a 1000-100-10 ReLU net on random data for 10 steps and
compares the last loss with a recorded value. Where that value encodes TorchSharp's own deviation from PyTorch
(its RAdam multiplies the learning rate in twice on rectified steps), the ported tests assert PyTorch's value
instead; this script computes it. It rebuilds the same setup with the same random numbers (TorchSharp's
`new Generator(4711)` and `torch.rand` are libtorch's CPU generator and kernel, as PyTorch's are), runs the
PyTorch 2.x single-tensor updates transcribed in generate.py (NAdam, RAdam) or torch.optim's Rprop (whose 1.13
ops equal 2.x's), and PyTorch's OneCycleLR, or TorchSharp's where the two differ (several groups; see
TorchSharpOneCycleLR). It prints one line per test: name, final loss.

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/torchsharp_training_nadam_radam_rprop.py
The matrix products run on this machine's BLAS, not libtorch 2.10's MKL: expect agreement to about 1e-5
relative, well inside the tests' 1e-3.
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402  (the transcriptions of PyTorch 2.x's _single_tensor_* functions)


class _Transcribed(torch.optim.Optimizer):
    """A torch.optim.Optimizer (so PyTorch's schedulers drive it) running a transcribed 2.x update."""

    def __init__(self, params, kind, **defaults):
        self.kind = kind
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            ps = [p for p in group["params"] if p.grad is not None]
            for p in ps:
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0, dtype=g._get_scalar_dtype())
                    if self.kind == "nadam":
                        state["mu_product"] = torch.tensor(1.0, dtype=g._get_scalar_dtype())
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            grads = [p.grad for p in ps]
            exp_avgs = [self.state[p]["exp_avg"] for p in ps]
            exp_avg_sqs = [self.state[p]["exp_avg_sq"] for p in ps]
            steps = [self.state[p]["step"] for p in ps]
            if self.kind == "nadam":
                g._single_tensor_nadam_2x(
                    ps, grads, exp_avgs, exp_avg_sqs, [self.state[p]["mu_product"] for p in ps], steps,
                    beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                    momentum_decay=group["momentum_decay"], eps=group["eps"], decoupled_weight_decay=False,
                    maximize=False)
            else:
                g._single_tensor_radam_2x(
                    ps, grads, exp_avgs, exp_avg_sqs, steps, beta1=beta1, beta2=beta2, lr=group["lr"],
                    weight_decay=group["weight_decay"], eps=group["eps"], decoupled_weight_decay=False,
                    maximize=False)


def nadam(params, lr=0.002, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3):
    return _Transcribed(params, "nadam", lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay)


def radam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    return _Transcribed(params, "radam", lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def f32(x):
    # TorchSharp's tests write some group rates as float literals (0.005f) into a double.
    return float(torch.tensor(x, dtype=torch.float32).item())


def setup():
    # TestTraining.CreateLinearLayers then CreateDataAndLabels, all from one Generator(4711).
    gen = torch.Generator().manual_seed(4711)
    lin1, lin2 = torch.nn.Linear(1000, 100), torch.nn.Linear(100, 10)
    for lin in (lin1, lin2):
        w = torch.rand(lin.weight.shape, generator=gen)
        w_bound = 1 / math.sqrt(w.shape[1])
        lin.weight = torch.nn.Parameter(w * (2 * w_bound) - w_bound)
        fan_in = lin.weight.shape[1]
        b_bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        b = torch.rand(lin.bias.shape, generator=gen)
        lin.bias = torch.nn.Parameter(b * (2 * b_bound) - b_bound)
    x = torch.rand(64, 1000, generator=gen)
    y = torch.rand(64, 10, generator=gen)
    return lin1, lin2, torch.nn.Sequential(lin1, torch.nn.ReLU(), lin2), x, y


class TorchSharpOneCycleLR:
    """TorchSharp 0.107's OneCycleLR (src/TorchSharp/Optimizers/LRScheduler.cs), which the ported tests drive.

    It differs from PyTorch's in one place: choosing the phase, it tests the group index where PyTorch tests the
    phase index (`step_num <= end_step || i == phases.Length - 1`), so with two phases every group but the first
    stays in the warm-up phase, past its end. With one group it is PyTorch's schedule.
    """

    def __init__(self, opt, max_lrs, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4,
                 base_momentum=0.85, max_momentum=0.95):
        self.opt, self.total = opt, total_steps
        n = len(opt.param_groups)
        self.values = {"initial_lr": [m / div_factor for m in max_lrs], "max_lr": list(max_lrs)}
        self.values["min_lr"] = [i / final_div_factor for i in self.values["initial_lr"]]
        self.values["max_momentum"] = [max_momentum] * n
        self.values["base_momentum"] = [base_momentum] * n
        self.phases = [(pct_start * total_steps - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                       (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        for group in opt.param_groups:
            group["betas"] = (max_momentum, group["betas"][1])
        self.last_epoch = -1
        self.step()

    @staticmethod
    def _anneal(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    def step(self):
        self.last_epoch += 1
        step_num = self.last_epoch
        for i, group in enumerate(self.opt.param_groups):
            start_step, lr, momentum = 0.0, 0.0, 0.0  # TorchSharp's values when no phase matches
            for j, (end_step, s_lr, e_lr, s_m, e_m) in enumerate(self.phases):
                if step_num <= end_step or i == len(self.phases) - 1:  # TorchSharp's test (PyTorch: j)
                    pct = (step_num - start_step) / (end_step - start_step)
                    lr = self._anneal(self.values[s_lr][i], self.values[e_lr][i], pct)
                    momentum = self._anneal(self.values[s_m][i], self.values[e_m][i], pct)
                    break
                start_step = end_step
            group["lr"] = lr
            group["betas"] = (momentum, group["betas"][1])


def train(seq, x, y, opt, scheduler=None, iters=10, maximize=False):
    # TestTraining.TrainLoop: the loss is recorded before each step; the last one recorded is returned.
    loss_fn = torch.nn.MSELoss(reduction="sum")
    final = None
    for _ in range(iters):
        out = loss_fn(seq(x), y)
        if maximize:
            out = -out
        final = out.item()
        opt.zero_grad()
        out.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return final


def cases():
    def plain(make):
        def run():
            lin1, lin2, seq, x, y = setup()
            return train(seq, x, y, make(seq.parameters()))
        return run

    def groups(make, lr1, lr2=None, **kw):
        def run():
            lin1, lin2, seq, x, y = setup()
            second = {"params": lin2.parameters()}
            if lr2 is not None:
                second["lr"] = lr2
            return train(seq, x, y, make([{"params": lin1.parameters(), "lr": lr1}, second], **kw))
        return run

    def one_cycle(make, max_lr, groups_lr=None, torchsharp_schedule=False, **kw):
        def run():
            lin1, lin2, seq, x, y = setup()
            if groups_lr is None:
                opt = make(seq.parameters(), **kw)
            else:
                opt = make([{"params": lin1.parameters(), "lr": groups_lr[0]},
                            {"params": lin2.parameters(), "lr": groups_lr[1]}], **kw)
            max_lrs = max_lr if isinstance(max_lr, list) else [max_lr] * len(opt.param_groups)
            sched = TorchSharpOneCycleLR(opt, max_lrs, total_steps=10) if torchsharp_schedule else \
                torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, total_steps=10)
            return train(seq, x, y, opt, sched)
        return run

    rprop = lambda ps, **kw: torch.optim.Rprop(ps, foreach=False, **kw)  # noqa: E731
    return [
        # Same values in TorchSharp (checks that this script rebuilds its setup).
        ("TrainingNAdam", plain(nadam)),
        ("TrainingNAdamParamGroups", groups(nadam, f32(0.005))),
        ("TrainingRprop", plain(rprop)),
        # TorchSharp's RAdam differs from PyTorch's: these are PyTorch's values.
        ("TrainingRAdam", plain(lambda ps: radam(ps, 0.0005))),
        ("TrainingRAdamWD", plain(lambda ps: radam(ps, 0.0005, weight_decay=0.05))),
        ("TrainingRAdamBetas", plain(lambda ps: radam(ps, 0.0005, betas=(0.9, 0.999)))),
        ("TrainingRAdamParamGroups", groups(radam, f32(0.001), lr=0.0005)),
        ("TrainingRAdamOneCycleLR", one_cycle(radam, 0.0005 * 1.5, lr=0.0005)),
        ("TrainingRAdamOneCycleLR_PG", one_cycle(radam, [0.0005 * 1.5, 0.0005 * 2.25], groups_lr=(f32(0.003), 0.0005),
                                                 torchsharp_schedule=True)),
        # With one group TorchSharp's OneCycleLR is PyTorch's (checks the transcription above).
        ("TrainingRAdamOneCycleLR (TorchSharp's schedule)", one_cycle(radam, 0.0005 * 1.5, lr=0.0005,
                                                                     torchsharp_schedule=True)),
        # PyTorch's own OneCycleLR with two groups, for comparison (not asserted: the test runs TorchSharp's).
        ("TrainingRAdamOneCycleLR_PG (PyTorch's schedule)",
         one_cycle(radam, [0.0005 * 1.5, 0.0005 * 2.25], groups_lr=(f32(0.003), 0.0005))),
    ]


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    for name, run in cases():
        print(f"{name} {run():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
