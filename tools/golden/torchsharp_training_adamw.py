#!/usr/bin/python3
"""PyTorch's final losses for TorchSharp's AdamW training tests, with PyTorch's AdamW default weight_decay.

TorchSharp's factory `torch.optim.AdamW` defaults to weight_decay=0; PyTorch's (and Optim's) to 0.01. Where
TorchSharp's expected loss depends on that default, tests/Optim.Tests/TorchSharpTrainingTests asserts the loss this
script prints: the model, data and loop of torchsharp_training_adadelta_adamax_asgd.py, with PyTorch's torch.optim.AdamW.
The weight_decay=0 rows reproduce TorchSharp's own expected values (53.3606, 105.82), which confirms the setup.

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/torchsharp_training_adamw.py
"""

import torch

from torchsharp_training_adadelta_adamax_asgd import train

# TorchSharp's group: LearningRate = 0.005f (a float32 literal widened to double).
LR_005F = float(torch.tensor(0.005, dtype=torch.float32).item())


def param_groups(weight_decay):
    return lambda l1, l2, s: torch.optim.AdamW(
        [{"params": l1.parameters(), "lr": LR_005F}, {"params": l2.parameters()}], weight_decay=weight_decay)


CASES = [
    ("TrainingAdamWDefaults (weight_decay 0.01)", lambda l1, l2, s: torch.optim.AdamW(s.parameters())),
    ("TrainingAdamWDefaults (weight_decay 0)", lambda l1, l2, s: torch.optim.AdamW(s.parameters(), weight_decay=0)),
    ("TrainingAdamWParamGroups (weight_decay 0.01)", param_groups(0.01)),
    ("TrainingAdamWParamGroups (weight_decay 0)", param_groups(0)),
]


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    for name, make in CASES:
        print(f"{name:46s} {train(make):.6f}")


if __name__ == "__main__":
    main()
