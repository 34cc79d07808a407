#!/usr/bin/env python3
"""On a CUDA device: every method's γ computed with `--device cuda` in float32 and float64
equals the CPU float64 run, within a stated tolerance, on fixtures of every kind (MLP, CNN,
LoRA, sequences with ignored tokens, scaled_dot_product_attention, tied weights).

Tolerances (relative, per cell): float64 on CUDA 1e-6 (only the order of floating-point
reductions differs); float32 2e-2 at damping values ≥ 1e-3 relative to the largest
per-sample gradient norm (float32 solves of badly conditioned systems are not comparable).
Sampled labels are drawn on the CPU, so the sampled methods see the same draws on both
devices.

Without a visible CUDA device the test reports itself skipped (exit status 77, CTest's
SKIP_RETURN_CODE): scripts/gpu_check.sh runs it on a GPU machine.
"""
import subprocess
import sys

import h5py
import numpy as np

from common import BINARY, Failures, fixture, registered_methods, run, work_dir

METHODS = registered_methods(exclude=("ng-dense", "fishy-classifier"))
FIXTURES = [("mlp_tanh_ce", METHODS), ("conv_ce", METHODS), ("lora_ce", METHODS), ("seq_ce", METHODS),
            ("sdpa_ce", METHODS), ("tied_lm_ce", [m for m in METHODS if m != "kfac-exact"])]
DAMPINGS = ["1e-3", "1e-1"]
TOLERANCE = {"float64": 1e-6, "float32": 2e-2}


def cuda_visible():
    out = subprocess.run([BINARY, "--version"], capture_output=True, text=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("cuda_devices")), "")
    return "cuda:" in line


def gamma(name, methods, device, dtype):
    out = f"{work_dir(f'cuda-{name}-{device}-{dtype}')}/r.h5"
    run(["eval", "--checkpoints", fixture(name + ".pt"), "--data", fixture(name + ".h5"), "--batch-size", "8",
         "--num-batches", "2", "--methods", ",".join(methods), "--damping", ",".join(DAMPINGS), "--damping-mode",
         "relative", "--device", device, "--dtype", dtype, "--out", out, "--quiet"])
    with h5py.File(out, "r") as f:
        return f["gamma"][:], f.attrs["device"]


def main():
    if not cuda_visible():
        print("skipped: no CUDA device visible (fisheval --version)")
        sys.exit(77)
    fx = Failures()
    for name, methods in FIXTURES:
        reference, _ = gamma(name, methods, "cpu", "float64")
        for dtype, tol in TOLERANCE.items():
            got, device = gamma(name, methods, "cuda", dtype)
            fx.check(device.startswith("cuda"), f"{name}: ran on {device}")
            rel = np.abs(got - reference) / np.abs(reference)
            for m, method in enumerate(methods):
                worst = np.nanmax(rel[:, :, m, :])
                fx.check(worst <= tol and np.isfinite(got[:, :, m, :]).all(),
                         f"{name} {method} {dtype}: largest relative difference to CPU float64 {worst:.2e} > {tol}")
            print(f"{name} {dtype}: largest relative difference {np.nanmax(rel):.2e} (tolerance {tol})")
    fx.close()


if __name__ == "__main__":
    main()
