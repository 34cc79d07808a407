#!/usr/bin/env python3
"""The command line's own behaviour: `fisheval --version` reports the build (LibTorch 2.x with
CUDA compiled in, BLAS, threads), and fisheval makes LibTorch's OpenMP threads wait passively
(by running itself again with OMP_WAIT_POLICY=passive) unless the user chose a policy."""
import os
import subprocess
import unittest

from common import BINARY


def version(env):
    p = subprocess.run([BINARY, "--version"], capture_output=True, text=True, env=env, check=True)
    return dict(line.split(None, 1) for line in p.stdout.splitlines())


class CommandLine(unittest.TestCase):
    def test_version_reports_the_build(self):
        v = version(dict(os.environ))
        for key in ("fisheval_version", "torch_version", "cuda_compiled", "cuda_runtime", "cuda_devices", "blas",
                    "lapack", "threads", "omp_wait_policy"):
            self.assertIn(key, v)
        self.assertTrue(v["torch_version"].startswith("2."), v["torch_version"])
        self.assertEqual(v["cuda_compiled"], "yes")

    def test_openmp_waits_passively_unless_chosen(self):
        env = {k: val for k, val in os.environ.items() if k != "OMP_WAIT_POLICY"}
        self.assertEqual(version(env)["omp_wait_policy"], "passive")
        self.assertEqual(version(dict(env, OMP_WAIT_POLICY="active"))["omp_wait_policy"], "active")


if __name__ == "__main__":
    unittest.main(verbosity=2)
