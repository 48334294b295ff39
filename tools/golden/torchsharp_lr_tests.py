#!/usr/bin/python3
"""Replays three of TorchSharp's scheduler tests (test/TorchSharpTest/TestTraining.cs) in PyTorch, to find the losses
they should expect where TorchSharp's values encode its scheduler bugs (see tests/Optim.Tests/Schedulers/
TorchSharpSchedulerTests.cs). The same Generator(4711) draws give the same initial weights and data as TorchSharp;
the first two lines reproduce TorchSharp's own expected values (StepLR, OneCycleLR) as a check of the replica.

Run with Debian's python3-torch:  /usr/bin/python3 tools/golden/torchsharp_lr_tests.py
"""
import math, torch, warnings
warnings.simplefilter("ignore")
from torch.optim import lr_scheduler as L
def setup():
    gen = torch.Generator().manual_seed(4711)
    lin1 = torch.nn.Linear(1000, 100); lin2 = torch.nn.Linear(100, 10)
    for lin in (lin1, lin2):
        w = torch.rand(lin.weight.shape, generator=gen)
        wb = 1 / math.sqrt(w.shape[1])
        lin.weight = torch.nn.Parameter(w * (2 * wb) - wb)
        fan_in = lin.weight.shape[1]
        bb = 1 / math.sqrt(fan_in)
        b = torch.rand(lin.bias.shape, generator=gen)
        lin.bias = torch.nn.Parameter(b * (2 * bb) - bb)
    x = torch.rand(64, 1000, generator=gen); y = torch.rand(64, 10, generator=gen)
    seq = torch.nn.Sequential(lin1, torch.nn.ReLU(), lin2)
    return seq, lin1, lin2, x, y
def train(seq, x, y, opt, sched, iters=10):
    loss = torch.nn.MSELoss(reduction="sum")
    final = None
    for i in range(iters):
        out = loss(seq(x), y); final = out.item()
        opt.zero_grad(); out.backward(); opt.step()
        if isinstance(sched, L.ReduceLROnPlateau): sched.step(final)
        else: sched.step()
    return final
f32 = lambda v: float(torch.tensor(v, dtype=torch.float32))
lr = f32(0.00004)
seq, l1, l2, x, y = setup(); o = torch.optim.SGD(seq.parameters(), lr); print("SGDStepLR", train(seq, x, y, o, L.StepLR(o, 1, 0.97)), "expected 67.36136")
seq, l1, l2, x, y = setup(); o = torch.optim.SGD(seq.parameters(), lr); print("SGDOneCycleLR", train(seq, x, y, o, L.OneCycleLR(o, 0.0004, total_steps=10)), "expected 112.4992")
seq, l1, l2, x, y = setup(); o = torch.optim.SGD(seq.parameters(), lr); print("SGDCyclicLR (PyTorch)", train(seq, x, y, o, L.CyclicLR(o, 0.0001, 0.0004, step_size_up=5)), "TorchSharp expected 65.459")
r = 0.0002
seq, l1, l2, x, y = setup(); o = torch.optim.SGD([{"params": l1.parameters(), "lr": f32(0.003)}, {"params": l2.parameters(), "lr": r}], r)
print("RAdamCyclicLR_PG (PyTorch)", train(seq, x, y, o, L.CyclicLR(o, [r / 2, r * 2], [r * 1.5, r * 2.25])), "TorchSharp expected 58.589")
r = 0.0005
seq, l1, l2, x, y = setup(); o = torch.optim.RAdam(seq.parameters(), lr=r); print("RAdamOneCycleLR", train(seq, x, y, o, L.OneCycleLR(o, r * 1.5, total_steps=10)), "expected 124.478")
seq, l1, l2, x, y = setup(); o = torch.optim.RAdam([{"params": l1.parameters(), "lr": f32(0.003)}, {"params": l2.parameters(), "lr": r}])
print("RAdamOneCycleLR_PG (PyTorch)", train(seq, x, y, o, L.OneCycleLR(o, [r * 1.5, r * 2.25], total_steps=10)), "TorchSharp expected 92.047")
