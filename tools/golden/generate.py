#!/usr/bin/python3
"""Generate golden optimizer trajectories from PyTorch's torch.optim.

Writes one JSON file per algorithm (sgd.json, adam.json, adamw.json,
adagrad.json, rmsprop.json, sgd_momentum_nesterov.json, adadelta.json,
adamax.json, asgd.json, radam.json, rprop.json) into tests/Optim.Tests/Goldens/
(or --out DIR), plus adam_2x.json, adamw_2x.json, adagrad_2x.json,
rmsprop_2x.json, adamax_2x.json, nadam_2x.json and radam_2x.json: the same cases
replayed in PyTorch 2.x's op order (with `--only FILE ...` only those files are
written). See README.md next to this file.

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/generate.py
"""

import argparse
import inspect
import json
import math
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

ADADELTA_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.5}),
    ("rho", {"rho": 0.75}),
    ("eps", {"eps": 1e-3}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("maximize", {"maximize": True}),
    ("all", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.05, "maximize": True}),
]

# Adamax betas are written as "beta1"/"beta2", as for Adam.
ADAMAX_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.01}),
    ("betas", {"beta1": 0.8, "beta2": 0.99}),
    ("eps", {"eps": 1e-3}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("maximize", {"maximize": True}),
    ("all", {"lr": 0.01, "beta1": 0.85, "beta2": 0.95, "weight_decay": 0.1, "maximize": True}),
]

# t0 only changes the running average `ax` (recorded as state, see STATE_KEYS); alpha needs a larger lambd to show.
ASGD_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.05}),
    ("lambd", {"lambd": 0.01}),
    ("alpha", {"lambd": 0.01, "alpha": 0.5}),
    ("t0", {"t0": 5.0}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("maximize", {"maximize": True}),
    ("all", {"lr": 0.05, "lambd": 0.01, "alpha": 0.6, "t0": 3.0, "weight_decay": 0.05, "maximize": True}),
]

# State recorded after every step, per algorithm (state a golden must check because no parameter depends on it).
STATE_KEYS = {"ASGD": ["ax", "eta", "mu"]}

NADAM_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.01}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("decoupled_weight_decay", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("momentum_decay", {"momentum_decay": 0.1}),
    ("betas", {"lr": 0.01, "beta1": 0.8, "beta2": 0.99}),
    ("eps", {"lr": 0.01, "eps": 1e-3}),
    ("maximize", {"maximize": True}),
    ("all", {"lr": 0.01, "beta1": 0.85, "beta2": 0.98, "weight_decay": 0.05,
             "momentum_decay": 0.02, "decoupled_weight_decay": True, "maximize": True}),
    ("weight_decay_maximize", {"weight_decay": 0.1, "maximize": True}),
]

# RAdam: beta2 = 0.999 leaves the first 5 steps unrectified (rho_t <= 5), then rectifies; beta2 = 0.9 (rho_inf = 19)
# takes longer to cross 5. PyTorch 1.13's class has neither maximize nor decoupled_weight_decay: radam.json holds the
# cases it can run, radam_2x.json all of them.
RADAM_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.01}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("decoupled_weight_decay", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("betas", {"lr": 0.01, "beta1": 0.8, "beta2": 0.9}),
    ("eps", {"lr": 0.01, "eps": 1e-3}),
    ("maximize", {"maximize": True}),
    ("weight_decay_maximize", {"weight_decay": 0.1, "maximize": True}),
    ("all", {"lr": 0.01, "beta1": 0.85, "beta2": 0.95, "weight_decay": 0.05,
             "decoupled_weight_decay": True, "maximize": True}),
]
RADAM_CASES_113 = [(n, o) for n, o in RADAM_CASES
                   if not o.get("maximize") and not o.get("decoupled_weight_decay")]

ADAFACTOR_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.05}),
    ("beta2_decay", {"beta2_decay": -0.5}),
    ("eps", {"eps1": 1e-3, "eps2": 1e-2}),
    ("d", {"lr": 0.5, "d": 1.5}),
    ("weight_decay", {"weight_decay": 0.1}),
    ("maximize", {"maximize": True}),
    ("all", {"lr": 0.05, "beta2_decay": -0.6, "eps1": 1e-6, "eps2": 1e-2, "d": 2.0,
             "weight_decay": 0.05, "maximize": True}),
]

# Muon takes matrices only: its cases use these shapes (a tall, a wide and a square one) instead of SHAPES.
MUON_SHAPES = [[4, 3], [2, 5], [3, 3]]
MUON_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.02}),
    ("momentum", {"momentum": 0.8}),
    ("no_nesterov", {"nesterov": False}),
    ("weight_decay", {"weight_decay": 0.0}),
    ("ns", {"ns_coefficients": [2.0, -1.5, 0.5], "ns_steps": 3}),
    ("eps", {"eps": 0.5}),
    ("original", {"adjust_lr_fn": "original"}),
    ("match_rms_adamw", {"adjust_lr_fn": "match_rms_adamw"}),
    ("use_addmm", {"use_addmm": True}),
    ("all", {"lr": 0.05, "weight_decay": 0.02, "momentum": 0.9, "nesterov": False, "ns_steps": 4,
             "adjust_lr_fn": "match_rms_adamw", "use_addmm": True}),
    # Without iterations the update is the normalized bfloat16 momentum: no matrix product, so every other op is checked
    # closely (the products' bfloat16 rounding differs between 1.13 and newer kernels; see MuonTests).
    ("ns0", {"ns_steps": 0}),
    ("ns0_original", {"ns_steps": 0, "lr": 0.02, "adjust_lr_fn": "original", "momentum": 0.8}),
    ("ns0_all", {"lr": 0.05, "weight_decay": 0.02, "momentum": 0.9, "nesterov": False, "ns_steps": 0,
                 "adjust_lr_fn": "match_rms_adamw"}),
]
SHAPES_OF = {"Muon": MUON_SHAPES}

# Rprop's pairs are written as etaminus/etaplus and min_step/max_step (TorchSharp's argument names).
RPROP_CASES = [
    ("default", {}),
    ("lr", {"lr": 0.05}),
    ("etas", {"etaminus": 0.3, "etaplus": 1.5}),
    ("step_sizes", {"lr": 0.05, "min_step": 1e-2, "max_step": 0.08}),
    ("maximize", {"maximize": True}),
    ("all", {"lr": 0.02, "etaminus": 0.6, "etaplus": 1.3, "min_step": 1e-3, "max_step": 0.05,
             "maximize": True}),
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
# PyTorch 2.x single-tensor replays (for the *_2x.json files).
#
# PyTorch 1.13 (the torch available here) runs Adam/AdamW and centered RMSprop
# with a different op order than PyTorch 2.x (mul_().add_() where 2.x uses
# lerp_). The functions below transcribe PyTorch 2.x's `_single_tensor_*`
# functions -- only the branch taken on CPU with real dtypes, capturable=False,
# differentiable=False, dense gradients and float hyperparameters -- keeping the
# same tensor ops in the same order and the same Python-float scalar arithmetic,
# and run them with this machine's torch ops.
#
# Transcribed from PyTorch main as stored in the search index (pytorch/pytorch's
# own copies there are older 2.x versions, so the current code was read from the
# mirror cyyever/pytorch, which tracks pytorch/pytorch main):
#   torch/optim/adam.py     _single_tensor_adam     cyyever/pytorch@b1d94d611b4166216f2c89be503dcf82eeb510a2
#   torch/optim/adamw.py    AdamW(Adam) with decoupled_weight_decay=True
#                                                   ROCm/pytorch@407564617cf1e846e62c82bfe58168726cb8e3d4
#   torch/optim/adagrad.py  _single_tensor_adagrad  cyyever/pytorch@7b617aebb825668b8c24695ccda3e13ab3986f14
#   torch/optim/rmsprop.py  _single_tensor_rmsprop  cyyever/pytorch@7b617aebb825668b8c24695ccda3e13ab3986f14
#   torch/optim/adamax.py   _single_tensor_adamax   cyyever/pytorch@a9e0fe668ff539039e38d2d9a78c31ef9e07dfbe
# Compared with 1.13's (no replay needed, 1.13's class is the reference):
#   torch/optim/adadelta.py _single_tensor_adadelta cyyever/pytorch@b1d94d611b4166216f2c89be503dcf82eeb510a2
#   torch/optim/asgd.py     _single_tensor_asgd     cyyever/pytorch@a9e0fe668ff539039e38d2d9a78c31ef9e07dfbe
# Cross-checked against older pytorch/pytorch copies in the index:
#   adam.py   @dc80ccded5385cca3e777472d64cfe3d874fad89 (same ops, but
#             bias_correction2_sqrt = _dispatch_sqrt(bc2) = math.sqrt(bc2); for
#             the betas and step counts used here math.sqrt(x) == x ** 0.5)
#   adamw.py  @c15fcf4eb79daaf10e12cecdf7fee15cde6cc530 (separate
#             _single_tensor_adamw, same ops as Adam + decoupled decay)
#   rmsprop.py @00853fbfb9f7f4d85d75bac73200324443ffb160 (same ops)
# ---------------------------------------------------------------------------

REFERENCE_2X = ("PyTorch 2.x _single_tensor_* op order (transcribed from pytorch/pytorch main), "
                f"replayed with torch {torch.__version__} ops")


def _get_scalar_dtype():
    # torch/optim/optimizer.py: the dtype of the `step` state tensor.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _get_value(x):
    # torch/optim/optimizer.py (eager mode): x.item() for tensors.
    return x.item() if isinstance(x, torch.Tensor) else x


def _single_tensor_adam_2x(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                           *, amsgrad, beta1, beta2, lr, weight_decay, eps, maximize,
                           decoupled_weight_decay):
    # torch/optim/adam.py, _single_tensor_adam, `else` branch of
    # `if capturable or differentiable:` (real params, float betas).
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        exp_avg = exp_avgs[i]
        exp_avg_sq = exp_avg_sqs[i]
        step_t = state_steps[i]

        # update step
        step_t += 1

        if weight_decay != 0:
            if decoupled_weight_decay:
                # Perform step weight decay
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)

        # Decay the first and second moment running average coefficient
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

        step = _get_value(step_t)

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step

        step_size = lr / bias_correction1

        bias_correction2_sqrt = bias_correction2**0.5

        if amsgrad:
            # Maintains the maximum of all 2nd moment running avg. till now
            torch.maximum(max_exp_avg_sqs[i], exp_avg_sq, out=max_exp_avg_sqs[i])

            # Use the max. for normalizing running avg. of gradient
            denom = (max_exp_avg_sqs[i].sqrt() / bias_correction2_sqrt).add_(eps)
        else:
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)

        param.addcdiv_(exp_avg, denom, value=-step_size)


def _single_tensor_adagrad_2x(params, grads, state_sums, state_steps,
                              *, lr, weight_decay, lr_decay, eps, maximize):
    # torch/optim/adagrad.py, _single_tensor_adagrad, dense real branch,
    # differentiable=False.
    for param, grad, state_sum, step_t in zip(params, grads, state_sums, state_steps):
        # update step
        step_t += 1
        step = _get_value(step_t)
        grad = grad if not maximize else -grad

        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)

        clr = lr / (1 + (step - 1) * lr_decay)

        state_sum.addcmul_(grad, grad, value=1)
        std = state_sum.sqrt().add_(eps)
        param.addcdiv_(grad, std, value=-clr)


def _single_tensor_rmsprop_2x(params, grads, square_avgs, grad_avgs, momentum_buffer_list,
                              state_steps, *, lr, alpha, eps, weight_decay, momentum, centered,
                              maximize):
    # torch/optim/rmsprop.py, _single_tensor_rmsprop, real params,
    # capturable=False, differentiable=False.
    for i, param in enumerate(params):
        step = state_steps[i]

        grad = grads[i]
        grad = grad if not maximize else -grad
        square_avg = square_avgs[i]

        step += 1

        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)

        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)

        if centered:
            grad_avg = grad_avgs[i]
            grad_avg.lerp_(grad, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()

        avg = avg.add_(eps)

        if momentum > 0:
            buf = momentum_buffer_list[i]
            buf.mul_(momentum).addcdiv_(grad, avg)
            param.add_(buf, alpha=-lr)
        else:
            param.addcdiv_(grad, avg, value=-lr)


def _single_tensor_adamax_2x(params, grads, exp_avgs, exp_infs, state_steps,
                             *, eps, beta1, beta2, lr, weight_decay, maximize):
    # torch/optim/adamax.py, _single_tensor_adamax, real params, capturable=False,
    # differentiable=False (torch.maximum with out=, not cat + amax).
    for i, param in enumerate(params):
        grad = grads[i]
        grad = grad if not maximize else -grad
        exp_avg = exp_avgs[i]
        exp_inf = exp_infs[i]
        step_t = state_steps[i]

        # update step
        step_t += 1

        if weight_decay != 0:
            grad = grad.add(param, alpha=weight_decay)

        # Update biased first moment estimate.
        exp_avg.lerp_(grad, 1 - beta1)
        # Update the exponentially weighted infinity norm.
        torch.maximum(
            exp_inf.mul_(beta2),
            grad.abs().add_(eps),
            out=exp_inf,
        )

        bias_correction = 1 - beta1 ** _get_value(step_t)
        clr = lr / bias_correction

        param.addcdiv_(exp_avg, exp_inf, value=-clr)


# NAdam, RAdam and Rprop (read from pytorch/pytorch main's mirror, as above):
#   torch/optim/nadam.py   _single_tensor_nadam   cyyever/pytorch@a9e0fe668ff539039e38d2d9a78c31ef9e07dfbe
#   torch/optim/radam.py   _single_tensor_radam   cyyever/pytorch@7b617aebb825668b8c24695ccda3e13ab3986f14
#   torch/optim/rprop.py   _single_tensor_rprop   cyyever/pytorch@7b617aebb825668b8c24695ccda3e13ab3986f14
# PyTorch 1.13's NAdam multiplies mu into mu_product twice (mu_product_next = mu_product * mu * mu_next, fixed in
# 2.0), has neither maximize nor decoupled_weight_decay, and uses mul_().add_(); its RAdam uses mul_().add_() and
# math.sqrt and lacks those two options; its Rprop has the same ops as 2.x (the self-check proves it bit for bit).

def _single_tensor_nadam_2x(params, grads, exp_avgs, exp_avg_sqs, mu_products, state_steps,
                            *, beta1, beta2, lr, weight_decay, momentum_decay, eps,
                            decoupled_weight_decay, maximize):
    # torch/optim/nadam.py, _single_tensor_nadam, real params, capturable=False,
    # differentiable=False.
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        exp_avg = exp_avgs[i]
        exp_avg_sq = exp_avg_sqs[i]
        mu_product = mu_products[i]
        step_t = state_steps[i]

        # update step
        step_t += 1
        step = _get_value(step_t)

        bias_correction2 = 1 - beta2**step

        if weight_decay != 0:
            if decoupled_weight_decay:
                # Perform step weight decay
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)

        # calculate the momentum cache \mu^{t} and \mu^{t+1}
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * momentum_decay)))

        # update mu_product
        mu_product *= mu

        # decay the first and second moment running average coefficient
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.div(bias_correction2).sqrt()

        mu_product_next = _get_value(mu_product) * mu_next
        denom.add_(eps)
        param.addcdiv_(grad, denom, value=(-lr * (1.0 - mu) / (1.0 - _get_value(mu_product))))
        param.addcdiv_(exp_avg, denom, value=(-lr * mu_next) / (1.0 - mu_product_next))


def _single_tensor_radam_2x(params, grads, exp_avgs, exp_avg_sqs, state_steps,
                            *, beta1, beta2, lr, weight_decay, eps, decoupled_weight_decay,
                            maximize):
    # torch/optim/radam.py, _single_tensor_radam, real params, capturable=False,
    # differentiable=False.
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        exp_avg = exp_avgs[i]
        exp_avg_sq = exp_avg_sqs[i]
        step_t = state_steps[i]

        # update step
        step_t += 1
        step = _get_value(step_t)

        if weight_decay != 0:
            if decoupled_weight_decay:
                param.mul_(1 - lr * weight_decay)
            else:
                grad = grad.add(param, alpha=weight_decay)

        # Decay the first and second moment running average coefficient
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step

        # correcting bias for the first moving moment
        bias_corrected_exp_avg = exp_avg / bias_correction1

        # maximum length of the approximated SMA
        rho_inf = 2 / (1 - beta2) - 1
        # compute the length of the approximated SMA
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2

        def _compute_rect():
            return (
                (rho_t - 4)
                * (rho_t - 2)
                * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            ) ** 0.5

        def _compute_adaptive_lr():
            exp_avg_sq_sqrt = exp_avg_sq.sqrt()
            exp_avg_sq_sqrt = exp_avg_sq_sqrt.add_(eps)
            return (bias_correction2**0.5) / exp_avg_sq_sqrt

        # Compute the variance rectification term and update parameters accordingly
        if rho_t > 5.0:
            param.add_(
                bias_corrected_exp_avg * lr * _compute_adaptive_lr() * _compute_rect(),
                alpha=-1.0,
            )
        else:
            param.add_(bias_corrected_exp_avg * lr, alpha=-1.0)


def _single_tensor_rprop_2x(params, grads, prevs, step_sizes, state_steps,
                            *, step_size_min, step_size_max, etaminus, etaplus, maximize):
    # torch/optim/rprop.py, _single_tensor_rprop, real params, capturable=False,
    # differentiable=False.
    for i, param in enumerate(params):
        grad = grads[i]
        grad = grad if not maximize else -grad
        prev = prevs[i]
        step_size = step_sizes[i]
        step = state_steps[i]

        step += 1

        sign = grad.mul(prev).sign()
        sign[sign.gt(0)] = etaplus
        sign[sign.lt(0)] = etaminus
        sign[sign.eq(0)] = 1

        # update stepsizes with step size updates
        step_size.mul_(sign).clamp_(step_size_min, step_size_max)

        # for dir<0, dfdx=0
        # for dir>=0 dfdx=dfdx
        grad = grad.clone(memory_format=torch.preserve_format)
        grad[sign.eq(etaminus)] = 0

        # update parameters
        param.addcmul_(grad.sign(), step_size, value=-1)
        prev.copy_(grad)


class _Replay2x:
    """Minimal single-group optimizer shell around a `_single_tensor_*_2x`
    function: the options are the case's options over the torch defaults."""

    DEFAULTS = {}

    def __init__(self, params, options):
        unknown = set(options) - set(self.DEFAULTS)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        self.params = list(params)
        self.group = dict(self.DEFAULTS)
        self.group.update(options)
        self.state = {}


class Adam2x(_Replay2x):
    # torch.optim.Adam defaults (betas written as beta1/beta2).
    DEFAULTS = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
                    amsgrad=False, maximize=False)
    DECOUPLED_WEIGHT_DECAY = False

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps = \
            [], [], [], [], [], []
        # Adam._init_group: lazy state initialization.
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if g["amsgrad"]:
                    state["max_exp_avg_sq"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            if g["amsgrad"]:
                max_exp_avg_sqs.append(state["max_exp_avg_sq"])
            state_steps.append(state["step"])
        _single_tensor_adam_2x(
            params_with_grad, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
            amsgrad=g["amsgrad"], beta1=g["beta1"], beta2=g["beta2"], lr=g["lr"],
            weight_decay=g["weight_decay"], eps=g["eps"], maximize=g["maximize"],
            decoupled_weight_decay=self.DECOUPLED_WEIGHT_DECAY)


class AdamW2x(Adam2x):
    # torch.optim.AdamW = Adam(..., weight_decay=1e-2, decoupled_weight_decay=True).
    DEFAULTS = dict(Adam2x.DEFAULTS, weight_decay=1e-2)
    DECOUPLED_WEIGHT_DECAY = True


class Adagrad2x(_Replay2x):
    DEFAULTS = dict(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                    eps=1e-10, maximize=False)

    def __init__(self, params, options):
        super().__init__(params, options)
        # Adagrad.__init__: state is created eagerly for every parameter.
        for p in self.params:
            self.state[p] = {
                "step": torch.tensor(0.0, dtype=_get_scalar_dtype()),
                "sum": torch.full_like(p, self.group["initial_accumulator_value"],
                                       memory_format=torch.preserve_format),
            }

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, state_sums, state_steps = [], [], [], []
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state_sums.append(self.state[p]["sum"])
            state_steps.append(self.state[p]["step"])
        _single_tensor_adagrad_2x(
            params_with_grad, grads, state_sums, state_steps, lr=g["lr"],
            weight_decay=g["weight_decay"], lr_decay=g["lr_decay"], eps=g["eps"],
            maximize=g["maximize"])


class RMSprop2x(_Replay2x):
    DEFAULTS = dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                    centered=False, maximize=False)

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, square_avgs, grad_avgs, momentum_buffer_list, state_steps = \
            [], [], [], [], [], []
        # RMSprop._init_group: lazy state initialization.
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = torch.zeros((), dtype=_get_scalar_dtype())
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if g["momentum"] > 0:
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format)
                if g["centered"]:
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            square_avgs.append(state["square_avg"])
            state_steps.append(state["step"])
            if g["momentum"] > 0:
                momentum_buffer_list.append(state["momentum_buffer"])
            if g["centered"]:
                grad_avgs.append(state["grad_avg"])
        _single_tensor_rmsprop_2x(
            params_with_grad, grads, square_avgs, grad_avgs, momentum_buffer_list, state_steps,
            lr=g["lr"], alpha=g["alpha"], eps=g["eps"], weight_decay=g["weight_decay"],
            momentum=g["momentum"], centered=g["centered"], maximize=g["maximize"])


class Adamax2x(_Replay2x):
    # torch.optim.Adamax defaults (betas written as beta1/beta2).
    DEFAULTS = dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, maximize=False)

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, exp_avgs, exp_infs, state_steps = [], [], [], [], []
        # Adamax._init_group: lazy state initialization.
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_inf"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_infs.append(state["exp_inf"])
            state_steps.append(state["step"])
        _single_tensor_adamax_2x(
            params_with_grad, grads, exp_avgs, exp_infs, state_steps, eps=g["eps"],
            beta1=g["beta1"], beta2=g["beta2"], lr=g["lr"], weight_decay=g["weight_decay"],
            maximize=g["maximize"])


class NAdam2x(_Replay2x):
    # torch.optim.NAdam defaults (betas written as beta1/beta2).
    DEFAULTS = dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                    decoupled_weight_decay=False, maximize=False)

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, exp_avgs, exp_avg_sqs, mu_products, state_steps = \
            [], [], [], [], [], []
        # NAdam._init_group: lazy state initialization, step and mu_product on the CPU.
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["mu_product"] = torch.tensor(1.0, dtype=_get_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            mu_products.append(state["mu_product"])
            state_steps.append(state["step"])
        _single_tensor_nadam_2x(
            params_with_grad, grads, exp_avgs, exp_avg_sqs, mu_products, state_steps,
            beta1=g["beta1"], beta2=g["beta2"], lr=g["lr"], weight_decay=g["weight_decay"],
            momentum_decay=g["momentum_decay"], eps=g["eps"],
            decoupled_weight_decay=g["decoupled_weight_decay"], maximize=g["maximize"])


class RAdam2x(_Replay2x):
    # torch.optim.RAdam defaults (betas written as beta1/beta2).
    DEFAULTS = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0,
                    decoupled_weight_decay=False, maximize=False)

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, exp_avgs, exp_avg_sqs, state_steps = [], [], [], [], []
        # RAdam._init_group: lazy state initialization.
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            state_steps.append(state["step"])
        _single_tensor_radam_2x(
            params_with_grad, grads, exp_avgs, exp_avg_sqs, state_steps,
            beta1=g["beta1"], beta2=g["beta2"], lr=g["lr"], weight_decay=g["weight_decay"],
            eps=g["eps"], decoupled_weight_decay=g["decoupled_weight_decay"],
            maximize=g["maximize"])


# Adafactor (PyTorch >= 2.5; 1.13 has no class): torch/optim/_adafactor.py's _single_tensor_adafactor from
# pytorch/pytorch main, transcribed op for op (eps1 None = the dtype's eps, resolved from the first parameter as
# PyTorch's loop does), run with 1.13's real ops.
def _single_tensor_adafactor_2x(params, grads, row_vars, col_vars, variances, state_steps, *, d, lr,
                                beta2_decay, weight_decay, eps1, eps2, maximize):
    for i, param in enumerate(params):
        grad = grads[i] if not maximize else -grads[i]
        step_t = state_steps[i]
        row_var = row_vars[i]
        col_var = col_vars[i]
        variance = variances[i]
        if eps1 is None:
            eps1 = torch.finfo(param.dtype).eps

        step_t += 1
        step_float = step_t.item()

        one_minus_beta2_t = step_float ** beta2_decay
        rho_t = min(lr, 1 / (step_float ** 0.5))
        alpha = max(eps2, param.norm(2).item() / (param.numel() ** 0.5)) * rho_t

        if weight_decay != 0:
            param.mul_(1 - lr * weight_decay)

        if grad.dim() > 1:
            row_mean = (torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
                        .square_().div_(grad.size(-1)))
            row_var.lerp_(row_mean, one_minus_beta2_t)
            col_mean = (torch.linalg.vector_norm(grad, dim=-2, keepdim=True)
                        .square_().div_(grad.size(-2)))
            col_var.lerp_(col_mean, one_minus_beta2_t)
            var_estimate = row_var @ col_var
            var_estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
        else:
            grad_squared = grad * grad
            variance.lerp_(grad_squared, one_minus_beta2_t)
            var_estimate = variance.clone()

        update = var_estimate.clamp_(min=eps1 * eps1).rsqrt_()
        update.mul_(grad)
        denom = max(1.0, update.norm(2).item() / ((update.numel() ** 0.5) * d))
        param.add_(update, alpha=-alpha / denom)


class Adafactor2x(_Replay2x):
    # torch.optim.Adafactor defaults (eps written as eps1/eps2).
    DEFAULTS = dict(lr=1e-2, beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0, weight_decay=0.0,
                    maximize=False)

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, row_vars, col_vars, variances, state_steps = [], [], [], [], [], []
        # Adafactor._init_group: lazy state initialization, factored for grads of two or more dims.
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                if p.grad.dim() > 1:
                    row_shape = list(p.grad.shape)
                    row_shape[-1] = 1
                    state["row_var"] = p.grad.new_zeros(row_shape)
                    col_shape = list(p.grad.shape)
                    col_shape[-2] = 1
                    state["col_var"] = p.grad.new_zeros(col_shape)
                else:
                    state["variance"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
            row_vars.append(state.get("row_var", None))
            col_vars.append(state.get("col_var", None))
            variances.append(state.get("variance", None))
            state_steps.append(state["step"])
        _single_tensor_adafactor_2x(
            params_with_grad, grads, row_vars, col_vars, variances, state_steps, d=g["d"], lr=g["lr"],
            beta2_decay=g["beta2_decay"], weight_decay=g["weight_decay"], eps1=g["eps1"],
            eps2=g["eps2"], maximize=g["maximize"])


class Rprop2x(_Replay2x):
    # torch.optim.Rprop defaults (etas and step_sizes written as etaminus/etaplus, min_step/max_step).
    DEFAULTS = dict(lr=1e-2, etaminus=0.5, etaplus=1.2, min_step=1e-6, max_step=50, maximize=False)

    @torch.no_grad()
    def step(self):
        g = self.group
        params, grads, prevs, step_sizes, state_steps = [], [], [], [], []
        # Rprop._init_group: state on the first gradient; step_size = full_like(grad, lr).
        for p in self.params:
            if p.grad is None:
                continue
            params.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if len(state) == 0:
                state["step"] = torch.zeros((), dtype=_get_scalar_dtype())
                state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step_size"] = torch.full_like(p.grad, g["lr"])
            prevs.append(state["prev"])
            step_sizes.append(state["step_size"])
            state_steps.append(state["step"])
        _single_tensor_rprop_2x(
            params, grads, prevs, step_sizes, state_steps, step_size_min=g["min_step"],
            step_size_max=g["max_step"], etaminus=g["etaminus"], etaplus=g["etaplus"],
            maximize=g["maximize"])


# Muon (PyTorch >= 2.9; 1.13 has no class): torch/optim/_muon.py's _zeropower_via_newtonschulz, _adjust_lr and
# _single_tensor_muon from pytorch/pytorch main, transcribed op for op, run with 1.13's real ops (bfloat16 matmuls on CPU).
def _zeropower_via_newtonschulz_2x(grad, ns_coefficients, ns_steps, eps, use_addmm):
    if ns_steps >= 100:
        raise ValueError("Number of steps must be less than 100 for computational efficiency")
    if len(grad.shape) != 2:
        raise ValueError("Input tensor gradient must be a 2D matrix")
    if len(ns_coefficients) != 3:
        raise ValueError("Coefficients must be a tuple of exactly 3 values")
    a, b, c = ns_coefficients
    ortho_grad = grad.bfloat16()
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    if use_addmm:
        for _ in range(ns_steps):
            gram_matrix = ortho_grad @ ortho_grad.T
            gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
            ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    else:
        for _ in range(ns_steps):
            gram_matrix = ortho_grad @ ortho_grad.T
            gram_update = b * gram_matrix + c * gram_matrix @ gram_matrix
            ortho_grad = a * ortho_grad + gram_update @ ortho_grad
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


def _adjust_lr_2x(lr, adjust_lr_fn, param_shape):
    A, B = param_shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        adjusted_ratio = math.sqrt(max(1, A / B))
    elif adjust_lr_fn == "match_rms_adamw":
        adjusted_ratio = 0.2 * math.sqrt(max(A, B))
    else:
        adjusted_ratio = 1.0
    return lr * adjusted_ratio


def _single_tensor_muon_2x(params, grads, muon_momentum_bufs, *, lr, weight_decay, momentum, nesterov,
                           ns_coefficients, ns_steps, eps, adjust_lr_fn, use_addmm):
    for i, param in enumerate(params):
        grad = grads[i]
        if grad.ndim != 2:
            raise ValueError("Param gradient must be a 2D matrix")
        buf = muon_momentum_bufs[i]
        buf.lerp_(grad, 1 - momentum)
        update = grad.lerp(buf, momentum) if nesterov else buf
        update = _zeropower_via_newtonschulz_2x(update, ns_coefficients, ns_steps, eps, use_addmm)
        adjusted_lr = _adjust_lr_2x(lr, adjust_lr_fn, param.shape)
        param.mul_(1 - lr * weight_decay)
        param.add_(update, alpha=-adjusted_lr)


class Muon2x(_Replay2x):
    # torch.optim.Muon defaults.
    DEFAULTS = dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.7750, 2.0315),
                    eps=1e-7, ns_steps=5, adjust_lr_fn=None, use_addmm=False)

    def __init__(self, params, options):
        super().__init__(params, options)
        for p in self.params:
            if p.ndim != 2:
                raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter with size: {p.size()}")

    @torch.no_grad()
    def step(self):
        g = self.group
        params_with_grad, grads, bufs = [], [], []
        # Muon._init_group: the momentum buffer on a parameter's first gradient.
        for p in self.params:
            if p.grad is None:
                continue
            params_with_grad.append(p)
            grads.append(p.grad)
            state = self.state.setdefault(p, {})
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
            bufs.append(state["momentum_buffer"])
        _single_tensor_muon_2x(
            params_with_grad, grads, bufs, lr=g["lr"], weight_decay=g["weight_decay"], momentum=g["momentum"],
            nesterov=g["nesterov"], ns_coefficients=g["ns_coefficients"], ns_steps=g["ns_steps"], eps=g["eps"],
            adjust_lr_fn=g["adjust_lr_fn"], use_addmm=g["use_addmm"])


def replay_factory(cls):
    def factory(params, options):
        return cls(params, options)
    return factory


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
    if "etaminus" in kwargs or "etaplus" in kwargs:
        kwargs["etas"] = (kwargs.pop("etaminus", 0.5), kwargs.pop("etaplus", 1.2))
    if "min_step" in kwargs or "max_step" in kwargs:
        kwargs["step_sizes"] = (kwargs.pop("min_step", 1e-6), kwargs.pop("max_step", 50))
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

# Cases write Rprop's pairs as TorchSharp's arguments (etaminus/etaplus, min_step/max_step); the files record PyTorch's
# names, the ones state dicts and Optim's option schema use: etas and step_sizes, each a pair.
RPROP_PAIRS = {"etas": ("etaminus", "etaplus", (0.5, 1.2)), "step_sizes": ("min_step", "max_step", (1e-6, 50.0))}


def pytorch_names(options):
    out = dict(options)
    for pair, (first, second, default) in RPROP_PAIRS.items():
        if first in out or second in out:
            out[pair] = [float(out.pop(first, default[0])), float(out.pop(second, default[1]))]
    return out


def case_seed(name, dtype_name):
    return zlib.crc32(f"{name}:{dtype_name}".encode("utf-8"))


def flat(t):
    return t.detach().reshape(-1).tolist()


def make_inputs(seed, dtype, shapes=SHAPES):
    """Initial values and the per-step gradients (None = no grad), from `seed`.

    A gradient is drawn for every parameter at every step (so the RNG stream
    does not depend on the exceptions), then replaced by None / zeros where
    the schedule says so.
    """
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        initial = [torch.randn(shape, dtype=dtype) for shape in shapes]
        steps = []
        for s in range(NUM_STEPS):
            grads = []
            for i, shape in enumerate(shapes):
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


def run_trajectory(factory, options, initial, grad_steps, state_keys=(), states=None):
    """Returns a list (one per step) of lists of param tensors after step().

    With `state_keys`, appends to `states` (one per step) {key: [flat values per
    param, None for a param without state yet]}."""
    params = [t.clone().requires_grad_(True) for t in initial]
    opt = factory(params, options)
    out = []
    for grads in grad_steps:
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.clone()
        opt.step()
        out.append([p.detach().clone() for p in params])
        if state_keys:
            states.append({key: [flat(opt.state[p][key]) if key in opt.state.get(p, {}) else None
                                 for p in params] for key in state_keys})
    return out


def build_case(name, options, dtype_name, factory, state_keys=(), shapes=SHAPES):
    dtype = DTYPES[dtype_name]
    initial, grad_steps = make_inputs(case_seed(name, dtype_name), dtype, shapes)
    states = []
    traj = run_trajectory(factory, options, initial, grad_steps, state_keys, states)
    steps = []
    for s, (grads, params) in enumerate(zip(grad_steps, traj)):
        for p in params:
            if not torch.isfinite(p).all():
                raise RuntimeError(f"non-finite parameter in case {name} ({dtype_name})")
        step = {
            "grads": [None if g is None else flat(g) for g in grads],
            "params": [flat(p) for p in params],
        }
        if state_keys:
            step["state"] = states[s]
        steps.append(step)
    return {
        "name": f"{name}_{dtype_name}",
        "dtype": dtype_name,
        "options": pytorch_names(options),
        "shapes": [list(s) for s in shapes],
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


def self_check_replays():
    """Compares every 2.x replay trajectory with torch.optim's own class.

    Adagrad and non-centered RMSprop use the same ops in the same order in
    PyTorch 1.13 and 2.x, so there the replay must equal the installed
    torch.optim class bit for bit (fails otherwise). Adam, AdamW and centered
    RMSprop differ in op order (lerp_ vs mul_().add_()), so for them the
    largest |difference| per case is only printed."""
    checks = [
        # (label, cases, replay factory, torch class, must be bitwise equal?)
        ("Adam", ADAM_CASES, replay_factory(Adam2x), torch.optim.Adam, lambda o: False),
        ("AdamW", ADAMW_CASES, replay_factory(AdamW2x), torch.optim.AdamW, lambda o: False),
        ("Adagrad", ADAGRAD_CASES, replay_factory(Adagrad2x), torch.optim.Adagrad,
         lambda o: True),
        ("RMSprop", RMSPROP_CASES, replay_factory(RMSprop2x), torch.optim.RMSprop,
         lambda o: not o.get("centered", False)),
        ("Adamax", ADAMAX_CASES, replay_factory(Adamax2x), torch.optim.Adamax, lambda o: False),
        # 1.13's NAdam counts mu twice: a different algorithm, only the size of the difference is printed.
        ("NAdam", [(n, o) for n, o in NADAM_CASES
                   if not o.get("maximize") and not o.get("decoupled_weight_decay")],
         replay_factory(NAdam2x), torch.optim.NAdam, lambda o: False),
        ("RAdam", RADAM_CASES_113, replay_factory(RAdam2x), torch.optim.RAdam, lambda o: False),
        ("Rprop", RPROP_CASES, replay_factory(Rprop2x), torch.optim.Rprop, lambda o: True),
    ]
    print(f"self-check: 2.x replays vs torch {torch.__version__} torch.optim classes")
    for label, cases, replay, cls, must_equal in checks:
        torch_factory = make_torch_factory(cls)
        for name, options in cases:
            for dtype_name, dtype in DTYPES.items():
                initial, grad_steps = make_inputs(case_seed(name, dtype_name), dtype)
                ref = run_trajectory(replay, options, initial, grad_steps)
                tor = run_trajectory(torch_factory, options, initial, grad_steps)
                max_diff, n_diff, n_all = 0.0, 0, 0
                for s, (a, b) in enumerate(zip(ref, tor)):
                    for i, (x, y) in enumerate(zip(a, b)):
                        if must_equal(options) and not torch.equal(x, y):
                            raise AssertionError(
                                f"SELF-CHECK FAILED: {label} 2.x replay differs from "
                                f"torch.optim.{cls.__name__} (same op order in 1.13 and 2.x) "
                                f"in case {name}_{dtype_name} at step {s}, param {i}:\n"
                                f"  replay: {flat(x)}\n  torch:  {flat(y)}")
                        n_diff += int((x != y).sum())
                        n_all += x.numel()
                        if x.numel():
                            max_diff = max(max_diff, float((x - y).abs().max()))
                verdict = "bitwise equal (required)" if must_equal(options) else (
                    f"max |diff| {max_diff:.3e}, {n_diff}/{n_all} values differ")
                print(f"  {label:8s} {name + '_' + dtype_name:45s} {verdict}")


ALGORITHMS = [
    # (file name, algorithm label, cases, factory, reference note or None)
    ("sgd.json", "SGD", SGD_CASES, make_torch_factory(torch.optim.SGD), None),
    ("adam.json", "Adam", ADAM_CASES, make_torch_factory(torch.optim.Adam), None),
    ("adamw.json", "AdamW", ADAMW_CASES, make_torch_factory(torch.optim.AdamW), None),
    ("adagrad.json", "Adagrad", ADAGRAD_CASES, make_torch_factory(torch.optim.Adagrad), None),
    ("rmsprop.json", "RMSprop", RMSPROP_CASES, make_torch_factory(torch.optim.RMSprop), None),
    ("sgd_momentum_nesterov.json", "SGDMomentumNesterov", SGDMN_CASES, sgdmn_factory, None),
    # PyTorch 2.x op-order replays: same cases, seeds and gradients as above.
    ("adam_2x.json", "Adam", ADAM_CASES, replay_factory(Adam2x), REFERENCE_2X),
    ("adamw_2x.json", "AdamW", ADAMW_CASES, replay_factory(AdamW2x), REFERENCE_2X),
    ("adagrad_2x.json", "Adagrad", ADAGRAD_CASES, replay_factory(Adagrad2x), REFERENCE_2X),
    ("rmsprop_2x.json", "RMSprop", RMSPROP_CASES, replay_factory(RMSprop2x), REFERENCE_2X),
    # Adadelta and ASGD: PyTorch 1.13's _single_tensor_* run the same ops in the same order as 2.x's
    # (compared by hand; see tools/golden/README.md), so their classes are the reference. Adamax: 1.13 uses
    # mul_().add_() where 2.x uses lerp_, hence the 2.x replay next to it.
    ("adadelta.json", "Adadelta", ADADELTA_CASES, make_torch_factory(torch.optim.Adadelta), None),
    ("adamax.json", "Adamax", ADAMAX_CASES, make_torch_factory(torch.optim.Adamax), None),
    ("adamax_2x.json", "Adamax", ADAMAX_CASES, replay_factory(Adamax2x), REFERENCE_2X),
    ("asgd.json", "ASGD", ASGD_CASES, make_torch_factory(torch.optim.ASGD), None),
    # NAdam: only the 2.x replay (1.13's class computes another algorithm). RAdam: 1.13's class where it can run the
    # case, and the 2.x replay of every case. Rprop: 1.13's class, whose ops equal 2.x's (self-checked).
    ("nadam_2x.json", "NAdam", NADAM_CASES, replay_factory(NAdam2x), REFERENCE_2X),
    ("radam.json", "RAdam", RADAM_CASES_113, make_torch_factory(torch.optim.RAdam), None),
    ("radam_2x.json", "RAdam", RADAM_CASES, replay_factory(RAdam2x), REFERENCE_2X),
    ("rprop.json", "Rprop", RPROP_CASES, make_torch_factory(torch.optim.Rprop), None),
    # Adafactor: newer than 1.13, only the transcription of PyTorch main's _single_tensor_adafactor.
    ("adafactor_2x.json", "Adafactor", ADAFACTOR_CASES, replay_factory(Adafactor2x), REFERENCE_2X),
    # Muon: newer than 1.13, only the transcription of PyTorch main's _single_tensor_muon, on MUON_SHAPES.
    ("muon_2x.json", "Muon", MUON_CASES, replay_factory(Muon2x), REFERENCE_2X),
]


def main(argv=None):
    default_out = os.path.normpath(os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "Optim.Tests", "Goldens"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help=f"output folder (default: {default_out})")
    ap.add_argument("--only", nargs="+", metavar="FILE",
                    help="write only these files (space- or comma-separated); the others stay untouched")
    args = ap.parse_args(argv)
    only = None if args.only is None else {f for arg in args.only for f in arg.split(",") if f}
    if only is not None and not only <= {f for f, *_ in ALGORITHMS}:
        ap.error(f"unknown files in --only: {sorted(only - {f for f, *_ in ALGORITHMS})}")

    # Single-threaded CPU kernels: no dependence on the machine's core count.
    torch.set_num_threads(1)

    self_check_sgdmn()
    self_check_replays()

    os.makedirs(args.out, exist_ok=True)
    for file_name, algorithm, cases, factory, reference in ALGORITHMS:
        if only is not None and file_name not in only:
            continue
        names = [n for n, _ in cases]
        if len(set(names)) != len(names):
            raise AssertionError(f"duplicate case names for {algorithm}")
        doc = {
            "generator": GENERATOR,
            "torch_version": torch.__version__,
            "algorithm": algorithm,
        }
        if reference is not None:
            doc["reference"] = reference
        doc["cases"] = [build_case(name, options, dtype_name, factory, STATE_KEYS.get(algorithm, ()), SHAPES_OF.get(algorithm, SHAPES))
                        for name, options in cases
                        for dtype_name in DTYPES]
        path = os.path.join(args.out, file_name)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            json.dump(doc, f, indent=None, separators=(",", ":"), allow_nan=False)
            f.write("\n")
        print(f"wrote {path} ({len(doc['cases'])} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
