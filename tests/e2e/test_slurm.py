#!/usr/bin/env python3
"""A real Slurm run: a one-node cluster on this machine (scripts/slurm/local_cluster.sh,
Debian's slurm-wlm and munge), the fixture series swept by an array job of 3 shards
(scripts/slurm/submit.sh: sweep.sbatch + a dependent merge.sbatch), the merged file
compared value by value with a single-process run; then one shard's result deleted and
the same submission run again, which recomputes only that shard.

Needs root and slurm-wlm + munge (scripts/setup.sh installs them). Without them the test
prints why and passes without running: docs/CLUSTER.md records a real run's output.
With SLURM_CONF set to a running cluster, that cluster is used and left running."""
import glob
import os
import shutil
import subprocess
import sys
import unittest

import h5py
import numpy as np

import e2e_support as e2e

SLURM = os.path.join(e2e.SOURCE, "scripts", "slurm")


def missing_requirements():
    if os.geteuid() != 0 and not os.environ.get("SLURM_CONF"):
        return "not root (the local cluster's slurmd and munged need root)"
    for tool in ("sbatch", "squeue", "slurmctld", "slurmd", "munged"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (apt-get install slurm-wlm munge)"
    return None


class Slurm(unittest.TestCase):
    started = False

    @classmethod
    def setUpClass(cls):
        e2e.require_environment()
        why = missing_requirements()
        if why:
            raise unittest.SkipTest(f"SKIPPED: the Slurm test did not run: {why}")
        cls.dir = e2e.workdir("slurm")
        cls.env = dict(os.environ)
        if not cls.env.get("SLURM_CONF"):
            state = os.path.join(cls.dir, "cluster")
            cls.env["FISHEVAL_SLURM_DIR"] = state
            p = subprocess.run(["bash", os.path.join(SLURM, "local_cluster.sh"), "start"], env=cls.env,
                               capture_output=True, text=True, timeout=180)
            print(p.stdout + p.stderr, flush=True)
            if p.returncode != 0:
                raise AssertionError("local_cluster.sh start failed")
            cls.env["SLURM_CONF"] = os.path.join(state, "slurm.conf")
            cls.started = True
        cls.env["FISHEVAL"] = e2e.BINARY
        for k in [k for k in cls.env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
            del cls.env[k]

    @classmethod
    def tearDownClass(cls):
        if cls.started:
            subprocess.run(["bash", os.path.join(SLURM, "local_cluster.sh"), "stop"], env=cls.env)

    def submit(self, cfg, shards):
        p = subprocess.run(["bash", os.path.join(SLURM, "submit.sh"), cfg, str(shards)], cwd=self.dir,
                           env=dict(self.env, WAIT="1"), capture_output=True, text=True, timeout=900)
        print(p.stdout + p.stderr, flush=True)
        for log in sorted(glob.glob(os.path.join(self.dir, "fisheval-*.out"))):
            with open(log) as f:
                print(f"--- {os.path.basename(log)}\n{f.read()}", flush=True)
            os.remove(log)
        self.assertEqual(p.returncode, 0)

    def test_array_job_and_merge_equal_single_run(self):
        single = os.path.join(self.dir, "single.h5")
        args = e2e.series_args(single)
        # The same LibTorch/BLAS thread count as each array task (sweep.sbatch: --cpus-per-task=2,
        # --threads $SLURM_CPUS_PER_TASK): an optimised BLAS may round differently with another
        # thread count, and the comparison below is bit for bit.
        e2e.run(args + ["--threads", "2"], check=0)
        merged = os.path.join(self.dir, "sweep.h5")
        lines, i = [], 1
        while i < len(args):
            if args[i] == "--quiet":
                lines.append("quiet = true")
                i += 1
            else:
                lines.append(f"{args[i][2:]} = {merged if args[i] == '--out' else args[i + 1]}")
                i += 2
        cfg = os.path.join(self.dir, "sweep.ini")
        with open(cfg, "w") as f:
            f.write("# the sweep of test_slurm.py\n" + "\n".join(lines) + "\n")
        self.submit(cfg, 3)
        self.assertEqual(e2e.result_differences(merged, single), [])
        with h5py.File(merged, "r") as f:
            self.assertTrue(np.all(f["done"][()] == 1))
            print("merged gamma[checkpoint 2, batch 4]:\n", f["gamma"][2, 4], flush=True)
        # Resume: a lost shard is recomputed by submitting the same sweep again.
        os.remove(os.path.join(self.dir, "sweep.shard-2-of-3.h5"))
        os.remove(merged)
        self.submit(cfg, 3)
        self.assertEqual(e2e.result_differences(merged, single), [])


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
