#!/usr/bin/python3
"""Generate golden learning-rate schedules from PyTorch's torch.optim.lr_scheduler and swa_utils.

Writes tests/Optim.Tests/Goldens/schedulers.json (or --out DIR). Every case drives an optimizer with two parameter
groups and records, after construction and after each of its steps, every group's lr (and momentum or beta1 where
the scheduler cycles it).

Two sources, marked per case in "source":

- "torch": the installed torch's own classes (Debian's python3-torch, 1.13). Used where the code path the case
  exercises is the same in 1.13 and in PyTorch's newest lr_scheduler.py / swa_utils.py.
- "transcribed": the installed torch's classes with the methods that changed since 1.13 replaced by
  transcriptions of PyTorch's newest source (classes NewestXxx below; the differences are listed there and in
  README.md). Used for the paths where 1.13 and the newest differ.

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/schedulers.py
"""

import argparse
import json
import math
import os
import warnings
from bisect import bisect_right

import torch
from torch.optim import lr_scheduler as lrs
from torch.optim import swa_utils

GENERATOR = "tools/golden/schedulers.py"
STEPS = 45
GROUP_LRS = [0.1, 0.02]

warnings.simplefilter("ignore")


# ---------------------------------------------------------------------------
# Transcriptions of PyTorch's newest torch/optim/lr_scheduler.py (read from github.com/pytorch/pytorch, main, blob
# 008f727e, 2025) where it differs from 1.13 for the paths below.
#
# 1. LRScheduler._initial_step sets `_is_initial` during the constructor's step, and the chainable forms of
#    MultiplicativeLR, LinearLR, ExponentialLR, PolynomialLR and CosineAnnealingLR test `self._is_initial` where
#    1.13 tests `self.last_epoch == 0` (or `> 0`). Same values when starting (last_epoch=-1); when resuming with
#    last_epoch=k >= 0, 1.13 applies one more chainable step in the constructor, the newest keeps the group's lr.
# 2. SequentialLR.step restarts the next scheduler with `scheduler._update_lr(0)` (no _step_count increment, no
#    deprecation path) where 1.13 calls `scheduler.step(0)`; for a scheduler without a closed form
#    (MultiplicativeLR) the newest then applies get_lr() at last_epoch 0 with _is_initial False: lr * lambda(0),
#    where 1.13 returned lr unchanged (its `last_epoch > 0` test).
# 3. CyclicLR cycles beta1 of optimizers with `betas` (use_beta1); 1.13 only supports `momentum`.
# 4. CosineAnnealingWarmRestarts.step wraps T_cur with `T_cur % T_i`; 1.13 with `T_cur - T_i` (differs when a
#    resumed T_cur is at least 2 * T_i).
# ---------------------------------------------------------------------------

class _InitialFlag:
    """The newest LRScheduler._initial_step: the constructor's step runs with _is_initial set."""
    _is_initial = False

    def _initial_step(self):
        self._is_initial = True
        try:
            super()._initial_step()
        finally:
            self._is_initial = False


class NewestMultiplicativeLR(_InitialFlag, lrs.MultiplicativeLR):
    def get_lr(self):
        if not self._is_initial:
            return [group["lr"] * lmbda(self.last_epoch)
                    for lmbda, group in zip(self.lr_lambdas, self.optimizer.param_groups)]
        return [group["lr"] for group in self.optimizer.param_groups]


class NewestLinearLR(_InitialFlag, lrs.LinearLR):
    def get_lr(self):
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in self.optimizer.param_groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * (1.0 + (self.end_factor - self.start_factor)
                               / (self.total_iters * self.start_factor
                                  + (self.last_epoch - 1) * (self.end_factor - self.start_factor)))
                for group in self.optimizer.param_groups]


class NewestExponentialLR(_InitialFlag, lrs.ExponentialLR):
    def get_lr(self):
        if self._is_initial:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class NewestPolynomialLR(_InitialFlag, lrs.PolynomialLR):
    def get_lr(self):
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in self.optimizer.param_groups]
        decay_factor = ((1.0 - self.last_epoch / self.total_iters)
                        / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [group["lr"] * decay_factor for group in self.optimizer.param_groups]


class NewestCosineAnnealingLR(_InitialFlag, lrs.CosineAnnealingLR):
    def get_lr(self):
        if self._is_initial:
            return [group["lr"] for group in self.optimizer.param_groups]
        elif self._step_count == 1 and self.last_epoch > 0:
            return [self.eta_min + (base_lr - self.eta_min)
                    * (1 + math.cos((self.last_epoch) * math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        elif (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                * (group["lr"] - self.eta_min) + self.eta_min
                for group in self.optimizer.param_groups]


def _update_lr(scheduler, epoch):
    """The newest LRScheduler._update_lr(epoch) (epoch given): no _step_count increment."""
    scheduler._get_lr_called_within_step = True
    try:
        scheduler.last_epoch = epoch
        if hasattr(scheduler, "_get_closed_form_lr"):
            values = scheduler._get_closed_form_lr()
        else:
            values = scheduler.get_lr()
    finally:
        scheduler._get_lr_called_within_step = False
    for group, lr in zip(scheduler.optimizer.param_groups, values):
        group["lr"] = lr
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


class NewestSequentialLR(lrs.SequentialLR):
    def step(self):
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            _update_lr(scheduler, 0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class NewestCyclicLR(lrs._LRScheduler):
    """The newest CyclicLR.__init__ and get_lr (momentum or beta1); the scale functions are 1.13's (unchanged)."""

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular",
                 gamma=1.0, scale_fn=None, scale_mode="cycle", cycle_momentum=True, base_momentum=0.8,
                 max_momentum=0.9, last_epoch=-1):
        self.optimizer = optimizer
        base_lrs = _format_param("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = _format_param("max_lr", optimizer, max_lr)
        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        if scale_fn is None:
            self.scale_mode = "iterations" if mode == "exp_range" else "cycle"
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in self.optimizer.defaults
            self.base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            self.max_momentums = _format_param("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for m_momentum, b_momentum, group in zip(self.max_momentums, self.base_momentums,
                                                         optimizer.param_groups):
                    if self.use_beta1:
                        group["betas"] = (m_momentum, *group["betas"][1:])
                    else:
                        group["momentum"] = m_momentum
                    group["max_momentum"] = m_momentum
                    group["base_momentum"] = b_momentum
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x):
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        lrs_ = []
        for base_lr, max_lr in zip(self.base_lrs, self.max_lrs):
            base_height = (max_lr - base_lr) * scale_factor
            if self.scale_mode == "cycle":
                lr = base_lr + base_height * self.scale_fn(cycle)
            else:
                lr = base_lr + base_height * self.scale_fn(self.last_epoch)
            lrs_.append(lr)
        if self.cycle_momentum:
            momentums = []
            for base_momentum, max_momentum in zip(self.base_momentums, self.max_momentums):
                base_height = (max_momentum - base_momentum) * scale_factor
                if self.scale_mode == "cycle":
                    momentum = max_momentum - base_height * self.scale_fn(cycle)
                else:
                    momentum = max_momentum - base_height * self.scale_fn(self.last_epoch)
                momentums.append(momentum)
            for param_group, momentum in zip(self.optimizer.param_groups, momentums):
                if self.use_beta1:
                    param_group["betas"] = (momentum, *param_group["betas"][1:])
                else:
                    param_group["momentum"] = momentum
        return lrs_


def _format_param(name, optimizer, param):
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups")
        return list(param)
    return [param] * len(optimizer.param_groups)


class NewestCosineAnnealingWarmRestarts(lrs.CosineAnnealingWarmRestarts):
    def step(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** (n)
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            for param_group, lr in zip(self.optimizer.param_groups, self.get_lr()):
                param_group["lr"] = lr
        finally:
            self._get_lr_called_within_step = False
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def make_optimizer(kind):
    p1 = torch.nn.Parameter(torch.zeros(2))
    p2 = torch.nn.Parameter(torch.zeros(3))
    groups = [{"params": [p1]}, {"params": [p2], "lr": GROUP_LRS[1]}]
    if kind == "SGD":
        return torch.optim.SGD(groups, lr=GROUP_LRS[0], momentum=0.9)
    if kind == "Adam":
        return torch.optim.Adam(groups, lr=GROUP_LRS[0], betas=(0.9, 0.999))
    raise ValueError(kind)


def momentum_of(optimizer, key):
    if key == "momentum":
        return [g["momentum"] for g in optimizer.param_groups]
    return [g["betas"][0] for g in optimizer.param_groups]


def run(case):
    optimizer = make_optimizer(case["optimizer"])
    setup = case.get("setup")
    if setup:
        for group, initial_lr, lr in zip(optimizer.param_groups, setup["initial_lr"], setup["lr"]):
            group["initial_lr"] = initial_lr
            group["lr"] = lr
    scheduler = case["build"](optimizer)
    track = case.get("track")
    lr, mom = [], []

    def record():
        lr.append([g["lr"] for g in optimizer.param_groups])
        if track:
            mom.append(momentum_of(optimizer, track))

    record()
    for i in range(case.get("steps", STEPS)):
        optimizer.step()
        if "metrics" in case:
            scheduler.step(case["metrics"][i])
        elif "epochs" in case:
            scheduler.step(case["epochs"][i])
        else:
            scheduler.step()
        record()
    out = {
        "name": case["name"],
        "source": case["source"],
        "optimizer": case["optimizer"],
        "group_lrs": GROUP_LRS,
        "scheduler": case["scheduler"],
    }
    if setup:
        out["setup"] = setup
    for key in ("epochs", "metrics"):
        if key in case:
            out[key] = case[key]
    out["lr"] = lr
    if track:
        out["track"] = track
        out["momentum"] = mom
    return out


def plateau_metrics():
    # Improves, stalls, improves a little (below the threshold), drops, rises: every branch of ReduceLROnPlateau.
    values = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79995, 0.7, 0.7, 0.71, 0.72, 0.72, 0.5, 0.5, 0.5, 0.5, 0.5]
    values += [0.4 + 0.01 * ((i * 7) % 5) for i in range(STEPS - len(values))]
    return values


LAMBDAS = [lambda e: 0.95 ** e, lambda e: 1.0 / (1 + e)]
MULT_LAMBDAS = [lambda e: 0.9, lambda e: 1.0 if e % 3 else 0.5]
CLOSED_EPOCHS = [1, 2, 3, 5, 4, 9, 10, 11, 0, 7, 20, 13, 6, 30, 2, 12, 44, 8, 15, 16]
CAWR_EPOCHS = [i / 4 for i in range(1, 41)] + [3.5, 100.0, 7.25, 0.5, 62.0]


def cases():
    T, X = "torch", "transcribed"
    c = []

    def add(name, source, optimizer, scheduler, build, **kw):
        c.append(dict(name=name, source=source, optimizer=optimizer, scheduler=scheduler, build=build, **kw))

    add("LambdaLR", T, "SGD", {"type": "LambdaLR", "lr_lambda": ["0.95 ** e", "1.0 / (1 + e)"]},
        lambda o: lrs.LambdaLR(o, LAMBDAS))
    add("MultiplicativeLR", T, "SGD", {"type": "MultiplicativeLR", "lr_lambda": ["0.9", "1.0 if e % 3 else 0.5"]},
        lambda o: lrs.MultiplicativeLR(o, MULT_LAMBDAS))
    add("StepLR", T, "SGD", {"type": "StepLR", "step_size": 3, "gamma": 0.7}, lambda o: lrs.StepLR(o, 3, gamma=0.7))
    add("MultiStepLR", T, "SGD", {"type": "MultiStepLR", "milestones": [2, 5, 5, 11, 30], "gamma": 0.6},
        lambda o: lrs.MultiStepLR(o, [2, 5, 5, 11, 30], gamma=0.6))
    add("ConstantLR", T, "SGD", {"type": "ConstantLR", "factor": 0.3, "total_iters": 7},
        lambda o: lrs.ConstantLR(o, factor=0.3, total_iters=7))
    add("LinearLR", T, "SGD", {"type": "LinearLR", "start_factor": 0.25, "end_factor": 0.9, "total_iters": 13},
        lambda o: lrs.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=13))
    add("ExponentialLR", T, "SGD", {"type": "ExponentialLR", "gamma": 0.93}, lambda o: lrs.ExponentialLR(o, 0.93))
    add("PolynomialLR", T, "SGD", {"type": "PolynomialLR", "total_iters": 31, "power": 1.7},
        lambda o: lrs.PolynomialLR(o, total_iters=31, power=1.7))
    add("CosineAnnealingLR", T, "SGD", {"type": "CosineAnnealingLR", "T_max": 7, "eta_min": 0.001},
        lambda o: lrs.CosineAnnealingLR(o, T_max=7, eta_min=0.001))
    add("ChainedScheduler", T, "SGD",
        {"type": "ChainedScheduler", "schedulers": [{"type": "ConstantLR", "factor": 0.5, "total_iters": 4},
                                                    {"type": "ExponentialLR", "gamma": 0.95}]},
        lambda o: lrs.ChainedScheduler([lrs.ConstantLR(o, factor=0.5, total_iters=4), lrs.ExponentialLR(o, 0.95)]))
    add("SequentialLR_warmup_cosine", T, "SGD",
        {"type": "SequentialLR", "milestones": [6],
         "schedulers": [{"type": "LinearLR", "start_factor": 0.1, "total_iters": 6},
                        {"type": "CosineAnnealingLR", "T_max": 30, "eta_min": 0.0005}]},
        lambda o: lrs.SequentialLR(o, [lrs.LinearLR(o, start_factor=0.1, total_iters=6),
                                       lrs.CosineAnnealingLR(o, T_max=30, eta_min=0.0005)], milestones=[6]))
    add("SequentialLR_three", T, "SGD",
        {"type": "SequentialLR", "milestones": [5, 12],
         "schedulers": [{"type": "ConstantLR", "factor": 0.2, "total_iters": 10},
                        {"type": "ExponentialLR", "gamma": 0.9},
                        {"type": "StepLR", "step_size": 4, "gamma": 0.5}]},
        lambda o: lrs.SequentialLR(o, [lrs.ConstantLR(o, factor=0.2, total_iters=10), lrs.ExponentialLR(o, 0.9),
                                       lrs.StepLR(o, 4, gamma=0.5)], milestones=[5, 12]))
    add("SequentialLR_multiplicative", X, "SGD",
        {"type": "SequentialLR", "milestones": [4],
         "schedulers": [{"type": "ExponentialLR", "gamma": 0.8},
                        {"type": "MultiplicativeLR", "lr_lambda": ["0.9", "1.0 if e % 3 else 0.5"]}]},
        lambda o: NewestSequentialLR(o, [lrs.ExponentialLR(o, 0.8), NewestMultiplicativeLR(o, MULT_LAMBDAS)],
                                     milestones=[4]))
    add("ReduceLROnPlateau_min_rel", T, "SGD",
        {"type": "ReduceLROnPlateau", "mode": "min", "factor": 0.5, "patience": 2, "threshold": 0.01,
         "threshold_mode": "rel", "cooldown": 1, "min_lr": [0.01, 0.004]},
        lambda o: lrs.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=2, threshold=0.01, cooldown=1,
                                        min_lr=[0.01, 0.004]),
        metrics=plateau_metrics())
    add("ReduceLROnPlateau_max_abs", T, "SGD",
        {"type": "ReduceLROnPlateau", "mode": "max", "factor": 0.3, "patience": 0, "threshold": 0.02,
         "threshold_mode": "abs", "cooldown": 0, "min_lr": 0.0001, "eps": 1e-4},
        lambda o: lrs.ReduceLROnPlateau(o, mode="max", factor=0.3, patience=0, threshold=0.02,
                                        threshold_mode="abs", min_lr=0.0001, eps=1e-4),
        metrics=[-m for m in plateau_metrics()])
    add("CyclicLR_triangular", T, "SGD",
        {"type": "CyclicLR", "base_lr": [0.01, 0.002], "max_lr": [0.1, 0.05], "step_size_up": 4,
         "step_size_down": 7, "base_momentum": [0.8, 0.85], "max_momentum": [0.95, 0.9]},
        lambda o: lrs.CyclicLR(o, base_lr=[0.01, 0.002], max_lr=[0.1, 0.05], step_size_up=4, step_size_down=7,
                               base_momentum=[0.8, 0.85], max_momentum=[0.95, 0.9]),
        track="momentum")
    add("CyclicLR_triangular2", T, "SGD",
        {"type": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 5, "mode": "triangular2"},
        lambda o: lrs.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="triangular2"),
        track="momentum")
    add("CyclicLR_exp_range", T, "SGD",
        {"type": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3, "step_size_down": 5,
         "mode": "exp_range", "gamma": 0.97},
        lambda o: lrs.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5, mode="exp_range",
                               gamma=0.97),
        track="momentum")
    add("CyclicLR_scale_fn_iterations", T, "SGD",
        {"type": "CyclicLR", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 6, "scale_fn": "1 / (1 + x / 10)",
         "scale_mode": "iterations", "cycle_momentum": False},
        lambda o: lrs.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=6, scale_fn=lambda x: 1 / (1 + x / 10),
                               scale_mode="iterations", cycle_momentum=False))
    add("CyclicLR_beta1", X, "Adam",
        {"type": "CyclicLR", "base_lr": 0.001, "max_lr": 0.01, "step_size_up": 5, "base_momentum": 0.8,
         "max_momentum": 0.95, "mode": "triangular2"},
        lambda o: NewestCyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=5, base_momentum=0.8,
                                 max_momentum=0.95, mode="triangular2"),
        track="beta1")
    add("OneCycleLR_cos", T, "SGD",
        {"type": "OneCycleLR", "max_lr": [0.5, 0.2], "total_steps": 46, "pct_start": 0.25},
        lambda o: lrs.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=46, pct_start=0.25),
        track="momentum")
    add("OneCycleLR_linear_three_phase_beta1", T, "Adam",
        {"type": "OneCycleLR", "max_lr": 0.01, "epochs": 5, "steps_per_epoch": 10, "pct_start": 0.35,
         "anneal_strategy": "linear", "three_phase": True, "base_momentum": 0.8, "max_momentum": 0.9,
         "div_factor": 10.0, "final_div_factor": 100.0},
        lambda o: lrs.OneCycleLR(o, max_lr=0.01, epochs=5, steps_per_epoch=10, pct_start=0.35,
                                 anneal_strategy="linear", three_phase=True, base_momentum=0.8, max_momentum=0.9,
                                 div_factor=10.0, final_div_factor=100.0),
        track="beta1")
    add("OneCycleLR_no_momentum", T, "SGD",
        {"type": "OneCycleLR", "max_lr": 0.3, "total_steps": 46, "cycle_momentum": False, "three_phase": True},
        lambda o: lrs.OneCycleLR(o, max_lr=0.3, total_steps=46, cycle_momentum=False, three_phase=True))
    add("CosineAnnealingWarmRestarts", T, "SGD",
        {"type": "CosineAnnealingWarmRestarts", "T_0": 3, "T_mult": 2, "eta_min": 0.001},
        lambda o: lrs.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001))
    add("CosineAnnealingWarmRestarts_Tmult1", T, "SGD",
        {"type": "CosineAnnealingWarmRestarts", "T_0": 7},
        lambda o: lrs.CosineAnnealingWarmRestarts(o, T_0=7))
    add("CosineAnnealingWarmRestarts_epochs", T, "SGD",
        {"type": "CosineAnnealingWarmRestarts", "T_0": 2, "T_mult": 3, "eta_min": 0.002},
        lambda o: lrs.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=3, eta_min=0.002),
        epochs=CAWR_EPOCHS)
    add("SWALR_cos", T, "SGD", {"type": "SWALR", "swa_lr": [0.05, 0.04], "anneal_epochs": 7},
        lambda o: swa_utils.SWALR(o, swa_lr=[0.05, 0.04], anneal_epochs=7))
    add("SWALR_linear", T, "SGD", {"type": "SWALR", "swa_lr": 0.01, "anneal_epochs": 4, "anneal_strategy": "linear"},
        lambda o: swa_utils.SWALR(o, swa_lr=0.01, anneal_epochs=4, anneal_strategy="linear"))
    add("SWALR_zero_epochs", T, "SGD", {"type": "SWALR", "swa_lr": 0.03, "anneal_epochs": 0},
        lambda o: swa_utils.SWALR(o, swa_lr=0.03, anneal_epochs=0))

    # Closed forms: step(epoch) with jumps back and forth (1.13's deprecated path = the newest's _get_closed_form_lr).
    closed = [
        ("StepLR", {"step_size": 3, "gamma": 0.7}, lambda o: lrs.StepLR(o, 3, gamma=0.7)),
        ("MultiStepLR", {"milestones": [2, 5, 5, 11, 30], "gamma": 0.6},
         lambda o: lrs.MultiStepLR(o, [2, 5, 5, 11, 30], gamma=0.6)),
        ("ConstantLR", {"factor": 0.3, "total_iters": 7}, lambda o: lrs.ConstantLR(o, factor=0.3, total_iters=7)),
        ("LinearLR", {"start_factor": 0.25, "end_factor": 0.9, "total_iters": 13},
         lambda o: lrs.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=13)),
        ("ExponentialLR", {"gamma": 0.93}, lambda o: lrs.ExponentialLR(o, 0.93)),
        ("PolynomialLR", {"total_iters": 31, "power": 1.7}, lambda o: lrs.PolynomialLR(o, total_iters=31, power=1.7)),
        ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}, lambda o: lrs.CosineAnnealingLR(o, T_max=7, eta_min=0.001)),
    ]
    for name, args, build in closed:
        add(name + "_closed", T, "SGD", dict(type=name, **args), build, epochs=CLOSED_EPOCHS,
            steps=len(CLOSED_EPOCHS))

    # Resuming with last_epoch = k on an optimizer whose groups hold initial_lr and the lr of step k (transcribed:
    # the newest keeps the group's lr in the constructor's step, 1.13 advances it once more).
    def setup(initial, lr):
        return {"initial_lr": initial, "lr": lr}

    add("ExponentialLR_resume", X, "SGD", {"type": "ExponentialLR", "gamma": 0.93, "last_epoch": 9},
        lambda o: NewestExponentialLR(o, 0.93, last_epoch=9), setup=setup([0.1, 0.02], [0.06, 0.011]))
    add("LinearLR_resume", X, "SGD",
        {"type": "LinearLR", "start_factor": 0.25, "end_factor": 0.9, "total_iters": 13, "last_epoch": 4},
        lambda o: NewestLinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=13, last_epoch=4),
        setup=setup([0.1, 0.02], [0.045, 0.0091]))
    add("PolynomialLR_resume", X, "SGD", {"type": "PolynomialLR", "total_iters": 31, "power": 1.7, "last_epoch": 11},
        lambda o: NewestPolynomialLR(o, total_iters=31, power=1.7, last_epoch=11),
        setup=setup([0.1, 0.02], [0.05, 0.01]))
    add("CosineAnnealingLR_resume", X, "SGD", {"type": "CosineAnnealingLR", "T_max": 7, "eta_min": 0.001, "last_epoch": 3},
        lambda o: NewestCosineAnnealingLR(o, T_max=7, eta_min=0.001, last_epoch=3),
        setup=setup([0.1, 0.02], [0.06, 0.012]))
    add("MultiplicativeLR_resume", X, "SGD",
        {"type": "MultiplicativeLR", "lr_lambda": ["0.9", "1.0 if e % 3 else 0.5"], "last_epoch": 5},
        lambda o: NewestMultiplicativeLR(o, MULT_LAMBDAS, last_epoch=5), setup=setup([0.1, 0.02], [0.07, 0.015]))
    add("CosineAnnealingWarmRestarts_resume", X, "SGD",
        {"type": "CosineAnnealingWarmRestarts", "T_0": 3, "T_mult": 2, "eta_min": 0.001, "last_epoch": 8},
        lambda o: NewestCosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001, last_epoch=8),
        setup=setup([0.1, 0.02], [0.1, 0.02]))
    return c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "Optim.Tests", "Goldens"))
    args = parser.parse_args()
    doc = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "sources": {
            "torch": f"torch {torch.__version__}'s own torch.optim.lr_scheduler / swa_utils classes; the code path is the same in PyTorch's newest source",
            "transcribed": "torch 1.13 classes with the methods PyTorch changed since replaced by transcriptions of the newest source (see the NewestXxx classes in the generator)",
        },
        "group_lrs": GROUP_LRS,
        "cases": [run(case) for case in cases()],
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "schedulers.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}: {len(doc['cases'])} cases")


if __name__ == "__main__":
    main()
