#!/usr/bin/env python3
"""`fisheval toy` end to end: the toy problem of the paper's Figure 1 computed by fisheval's
own methods, checked against closed forms written here in numpy: the loss grid, the
direction fields of sgd, ng-dense, ef and iEF at the file's λ, and the trajectories
(θ ← θ − η d). Also the figure (a valid PNG, standalone from plot_results.py) and refusals."""
import os
import shutil
import subprocess
import sys
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_support as rs  # noqa: E402

rs.require_environment()
W = rs.work_dir("toy")
JZ = np.array([[1.0, 0.0], [1.0, 1.0]])  # logit Jacobian of f(x) = θ₀ + θ₁x at x = 0, 1


def directions(theta, lam):
    """Closed forms: r = J_z θ (targets 0), per-sample gradients J = diag(r) J_z, g = Jᵀ1."""
    r = JZ @ theta
    J = r[:, None] * JZ
    g = J.sum(axis=0)
    C = J @ J.T
    return {
        "sgd": g,
        "ng-dense": np.linalg.solve(JZ.T @ JZ + lam * np.eye(2), g),
        "ef": np.linalg.solve(J.T @ J + lam * np.eye(2), g),
        "ief": J.T @ np.linalg.solve(C + lam * np.eye(2), r ** 2),
    }


def load(path):
    with h5py.File(path, "r") as f:
        d = {k: f[k][()] for k in ("theta0", "theta1", "loss", "field", "trajectory", "trajectory_loss", "start")}
        d["method"] = [m.decode() if isinstance(m, bytes) else m for m in f["method"][()]]
        d["attrs"] = dict(f.attrs)
    return d


class ToyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = os.path.join(W, "toy")
        shutil.rmtree(cls.out, ignore_errors=True)
        rs.run(["toy", "--out", cls.out, "--grid", "9", "--steps", "40"])
        cls.toy = load(os.path.join(cls.out, "toy.h5"))

    def test_loss_and_fields_match_closed_forms(self):
        t = self.toy
        lam = float(t["attrs"]["damping"])
        self.assertGreater(lam, 0)
        self.assertEqual(t["method"], ["sgd", "ief", "ef", "ng-dense"])
        for i, t1 in enumerate(t["theta1"]):
            for j, t0 in enumerate(t["theta0"]):
                self.assertAlmostEqual(t["loss"][i, j], 0.5 * t0 ** 2 + 0.5 * (t0 + t1) ** 2, delta=1e-13)
                expect = directions(np.array([t0, t1]), lam)
                for m, name in enumerate(t["method"]):
                    got = t["field"][m, i, j]
                    self.assertLess(np.linalg.norm(got - expect[name]), 1e-8 * (1 + np.linalg.norm(expect[name])),
                                    (name, t0, t1))

    def test_trajectories_are_gradient_steps_of_each_method(self):
        t = self.toy
        lam, lr = float(t["attrs"]["damping"]), float(t["attrs"]["learning_rate"])
        T = t["trajectory"].shape[2] - 1
        self.assertEqual(T, 40)
        for m, name in enumerate(t["method"]):
            # EF's steps blow up near a zero-loss line (its point), which makes long EF
            # trajectories sensitive to rounding: its first steps are compared.
            horizon = 3 if name == "ef" else T
            for s, start in enumerate(t["start"]):
                theta = start.copy()
                for k in range(horizon + 1):
                    got = t["trajectory"][m, s, k]
                    self.assertLess(np.linalg.norm(got - theta), 1e-8 * (1 + np.linalg.norm(theta)), (name, s, k))
                    self.assertAlmostEqual(t["trajectory_loss"][m, s, k], 0.5 * np.sum((JZ @ got) ** 2),
                                           delta=1e-12 * (1 + t["trajectory_loss"][m, s, k]))
                    theta = theta - lr * directions(theta, lam)[name]
        # The picture's claim: NGD and iEF reach a much lower loss than EF from the same starts.
        final = t["trajectory_loss"][:, :, -1]
        ng, ef = t["method"].index("ng-dense"), t["method"].index("ef")
        self.assertLess(np.exp(np.log(final[ng]).mean()), np.exp(np.log(final[ef]).mean()))

    def test_ief_is_the_natural_gradient_at_zero_damping(self):
        out = os.path.join(W, "toy-zero")
        shutil.rmtree(out, ignore_errors=True)
        rs.run(["toy", "--out", out, "--damping", "0", "--grid", "6", "--steps", "5", "--no-plot"])
        t = load(os.path.join(out, "toy.h5"))
        ief, ng = t["method"].index("ief"), t["method"].index("ng-dense")
        T0, T1 = np.meshgrid(t["theta0"], t["theta1"])
        fitted = (np.abs(T0) < 1e-12) | (np.abs(T0 + T1) < 1e-12)  # a residual is 0: Gram matrix singular
        diff = np.linalg.norm(t["field"][ief] - t["field"][ng], axis=-1)
        self.assertLess(diff[~fitted].max(), 1e-9)
        self.assertFalse(os.path.exists(os.path.join(out, "toy.png")))

    def test_figure(self):
        png = os.path.join(self.out, "toy.png")
        w, h = rs.png_size(png)
        self.assertTrue(800 <= w <= 1500 and 700 <= h <= 1200, (w, h))
        self.assertGreater(rs.read_png(png)[..., :3].std(), 0.05)
        # Standalone: the script draws the same figure from the file.
        out = os.path.join(W, "toy-script")
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.run([sys.executable, rs.PLOT_SCRIPT, "toy", os.path.join(self.out, "toy.h5"), "--out", out],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(rs.png_size(os.path.join(out, "toy.png")), (w, h))

    def test_refusals_write_nothing(self):
        for args in (["--damping", "-1"], ["--lr", "0"], ["--grid", "1"], ["--methods", "sgd,nope"]):
            out = os.path.join(W, "toy-refused")
            shutil.rmtree(out, ignore_errors=True)
            p = rs.run(["toy", "--out", out, "--no-plot"] + args, check=False)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertFalse(os.path.exists(out), args)
        p = subprocess.run([sys.executable, rs.PLOT_SCRIPT, "toy", os.path.join(rs.FIXTURES, "series.h5"), "--out",
                            os.path.join(W, "toy-refused")], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a toy file", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
