#!/usr/bin/env python3
"""Makes a small checkpoint series with real training: a tanh MLP (784-32-10, float64)
trained with plain SGD on Fashion-MNIST (Debian's dataset-fashion-mnist), checkpoints
exported with scripts/export_checkpoint.py at the given steps, and a manifest.csv.
Run with the project environment's Python:

    .venv/bin/python scripts/make_mlp_series.py OUTDIR [--steps 0,100,500,2000] [--seed 0]

The inputs are normalised as fisheval reads them ((x/255 − 0.2860)/0.3530, shape
[N, 1, 28, 28]), so the series can be evaluated with `--data fashion-mnist:test`.
Until `fisheval train` exists, this is the series docs/RESULTS.md measures.
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_checkpoint as ex  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--steps", default="0,100,500,2000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-samples", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--data-dir", default=os.environ.get("FISHEVAL_FASHION_MNIST_DIR",
                                                         "/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args(argv)
    steps = sorted(int(s) for s in args.steps.split(","))
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    images = read_idx(os.path.join(args.data_dir, "train-images-idx3-ubyte.gz"))[:args.train_samples]
    labels = read_idx(os.path.join(args.data_dir, "train-labels-idx1-ubyte.gz"))[:args.train_samples]
    x = (torch.tensor(images, dtype=torch.float64).unsqueeze(1) / 255.0 - MEAN) / STD
    y = torch.tensor(labels, dtype=torch.int64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(args.seed)
    rows = ["path,step"]
    step = 0
    perm = torch.randperm(len(y), generator=g)
    at = 0
    while True:
        if step in steps:
            path = f"ckpt_step{step}.pt"
            # Export a copy: add_taps rewrites the module it is given.
            clone = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10)).double()
            clone.load_state_dict(model.state_dict())
            ex.export_checkpoint(clone, os.path.join(args.out, path), loss="cross-entropy", trainable="*")
            rows.append(f"{path},{step}")
            with torch.no_grad():
                acc = (model(x).argmax(1) == y).double().mean().item()
            print(f"step {step}: train accuracy {acc:.3f}")
        if step >= steps[-1]:
            break
        if at + args.batch_size > len(y):
            perm = torch.randperm(len(y), generator=g)
            at = 0
        idx = perm[at:at + args.batch_size]
        at += args.batch_size
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).backward()
        opt.step()
        step += 1
    with open(os.path.join(args.out, "manifest.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"series written to {args.out}")


if __name__ == "__main__":
    main()
