"""Models of docs/BENCHMARKS.md, for scripts/export_checkpoint.py --factory.

    .venv/bin/python scripts/export_checkpoint.py --factory scripts/bench_models.py:mlp --out mlp.pt
    .venv/bin/python scripts/export_checkpoint.py --factory scripts/bench_models.py:mlp --no-taps --out mlp-untapped.pt

mlp: 784-512-512-10 ReLU (Fashion-MNIST images [N, 1, 28, 28] in, 10 logits out), float64,
initialised with seed 0 (PyTorch's default initialisation).
"""
import torch
import torch.nn as nn


def mlp(widths=(784, 512, 512, 10), seed=0):
    torch.manual_seed(seed)
    layers = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double()
