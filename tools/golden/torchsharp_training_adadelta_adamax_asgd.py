#!/usr/bin/python3
"""PyTorch's final losses for TorchSharp's own optimizer training tests.

TorchSharp's test/TorchSharpTest/TestTraining.cs trains a 1000-100-10 ReLU MLP
(weights and data from torch.Generator(4711)) for 10 steps with MSELoss(sum)
and asserts the last loss to 0.1%. Where an expected value there encodes
TorchSharp's own behaviour (ASGD's factory defaults to lr=1e-3, PyTorch's to
1e-2), tests/Optim.Tests/TorchSharpTrainingTests assert the value this script
prints instead: the same model, data and loop, run with PyTorch's torch.optim.

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/torchsharp_training_adadelta_adamax_asgd.py
"""

import math

import torch
import torch.nn as nn


def make_model_and_data():
    gen = torch.Generator()
    gen.manual_seed(4711)
    lin1 = nn.Linear(1000, 100)
    lin2 = nn.Linear(100, 10)
    for lin in (lin1, lin2):
        # TestTraining.ReInitializeLinear: weight, then bias, from the test's generator.
        w = torch.rand(lin.weight.shape, generator=gen)
        w_bound = 1 / math.sqrt(w.shape[1])
        lin.weight = nn.Parameter(w * (2 * w_bound) - w_bound)
        fan_in = lin.weight.shape[1]
        b_bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        b = torch.rand(lin.bias.shape, generator=gen)
        lin.bias = nn.Parameter(b * (2 * b_bound) - b_bound)
    # TestTraining.CreateDataAndLabels
    x = torch.rand([64, 1000], generator=gen)
    y = torch.rand([64, 10], generator=gen)
    return lin1, lin2, x, y


def train(make_optimizer, maximize=False):
    lin1, lin2, x, y = make_model_and_data()
    seq = nn.Sequential(lin1, nn.ReLU(), lin2)
    mse = nn.MSELoss(reduction="sum")

    def loss_fn(a, b):
        return -mse(a, b) if maximize else mse(a, b)

    opt = make_optimizer(lin1, lin2, seq)
    final = None
    for _ in range(10):
        output = loss_fn(seq(x), y)
        final = output.item()
        opt.zero_grad()
        output.backward()
        opt.step()
    return final


CASES = [
    # (TorchSharp test, optimizer factory, maximize)
    ("TrainingAdadelta", lambda l1, l2, s: torch.optim.Adadelta(s.parameters(), lr=1.0), False),
    ("TrainingAdamax", lambda l1, l2, s: torch.optim.Adamax(s.parameters()), False),
    ("TrainingASGD", lambda l1, l2, s: torch.optim.ASGD(s.parameters()), False),
    ("TrainingASGDMax", lambda l1, l2, s: torch.optim.ASGD(s.parameters(), maximize=True), True),
    ("TrainingASGDLambda", lambda l1, l2, s: torch.optim.ASGD(s.parameters(), lambd=0.00025), False),
    ("TrainingASGDAlpha", lambda l1, l2, s: torch.optim.ASGD(s.parameters(), alpha=0.65), False),
    ("TrainingASGDWD", lambda l1, l2, s: torch.optim.ASGD(s.parameters(), weight_decay=0.25), False),
    ("TrainingASGDT0", lambda l1, l2, s: torch.optim.ASGD(s.parameters(), t0=100000), False),
    # TorchSharp's group: LearningRate = 0.0002f (a float32 literal widened to double).
    ("TrainingASGDParamGroups", lambda l1, l2, s: torch.optim.ASGD([
        {"params": l1.parameters(), "lr": float(torch.tensor(0.0002, dtype=torch.float32).item())},
        {"params": l2.parameters()}]), False),
]


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    for name, make, maximize in CASES:
        loss = train(make, maximize)
        print(f"{name:28s} {-loss if maximize else loss:.6f}")


if __name__ == "__main__":
    main()
