#!/usr/bin/env python3
"""docs/HUGGING_FACE.md's walk-through, end to end on small configurations: a transformers + peft
fine-tuning run (scripts/hf_example_run.py: ViT + LoRA on Fashion-MNIST, T5 + prompt tuning)
leaves a base model and adapter checkpoints; scripts/peft_series.py makes a series of them;
`fisheval eval` scores every method family on it and `fisheval report` draws the figures.
Prompt tuning's parameter belongs to no layer: the layer families are skipped with that
reason, listed in the report."""
import os
import subprocess
import sys

import h5py
import numpy as np

from common import SOURCE, Failures, registered_methods, run, work_dir

ALL = registered_methods(exclude=("ng-dense", "fishy-classifier"))
LAYER = registered_methods("layer-taps", exclude=("fishy-classifier",))


def script(name, *args):
    p = subprocess.run([sys.executable, os.path.join(SOURCE, "scripts", name), *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)}: exit {p.returncode}\n{p.stderr[-3000:]}")


def main():
    fx = Failures()
    for task in ("vit-lora", "t5-prompt"):
        w = work_dir(f"walkthrough-{task}")
        script("hf_example_run.py", "--task", task, "--out", w, "--steps", "0,5,10", "--pretrain-steps", "10",
               "--samples", "256", "--eval-samples", "32")
        script("peft_series.py", "--base", os.path.join(w, "base"), "--adapters",
               *[os.path.join(w, "run", f"checkpoint-{s}") for s in (0, 5, 10)], "--out", os.path.join(w, "series"))
        out = os.path.join(w, "results.h5")
        run(["eval", "--series", os.path.join(w, "series"), "--data", os.path.join(w, "data.h5"), "--batch-size", "8",
             "--num-batches", "2", "--methods", ",".join(ALL), "--damping", "1e-4,1e-1", "--damping-mode", "relative",
             "--cg-max-iter", "30", "--out", out, "--quiet"])
        with h5py.File(out, "r") as f:
            fx.check(list(f["checkpoint"]["step"]) == [0, 5, 10], f"{task}: steps")
            status = f["method_status"].asstr()[:]
            gamma = f["gamma"][:]
            for m, method in enumerate(ALL):
                skipped = task == "t5-prompt" and method in LAYER
                fx.check(all(s.startswith("skipped") == skipped for s in status[:, m]), f"{task} {method}: status")
                if not skipped:
                    fx.check(np.isfinite(gamma[:, :, m, :]).all(), f"{task} {method}: finite γ")
        report = os.path.join(w, "report")
        run(["report", out, "--out", report])
        html = open(os.path.join(report, "index.html")).read()
        fx.check(os.path.exists(os.path.join(report, "quality_over_training.png")), f"{task}: figure")
        fx.check(("Methods skipped" in html) == (task == "t5-prompt"), f"{task}: skipped methods listed in the report")
    fx.close()


if __name__ == "__main__":
    main()
