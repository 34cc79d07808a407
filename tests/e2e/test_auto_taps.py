#!/usr/bin/env python3
"""Models saved with plain `torch.jit.script` or `torch.jit.trace` (no export script, no
manifest) get layer taps when fisheval loads them: every nn.Linear and zero-padded nn.Conv2d
is tapped, so per-sample gradients come from the taps (no per-sample loop) and the Kronecker
and Shampoo families run on the layers.

Checked, on an MLP (Sigmoid and Tanh after its layers) and a CNN (two Conv2d, one strided, and
a Linear head), each scripted and traced:
  * no "per-sample loop" note: the taps route is taken;
  * MLP: γ of sgd, ef, ief and of kfac-exact, ekfac, iekfac, shampoo against the float64
    oracle computed on the original nn.Module (tests/e2e/oracle.py);
  * both: every method of both families, fishy included (which reads the activation after
    each layer), equal to the same model exported with scripts/export_checkpoint.py;
  * an archive exported with --no-taps (a manifest saying "none") stays untapped.
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn

from common import SOURCE, Failures, run, work_dir
from oracle import Oracle

sys.path.insert(0, os.path.join(SOURCE, "scripts"))
from export_checkpoint import export_checkpoint, export_data  # noqa: E402

N = 10
GRAM = ["sgd", "ef", "ief"]
LAYER = ["kfac-exact", "ekfac", "iekfac", "shampoo"]
EVERY = GRAM + LAYER + ["kfac", "kfe", "fim-shampoo", "fishy"]
DAMPINGS = [1e-3, 0.1]


def models():
    torch.manual_seed(3)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(36, 12), nn.Sigmoid(), nn.Linear(12, 9), nn.Tanh(),
                        nn.Linear(9, 4)).double()
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 3, stride=2), nn.Tanh(),
                        nn.Flatten(), nn.Linear(8, 4)).double()
    return {"mlp": mlp, "cnn": cnn}


def evaluate(ckpt, data, methods, tag):
    out = os.path.join(os.path.dirname(data), f"{tag}.h5")
    _, err = run(["eval", "--checkpoints", ckpt, "--data", data, "--batch-size", str(N), "--num-batches", "1",
                  "--methods", ",".join(methods), "--damping", ",".join(map(str, DAMPINGS)), "--mc-samples", "2",
                  "--out", out, "--overwrite", "--quiet"])
    with h5py.File(out, "r") as f:
        return f["gamma"][0, 0], err


def main():
    fx = Failures()
    folder = work_dir("auto-taps")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(N, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (N,), generator=g)
    data = os.path.join(folder, "data.h5")
    export_data(data, x, y)
    for name, model in models().items():
        model.eval()
        paths = {"script": os.path.join(folder, f"{name}-script.pt"), "trace": os.path.join(folder, f"{name}-trace.pt"),
                 "exported": os.path.join(folder, f"{name}-exported.pt")}
        torch.jit.script(model).save(paths["script"])
        torch.jit.trace(model, x).save(paths["trace"])
        export_checkpoint(model, paths["exported"])
        expected, _ = evaluate(paths["exported"], data, EVERY, f"{name}-exported")
        o = Oracle(model, x, y, ce=True) if name == "mlp" else None
        for how in ("script", "trace"):
            got, err = evaluate(paths[how], data, EVERY, f"{name}-{how}")
            fx.check("per-sample loop" not in err, f"{name} {how}: the per-sample loop was taken:\n{err}")
            rel = np.abs(got - expected) / np.abs(expected)
            fx.check(np.isfinite(got).all() and rel.max() < 1e-10,
                     f"{name} {how}: γ differs from the exported model's by {rel.max():.2e}\n{got}\n{expected}")
            if o is None:
                continue
            for j, lam in enumerate(DAMPINGS):
                dirs = {**o.gram_directions(lam), **o.layer_directions(lam, LAYER)}
                for m in GRAM + LAYER:
                    want = o.gamma(dirs[m])
                    have = got[EVERY.index(m), j]
                    fx.check(abs(have - want) <= 1e-7 * abs(want),
                             f"{name} {how} {m} λ={lam}: γ {have} vs oracle {want}")
    # An archive exported without taps on purpose keeps the per-sample loop.
    untapped = os.path.join(folder, "mlp-notaps.pt")
    export_checkpoint(models()["mlp"], untapped, taps=False)
    _, err = evaluate(untapped, data, ["sgd", "ef"], "mlp-notaps")
    fx.check("per-sample loop" in err, f"--no-taps export: expected the per-sample loop note, got:\n{err}")
    fx.close()


if __name__ == "__main__":
    main()
