#!/usr/bin/env python3
"""End to end: what PyTorch 2.x users write, saved by PyTorch 2.x, exported with
scripts/export_checkpoint.py and scored by `fisheval eval`, against a float64 oracle computed
on the ORIGINAL nn.Module (rebuilt from the fixture's state dict; nothing of the export is
trusted): nn.MultiheadAttention, nn.TransformerEncoderLayer (trainable, and frozen in eval mode
where PyTorch takes its fused fast path), F.scaled_dot_product_attention, nn.LayerNorm,
nn.Embedding, a model whose output layer shares the embedding's weight, and a model that
was torch.compile'd.

Checked per model: γ of sgd, ef, ief, ief-param, ng-dense, ng-cg at λ ∈ {0, 1e-3, 0.1}; γ of the
deterministic layer methods (kfac-exact where the logits are per sample, ekfac, iekfac,
shampoo) at λ ∈ {1e-3, 0.1}; P and the parameter list in the result file; the one-line note
when the JVP engine falls back; the tied model also in float32.
"""
import fnmatch
import json
import os
import sys

import h5py
import numpy as np
import torch

from common import SOURCE, Failures, fixture, run, work_dir
from oracle import Oracle

sys.path.insert(0, os.path.join(SOURCE, "tests", "fixtures"))
import make_fixtures as mf  # noqa: E402

GRAM_METHODS = ["sgd", "ef", "ief", "ief-param", "ng-dense", "ng-cg"]
GRAM_DAMPINGS = [0.0, 1e-3, 0.1]
LAYER_DAMPINGS = [1e-3, 0.1]
BATCH = 5


def original_module(name):
    """The fixture's nn.Module as the user had it: its class, its saved state, its trainable set."""
    factory, trainable, _ = mf.PYTORCH2_MODELS[name]
    model = factory().double().eval()
    model.load_state_dict(torch.load(fixture(name + ".state.pt"), weights_only=True))
    globs = trainable.split(",")
    for pname, p in model.named_parameters():
        p.requires_grad_(any(fnmatch.fnmatchcase(pname, g) for g in globs))
    return model


def batch_of(name, f):
    with h5py.File(fixture(name + ".h5"), "r") as d:
        x, y = torch.from_numpy(d["inputs"][:]), torch.from_numpy(d["targets"][:])
    idx = f["batch_samples"][0]
    x = x[idx].double() if x.is_floating_point() else x[idx]
    return x, y[idx]


def evaluate(name, methods, dampings, extra=()):
    out = os.path.join(work_dir(f"pt2-{name}-{methods[0]}-{'-'.join(extra)}"), "r.h5")
    _, err = run(["eval", "--checkpoints", fixture(name + ".pt"), "--data", fixture(name + ".h5"), "--batch-size",
                  str(BATCH), "--num-batches", "1", "--methods", ",".join(methods), "--damping",
                  ",".join(map(str, dampings)), "--cg-max-iter", "3000", "--cg-rtol", "1e-13", "--out", out,
                  "--quiet", *extra])
    return out, err


def close(a, e, tol):
    return np.allclose(a, e, rtol=tol, atol=1e-12 * max(1.0, np.abs(e).max()))


def check_model(fx, name, layer_methods, dtype="float64"):
    model = original_module(name)
    tol_scale = 1.0 if dtype == "float64" else 1e5
    extra = ("--dtype", dtype)
    out, err = evaluate(name, GRAM_METHODS, GRAM_DAMPINGS, extra)
    with h5py.File(out, "r") as f:
        x, y = batch_of(name, f)
        o = Oracle(model, x, y, ce=True)
        P = o.g.size
        fx.check(int(f["num_params"][0, 0]) == P, f"{name} {dtype}: num_params {f['num_params'][0, 0]} vs P = {P}")
        listed = json.loads(f["checkpoint_parameters"].asstr()[0])
        expect = [(n, list(p.shape)) for n, p in o.named]
        fx.check([(e["name"], e["shape"]) for e in listed] == expect,
                 f"{name}: checkpoint_parameters {listed} vs {expect}")
        fx.check(close(f["loss"][0, 0], o.losses.sum(), 1e-10 * tol_scale), f"{name} {dtype}: loss")
        g_sgd = o.gamma(o.g)
        for j, lam in enumerate(GRAM_DAMPINGS):
            dirs = o.gram_directions(lam)
            for m, method in enumerate(GRAM_METHODS):
                tol = (1e-5 if method == "ng-cg" or lam == 0 else 1e-7) * tol_scale
                expected = o.gamma(dirs[method])
                got = f["gamma"][0, 0, m, j]
                fx.check(close(got, expected, tol), f"{name} {dtype} {method} λ={lam}: γ {got} vs oracle {expected}")
                fx.check(close(f["gamma_rel_sgd"][0, 0, m, j], expected / g_sgd, tol),
                         f"{name} {dtype} {method} λ={lam}: γ/γ_sgd")
    if layer_methods:
        out, _ = evaluate(name, layer_methods, LAYER_DAMPINGS, extra)
        with h5py.File(out, "r") as f:
            for j, lam in enumerate(LAYER_DAMPINGS):
                dirs = o.layer_directions(lam, layer_methods)
                for m, method in enumerate(layer_methods):
                    expected = o.gamma(dirs[method])
                    got = f["gamma"][0, 0, m, j]
                    fx.check(close(got, expected, 1e-7 * tol_scale),
                             f"{name} {dtype} {method} λ={lam}: γ {got} vs oracle {expected}")
    return err


def main():
    fx = Failures()
    pooled = ["kfac-exact", "ekfac", "iekfac", "shampoo"]
    for name in ["mha_ce", "encoder_ce", "sdpa_ce", "compiled_ce"]:
        check_model(fx, name, pooled)
    # The fused fast path of a frozen encoder layer has no forward-mode formula: the JVP engine
    # falls back to double backward, says so in one line, and the numbers are right.
    err = check_model(fx, "encoder_frozen_ce", pooled)
    notes = [line for line in err.splitlines() if "JVPs by double backward" in line]
    fx.check(len(notes) == 1 and "_transformer_encoder_layer_fwd" in notes[0],
             f"encoder_frozen_ce: one note naming the fused kernel, got {notes}")
    # Tied weights: one parameter of θ whose gradient sums both uses, in float64 and float32.
    check_model(fx, "tied_lm_ce", ["ekfac", "iekfac", "shampoo"])
    check_model(fx, "tied_lm_ce", [], dtype="float32")
    fx.close()


if __name__ == "__main__":
    main()
