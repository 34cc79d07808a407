#!/usr/bin/env python3
"""fisheval eval with the Kronecker and Shampoo families on real TorchScript checkpoints
(the fixture series, a sequence model with --kfac-approx reduce, a checkpoint without
taps), checked with h5py: every γ finite, γ/γ_ng ≥ 1 against the dense natural gradient,
and a clear message (exit 2, bad input) when a checkpoint has no layer taps."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np

FX = os.environ["FISHEVAL_FIXTURES"]
BIN = os.environ["FISHEVAL_BINARY"]
WORK = os.path.join(os.environ["FISHEVAL_WORK"], "kronecker_cli")


def run(args, expect=0):
    proc = subprocess.run([BIN] + args, capture_output=True, text=True)
    if proc.returncode != expect:
        sys.exit(f"fisheval {' '.join(args)}: exit {proc.returncode}, expected {expect}\n{proc.stderr}")
    return proc


# Both families: every registered method that needs layer taps (`fisheval methods --json`).
REGISTRY = json.loads(run(["methods", "--json"]).stdout)
FAMILY = [m["name"] for m in REGISTRY if "layer-taps" in m["needs"] and m["name"] != "fishy-classifier"]


def main():
    os.makedirs(WORK, exist_ok=True)

    # The listing names every method of both families.
    listing = run(["methods"]).stdout
    for m in FAMILY:
        assert m in listing, f"'{m}' missing from 'fisheval methods'"

    # The fixture series: 3 checkpoints × 2 batches × (family + sgd + ng-dense) × 3 dampings.
    out = os.path.join(WORK, "series.h5")
    methods = ["sgd"] + FAMILY + ["ng-dense"]
    run(["eval", "--series", os.path.join(FX, "series"), "--data", os.path.join(FX, "series.h5"),
         "--methods", ",".join(methods), "--damping", "0,1e-3,1", "--batch-size", "8", "--num-batches", "2",
         "--mc-samples", "2", "--out", out, "--overwrite", "--quiet"])
    with h5py.File(out, "r") as f:
        assert [m.decode() if isinstance(m, bytes) else m for m in f["method"][()]] == methods
        rel_sgd = f["gamma_rel_sgd"][()]
        rel_ng = f["gamma_rel_ng"][()]
        assert rel_sgd.shape == (3, 2, len(methods), 3), rel_sgd.shape
        assert np.isfinite(rel_sgd).all(), rel_sgd
        # The natural gradient minimises γ: no method does better (up to rounding).
        assert (rel_ng >= 1 - 1e-8).all(), rel_ng.min()
        status = f["solve_status"][()]
        assert status.min() >= 0

    # A sequence model with KFAC-reduce.
    out = os.path.join(WORK, "seq_reduce.h5")
    run(["eval", "--checkpoints", os.path.join(FX, "seq_ce.pt"), "--data", os.path.join(FX, "seq_ce.h5"),
         "--methods", ",".join(FAMILY), "--damping", "1e-3", "--batch-size", "6", "--kfac-approx", "reduce",
         "--out", out, "--overwrite", "--quiet"])
    with h5py.File(out, "r") as f:
        assert f.attrs["kfac_approx"] in ("reduce", b"reduce"), f.attrs["kfac_approx"]
        assert np.isfinite(f["gamma_rel_sgd"][()]).all()

    # A checkpoint without taps: the family is skipped with a message naming the parameters and
    # the cure, recorded in method_status; the other methods of the checkpoint are not lost.
    out = os.path.join(WORK, "notaps.h5")
    proc = run(["eval", "--checkpoints", os.path.join(FX, "mlp_notaps_ce.pt"), "--data",
                os.path.join(FX, "mlp_notaps_ce.h5"), "--methods", "sgd,kfac", "--damping", "1e-3",
                "--batch-size", "4", "--out", out, "--overwrite", "--quiet"], expect=0)
    assert "kfac needs layer taps" in proc.stderr and "0.weight" in proc.stderr, proc.stderr
    assert "export_checkpoint.py" in proc.stderr, proc.stderr
    with h5py.File(out, "r") as f:
        status = f["method_status"].asstr()[:]
        assert status.shape == (1, 2) and status[0, 0] == "" and status[0, 1].startswith("skipped: kfac needs"), status
        assert np.isfinite(f["gamma"][0, :, 0, :]).all() and np.isnan(f["gamma"][0, :, 1, :]).all()
    # ... and every other method still runs on it.
    run(["eval", "--checkpoints", os.path.join(FX, "mlp_notaps_ce.pt"), "--data",
         os.path.join(FX, "mlp_notaps_ce.h5"), "--methods", "sgd,ef,ief,sf", "--damping", "1e-3",
         "--batch-size", "4", "--out", out, "--overwrite", "--quiet"])
    print("ok")


if __name__ == "__main__":
    main()
