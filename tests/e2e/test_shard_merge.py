#!/usr/bin/env python3
"""Sharded sweeps: every shard count gives, after `fisheval merge`, a file identical to a
single-process run (every dataset except the seconds* timings, value by value, same
order); shards are chosen by --shard or by Slurm's array variables; merge refuses files
of different configurations and reports missing units."""
import os
import unittest

import h5py
import numpy as np

import e2e_support as e2e


class ShardMerge(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.require_environment()
        cls.dir = e2e.workdir("shard_merge")
        cls.single = os.path.join(cls.dir, "single.h5")
        e2e.run(e2e.series_args(cls.single), check=0)

    def shard_and_merge(self, count, env_for=None):
        out = os.path.join(self.dir, f"n{count}.h5")
        shards = []
        for i in range(1, count + 1):
            if env_for:
                p = e2e.run(e2e.series_args(out), env=env_for(i, count), check=0)
            else:
                p = e2e.run(e2e.series_args(out, ["--shard", f"{i}/{count}"]), check=0)
            width = len(str(count))
            shard = os.path.join(self.dir, f"n{count}.shard-{i:0{width}d}-of-{count}.h5")
            self.assertTrue(os.path.exists(shard), p.stderr)
            shards.append(shard)
        merged = os.path.join(self.dir, f"merged{count}.h5")
        e2e.run(["merge", "--out", merged] + shards[::-1], check=0)  # order of the inputs does not matter
        return shards, merged

    def test_single_run_is_complete(self):
        with h5py.File(self.single, "r") as f:
            self.assertTrue(np.all(f["done"][()] == 1))
            self.assertEqual([s.decode() for s in f["checkpoint_status"][()]], ["ok"] * 3)
            self.assertEqual(f["gamma"].shape, (3, 5, 6, 4))
            self.assertTrue(np.all(np.isfinite(f["gamma"][()])))

    def test_merge_equals_single_run(self):
        for count in (2, 4, 7):
            with self.subTest(shards=count):
                shards, merged = self.shard_and_merge(count)
                self.assertEqual(e2e.result_differences(merged, self.single), [])
                # Each shard holds a contiguous, balanced block of (checkpoint, batch) units.
                sizes = []
                for s in shards:
                    with h5py.File(s, "r") as f:
                        done = f["done"][()].ravel()
                    idx = np.flatnonzero(done)
                    self.assertTrue(len(idx) == 0 or np.all(np.diff(idx) == 1), s)
                    sizes.append(len(idx))
                self.assertEqual(sum(sizes), 15)
                self.assertLessEqual(max(sizes) - min(sizes), 1)

    def test_more_shards_than_units(self):
        shards, merged = self.shard_and_merge(17)
        self.assertEqual(e2e.result_differences(merged, self.single), [])

    def test_shard_from_slurm_array_variables(self):
        # sbatch --array=1-3 sets SLURM_ARRAY_TASK_MIN=1: task IDs 1..3 are shards 1..3.
        env = lambda i, n: {"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": str(n),
                            "SLURM_ARRAY_TASK_MIN": "1"}
        _, merged = self.shard_and_merge(3, env_for=env)
        self.assertEqual(e2e.result_differences(merged, self.single), [])
        with h5py.File(os.path.join(self.dir, "n3.shard-2-of-3.h5"), "r") as f:
            self.assertEqual(f.attrs["shard"], "2/3")

    def test_merge_refuses_other_configuration(self):
        other = os.path.join(self.dir, "other.h5")
        args = e2e.series_args(other, ["--shard", "2/2"])
        args[args.index("--damping") + 1] = "0,1e-3"  # another damping grid: another configuration
        e2e.run(args, check=0)
        mine = os.path.join(self.dir, "mine.h5")
        e2e.run(e2e.series_args(mine, ["--shard", "1/2"]), check=0)
        out = os.path.join(self.dir, "bad_merge.h5")
        p = e2e.run(["merge", "--out", out, os.path.join(self.dir, "mine.shard-1-of-2.h5"),
                     os.path.join(self.dir, "other.shard-2-of-2.h5")], check=2)
        self.assertIn("different configurations", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_merge_reports_missing_shard(self):
        e2e.run(e2e.series_args(os.path.join(self.dir, "part.h5"), ["--shard", "1/3"]), check=0)
        out = os.path.join(self.dir, "partial_merge.h5")
        p = e2e.run(["merge", "--out", out, os.path.join(self.dir, "part.shard-1-of-3.h5")], check=3)
        self.assertIn("5 of 15 units present", p.stderr)
        with h5py.File(out, "r") as f:
            self.assertEqual(int(f["done"][()].sum()), 5)
            self.assertTrue(np.all(np.isnan(f["gamma"][2])))  # not computed: NaN, never zero

    def test_bad_shard_flag(self):
        for flag in ("0/3", "4/3", "x", "1/0", "1/2/3"):
            p = e2e.run(e2e.series_args(os.path.join(self.dir, "bad.h5"), ["--shard", flag]), check=2)
            self.assertIn("--shard", p.stderr)
        p = e2e.run(e2e.series_args(os.path.join(self.dir, "bad.h5")),
                    env={"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "3"}, check=2)
        self.assertIn("SLURM_ARRAY_TASK_ID", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
