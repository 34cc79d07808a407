#!/usr/bin/env python3
"""Resume: a sweep killed with SIGKILL at random moments (several times in a row) and
started again with the same command computes only what is missing and ends with the same
file as an uninterrupted run (every dataset except the seconds* timings). Finished units
are on disk (OUT.parts/) while the run is still going. A full disk (a small tmpfs when
this process may mount one, and a file-size limit, RLIMIT_FSIZE, always) stops the run
with a clear message and keeps the finished units, which a later run imports."""
import glob
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import time
import unittest

import h5py
import numpy as np

import e2e_support as e2e

SEED = int(os.environ.get("FISHEVAL_RESUME_SEED", "20240611"))


def sweep(out, extra=()):
    # 3 checkpoints × 12 batches = 36 units; slow enough per unit to be killed mid-way.
    return ["eval", "--series", e2e.fixture("series"), "--data", e2e.fixture("series.h5"), "--batch-size", "16",
            "--num-batches", "12", "--batch-sampling", "random", "--seed", "3",
            "--methods", "sgd,ef,ief,ief-param,sf,ng-cg,ng-dense", "--damping", "0,1e-6,1e-3,1", "--mc-samples", "2",
            "--cg-max-iter", "60", "--threads", "1", "--quiet", "--out", out] + list(extra)


def summary(stderr):
    m = re.search(r"(\d+) units \((\d+) computed, (\d+) resumed from disk\)", stderr)
    assert m, stderr
    return tuple(int(x) for x in m.groups())


def parts_of(out):
    return sorted(glob.glob(out + ".parts/unit-*-*.h5"))


class Resume(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.require_environment()
        cls.dir = e2e.workdir("resume")
        cls.ref = os.path.join(cls.dir, "ref.h5")
        t0 = time.monotonic()
        e2e.run(["methods"], check=0)
        cls.startup_seconds = time.monotonic() - t0  # loading the binary and LibTorch
        t0 = time.monotonic()
        p = e2e.run(sweep(cls.ref), check=0)
        cls.full_seconds = time.monotonic() - t0
        cls.unit_seconds = max(cls.full_seconds - cls.startup_seconds, 0.1) / 36
        assert summary(p.stderr) == (36, 36, 0), p.stderr
        print(f"uninterrupted run: {cls.full_seconds:.2f} s (start-up {cls.startup_seconds:.2f} s); "
              f"random seed {SEED}", flush=True)

    def kill_at_random(self, rng, args, parts_glob, total):
        """Starts `fisheval ARGS` and SIGKILLs it at a random moment: one time in five during
        start-up, else once a random number of further units is on disk plus a random part
        of a unit's time (so inside the next unit, or while its part is being written).
        The number of further units is drawn from the first half of what is missing, so
        that several kills in a row fit in one sweep however fast the machine is (units
        differ in cost: waiting for the last unit plus an average unit's time can let the
        run finish). True if it was killed before it finished."""
        proc = subprocess.Popen([e2e.BINARY] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.1, 1.0) * self.startup_seconds)
        else:
            done = len(glob.glob(parts_glob))
            target = min(rng.randint(done + 1, max(done + 1, done + (total - done) // 2)), total - 1)
            while proc.poll() is None and len(glob.glob(parts_glob)) < target:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 1.0) * self.unit_seconds)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        return killed

    def test_killed_at_random_moments(self):
        rng = random.Random(SEED)
        out = os.path.join(self.dir, "killed.h5")
        kills, seen_parts = 0, []
        for attempt in range(12):
            kills += self.kill_at_random(rng, sweep(out), out + ".parts/unit-*-*.h5", 36)
            parts = parts_of(out)
            seen_parts.append(len(parts))
            for part in parts:  # every part on disk is complete and readable
                with h5py.File(part, "r") as f:
                    self.assertEqual(f["gamma"].shape, (7, 4))
            if os.path.exists(out) or kills == 6:
                break
        print(f"{kills} kills; units on disk after each: {seen_parts}", flush=True)
        self.assertGreaterEqual(kills, 3)
        self.assertTrue(any(0 < n < 36 for n in seen_parts), seen_parts)
        self.assertEqual(seen_parts, sorted(seen_parts))  # finished units are never lost
        finished_before = os.path.exists(out)
        p = e2e.run(sweep(out), check=0)
        total, computed, resumed = summary(p.stderr)
        self.assertEqual(total, 36)
        self.assertEqual(resumed, 36 if finished_before else seen_parts[-1])  # only what was missing is computed
        self.assertEqual(computed + resumed, 36)
        self.assertEqual(e2e.result_differences(out, self.ref), [])
        self.assertFalse(os.path.exists(out + ".parts"))

    def test_units_are_on_disk_while_running(self):
        out = os.path.join(self.dir, "watched.h5")
        proc = subprocess.Popen([e2e.BINARY] + sweep(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        counts = []
        while proc.poll() is None:
            counts.append(len(parts_of(out)))
            time.sleep(0.02)
        self.assertEqual(proc.returncode, 0)
        self.assertTrue(any(0 < c < 36 for c in counts), counts)
        # Until the final file is assembled (and OUT.parts/ removed), the count only grows.
        peak = counts.index(max(counts))
        self.assertEqual(counts[:peak + 1], sorted(counts[:peak + 1]))
        self.assertTrue(os.path.exists(out))

    def test_rerun_of_a_finished_run_computes_nothing(self):
        out = os.path.join(self.dir, "twice.h5")
        shutil.copy(self.ref, out)
        p = e2e.run(sweep(out), check=0)
        self.assertEqual(summary(p.stderr), (36, 0, 36))
        self.assertEqual(e2e.result_differences(out, self.ref), [])

    def test_sharded_run_killed_and_resumed(self):
        rng = random.Random(SEED + 1)
        shard_ref = os.path.join(self.dir, "shard_ref.h5")
        e2e.run(sweep(shard_ref, ["--shard", "2/3"]), check=0)
        out = os.path.join(self.dir, "shard_killed.h5")
        for _ in range(3):
            self.kill_at_random(rng, sweep(out, ["--shard", "2/3"]),
                                os.path.join(self.dir, "shard_killed.shard-2-of-3.h5.parts/unit-*-*.h5"), 12)
        e2e.run(sweep(out, ["--shard", "2/3"]), check=0)
        self.assertEqual(e2e.result_differences(os.path.join(self.dir, "shard_killed.shard-2-of-3.h5"),
                                                os.path.join(self.dir, "shard_ref.shard-2-of-3.h5")), [])

    def test_resume_refuses_another_configuration(self):
        out = os.path.join(self.dir, "other.h5")
        shutil.copy(self.ref, out)
        args = sweep(out)
        args[args.index("--seed") + 1] = "4"  # another seed: another configuration
        p = e2e.run(args, check=2)
        self.assertIn("different configuration", p.stderr)
        self.assertIn("--overwrite", p.stderr)
        e2e.run(args + ["--overwrite"], check=0)

    def test_file_size_limit(self):
        """RLIMIT_FSIZE (ulimit -f) below the size of the final file but above a unit's."""
        out = os.path.join(self.dir, "fsize.h5")
        limit = os.path.getsize(self.ref) // 2
        proc = subprocess.run([e2e.BINARY] + sweep(out), capture_output=True, text=True,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn(f"the file-size limit (ulimit -f) is {limit} bytes", proc.stderr)
        self.assertIn(f"cannot write '{out}'", proc.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertEqual(len(parts_of(out)), 36)  # every finished unit kept
        p = e2e.run(sweep(out), check=0)
        self.assertEqual(summary(p.stderr), (36, 0, 36))
        self.assertEqual(e2e.result_differences(out, self.ref), [])

    def test_full_disk(self):
        """A real full disk: a small tmpfs (needs root / CAP_SYS_ADMIN)."""
        mnt = os.path.join(self.dir, "small-disk")
        os.makedirs(mnt)
        size = os.path.getsize(self.ref) // 2 + 64 * 1024
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); test_file_size_limit covers "
                          f"the same path with RLIMIT_FSIZE")
        try:
            out = os.path.join(mnt, "full.h5")
            p = e2e.run(sweep(out), check=1)
            self.assertRegex(p.stderr, r"cannot write '.*': .*the disk holding '.*' is full \(\d+ bytes free\)")
            done = len(parts_of(out))
            print(f"tmpfs of {size} bytes: {done} units kept; message: {p.stderr.strip().splitlines()[-1]}",
                  flush=True)
            self.assertGreater(done, 0)
            for part in parts_of(out):
                with h5py.File(part, "r") as f:
                    self.assertTrue(np.isfinite(f["gamma"][()]).all())
            self.assertEqual(glob.glob(out + ".parts/*.tmp"), [])  # no half-written file left
            subprocess.run(["mount", "-o", f"remount,size={size * 16}", mnt], check=True)  # room for every part and the result
            p = e2e.run(sweep(out), check=0)
            total, computed, resumed = summary(p.stderr)
            self.assertEqual((total, resumed), (36, done))
            self.assertEqual(e2e.result_differences(out, self.ref), [])
        finally:
            subprocess.run(["umount", mnt])


if __name__ == "__main__":
    unittest.main(verbosity=2)
