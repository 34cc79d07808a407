#!/usr/bin/env python3
"""scripts/same_results.py, the exact comparison of two result files: two runs of one
command are the same results (timings and the output path aside); one changed γ cell, or
a changed setting, is a difference it names."""
import os
import shutil
import subprocess
import sys
import unittest

import h5py

from common import SOURCE, fixture, run, work_dir

SCRIPT = os.path.join(SOURCE, "scripts", "same_results.py")


def compare(a, b):
    p = subprocess.run([sys.executable, SCRIPT, a, b], capture_output=True, text=True)
    return p.returncode, p.stdout


class SameResults(unittest.TestCase):
    def test_two_runs_are_the_same_and_a_changed_cell_is_not(self):
        wd = work_dir("same_results")
        outs = []
        for k in range(2):
            out = os.path.join(wd, f"r{k}.h5")
            run(["eval", "--checkpoints", fixture("mlp_tanh_ce.pt"), "--data", fixture("mlp_tanh_ce.h5"),
                 "--methods", "sgd,ef,ief,sf,kfac,shampoo,ng-cg", "--batch-size", "6", "--damping", "1e-3,1",
                 "--out", out, "--overwrite", "--quiet"])
            outs.append(out)
        status, text = compare(*outs)
        self.assertEqual(status, 0, text)
        self.assertIn("same results", text)

        changed = os.path.join(wd, "changed.h5")
        shutil.copy(outs[1], changed)
        with h5py.File(changed, "r+") as f:
            g = f["gamma"][()]
            g.flat[3] = g.flat[3] * (1 + 2 ** -52)  # one bit of one cell
            f["gamma"][...] = g
        status, text = compare(outs[0], changed)
        self.assertEqual(status, 1, text)
        self.assertIn("dataset gamma differs", text)

        other = os.path.join(wd, "other.h5")
        run(["eval", "--checkpoints", fixture("mlp_tanh_ce.pt"), "--data", fixture("mlp_tanh_ce.h5"),
             "--methods", "sgd,ef,ief,sf,kfac,shampoo,ng-cg", "--batch-size", "6", "--damping", "1e-3,1",
             "--seed", "1", "--out", other, "--overwrite", "--quiet"])
        status, text = compare(outs[0], other)
        self.assertEqual(status, 1, text)
        self.assertIn("seed", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
