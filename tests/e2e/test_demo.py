#!/usr/bin/env python3
"""`fisheval demo`, scaled down: it trains, evaluates every method that `fisheval methods`
lists (ng-dense left out for the MLP's P, with its reason), writes the results and the
summary table, and says where they are."""
import csv
import os
import shutil
import subprocess
import unittest

import h5py
import numpy as np

BINARY = os.environ.get("FISHEVAL_BINARY", "fisheval")
WORK = os.path.join(os.environ.get("FISHEVAL_WORK", "/tmp/fisheval-e2e"), "demo")


class Demo(unittest.TestCase):
    def test_small_demo(self):
        shutil.rmtree(WORK, ignore_errors=True)
        args = [BINARY, "demo", "--out", WORK, "--train-samples", "640", "--epochs", "1", "--save-epochs", "0.5",
                "--num-batches", "2", "--batch-size", "16", "--damping-grid", "1e-4:1:2", "--cg-max-iter", "5"]
        proc = subprocess.run(args, capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        listed = [line.split()[0] for line in subprocess.run([BINARY, "methods"], capture_output=True,
                                                             text=True).stdout.splitlines() if line.strip()]
        self.assertIn("left out ng-dense: P = 109386", proc.stderr)
        # A method that cannot run on the model is left out with its reason, not a failure.
        left_out = [line.split("left out ", 1)[1].split(":")[0] for line in proc.stderr.splitlines()
                    if line.startswith("fisheval demo: left out ")]
        with open(os.path.join(WORK, "series", "manifest.csv")) as f:
            stages = list(csv.DictReader(f))
        self.assertEqual([int(s["step"]) for s in stages], [0, 10, 20])
        self.assertLess(float(stages[-1]["train_loss"]), float(stages[0]["train_loss"]))
        with h5py.File(os.path.join(WORK, "results.h5"), "r") as f:
            methods = [m.decode() for m in f["method"][()]]
            self.assertEqual(methods, [m for m in listed if m not in left_out])
            self.assertTrue({"sgd", "ef", "ief", "sf", "ng-cg"} <= set(methods))
            self.assertEqual(f["gamma"].shape, (3, 2, len(methods), 2))
            self.assertTrue(np.all(f["done"][()] == 1))
            self.assertTrue(np.all(np.isfinite(f["gamma_rel_sgd"][()])))
        with open(os.path.join(WORK, "summary.txt")) as f:
            table = f.read()
        self.assertIn(table, proc.stdout)
        self.assertIn("gamma_rel_sgd: mean ± std over batches", table)
        self.assertIn(os.path.join(WORK, "results.h5"), proc.stdout)
        # Run again into the same folder: the demo replaces its own outputs.
        proc = subprocess.run(args + ["--quiet"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)


if __name__ == "__main__":
    unittest.main()
