#!/usr/bin/env python3
"""Bad input gives a clear message and a non-zero exit status, never a crash; inside a
series a bad checkpoint is marked failed and the rest is computed (exit 3); numbers that
overflow are recorded as non-finite with a warning; a singular Gram system is refused
under --singular error and solved by the pseudo-inverse (solve_status 1) by default."""
import os
import shutil
import sys
import unittest
import zipfile

import h5py
import numpy as np
import torch
import torch.nn as nn

import e2e_support as e2e

sys.path.insert(0, os.path.join(e2e.SOURCE, "scripts"))
import export_checkpoint as ex  # noqa: E402

CRASH_CODES = {-11, -6, -4, -8, 134, 139}


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.require_environment()
        cls.dir = e2e.workdir("bad_input")
        cls.ckpt = e2e.fixture("mlp_tanh_ce.pt")
        cls.data = e2e.fixture("mlp_tanh_ce.h5")

    def path(self, name):
        return os.path.join(self.dir, name)

    def eval(self, ckpts, data=None, extra=(), check=None, out=None):
        options = {"--data": data or self.data, "--batch-size": "8", "--num-batches": "2",
                   "--methods": "sgd,ef,ief", "--damping": "0,1e-3", "--out": out or self.path("out.h5")}
        extra = list(extra)
        for i in range(0, len(extra), 2):  # `extra` flags replace the defaults
            options[extra[i]] = extra[i + 1]
        args = ["eval", "--checkpoints"] + list(ckpts) + [x for kv in options.items() for x in kv]
        p = e2e.run(args + ["--quiet", "--overwrite"], check=check)
        self.assertNotIn(p.returncode, CRASH_CODES, p.stderr)
        return p

    def expect_error(self, p, code, *fragments):
        self.assertEqual(p.returncode, code, p.stderr)
        for fragment in fragments:
            self.assertIn(fragment, p.stderr)
        self.assertIn("error", p.stderr)

    # --- checkpoints ----------------------------------------------------------------------
    def test_missing_checkpoint(self):
        p = self.eval([self.path("nowhere.pt")])
        self.expect_error(p, 2, "cannot open checkpoint", "nowhere.pt")

    def test_corrupt_checkpoints(self):
        junk = self.path("junk.pt")
        with open(junk, "wb") as f:
            f.write(os.urandom(4096))
        self.expect_error(self.eval([junk]), 2, "junk.pt")
        badzip = self.path("badzip.pt")  # starts like a zip archive, is not one
        with open(badzip, "wb") as f:
            f.write(b"PK\x03\x04" + os.urandom(2000))
        self.expect_error(self.eval([badzip]), 2, "cannot load checkpoint", "not a readable PyTorch archive", "badzip.pt")
        notts = self.path("notts.pt")  # a valid zip, not a TorchScript archive
        with zipfile.ZipFile(notts, "w") as z:
            z.writestr("hello.txt", "not a model")
        self.expect_error(self.eval([notts]), 2, "cannot load checkpoint", "not a readable PyTorch archive")
        empty = self.path("empty.pt")
        open(empty, "wb").close()
        self.expect_error(self.eval([empty]), 2, "empty or truncated")

    def test_truncated_checkpoint(self):
        with open(self.ckpt, "rb") as f:
            whole = f.read()
        for frac in (0.1, 0.5, 0.9, 0.99):
            path = self.path(f"trunc{int(frac * 100)}.pt")
            with open(path, "wb") as f:
                f.write(whole[: int(len(whole) * frac)])
            self.expect_error(self.eval([path]), 2, path)

    def test_nan_parameters(self):
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).double()
        with torch.no_grad():
            model[2].weight[1, 3] = float("nan")
        path = self.path("nan.pt")
        ex.export_checkpoint(model, path, trainable="*")
        self.expect_error(self.eval([path]), 2, "contains NaN or infinite values", "2.weight")

    def test_no_trainable_parameters(self):
        self.expect_error(self.eval([self.ckpt], extra=["--params", "*nothing*"]), 2,
                          "--params '*nothing*' matches no parameter")
        model = nn.Sequential(nn.Linear(6, 4)).double()
        path = self.path("frozen.pt")
        ex.export_checkpoint(model, path, trainable="")
        self.expect_error(self.eval([path]), 2, "no trainable parameters")

    # --- data -----------------------------------------------------------------------------
    def test_data_shape_does_not_fit_model(self):
        # Images into an MLP of 6 inputs: the forward runs (on the last axis), the logits do not fit the targets.
        p = self.eval([self.ckpt], data=e2e.fixture("conv_ce.h5"))
        self.expect_error(p, 2, "targets of shape 8 do not fit logits of shape 8x1x6x4")
        # Token ids of 5 tokens into the same MLP: the forward itself fails.
        p = self.eval([self.ckpt], data=e2e.fixture("seq_ce.h5"))
        self.expect_error(p, 2, "the model's forward failed on its inputs (inputs of shape 8x5 (Long))")

    def test_targets_out_of_range(self):
        with h5py.File(self.data, "r") as f:
            x, y = f["inputs"][()], f["targets"][()]
        y = y.copy()
        y[3] = 9  # the model has 4 classes
        bad = self.path("range.h5")
        ex.export_data(bad, torch.from_numpy(x), torch.from_numpy(y))
        self.expect_error(self.eval([self.ckpt], data=bad), 2, "target 9 is out of range", "4 classes")
        y[3] = -7
        ex.export_data(bad, torch.from_numpy(x), torch.from_numpy(y))
        self.expect_error(self.eval([self.ckpt], data=bad), 2, "target -7 is out of range")

    def test_bad_data_files(self):
        self.expect_error(self.eval([self.ckpt], data=self.path("none.h5")), 2, "does not exist")
        trunc = self.path("trunc.h5")
        with open(self.data, "rb") as f:
            whole = f.read()
        with open(trunc, "wb") as f:
            f.write(whole[: len(whole) // 2])
        self.expect_error(self.eval([self.ckpt], data=trunc), 2, "trunc.h5")
        noy = self.path("notargets.h5")
        with h5py.File(noy, "w") as f:
            f["inputs"] = np.zeros((4, 6))
        self.expect_error(self.eval([self.ckpt], data=noy), 2, "has no dataset 'targets'")
        mismatch = self.path("mismatch.h5")
        with h5py.File(mismatch, "w") as f:
            f["inputs"] = np.zeros((10, 6))
            f["targets"] = np.zeros(9, dtype=np.int64)
        self.expect_error(self.eval([self.ckpt], data=mismatch), 2, "same first dimension")
        nan = self.path("naninputs.h5")
        with h5py.File(nan, "w") as f:
            f["inputs"] = np.full((10, 6), np.nan)
            f["targets"] = np.zeros(10, dtype=np.int64)
        self.expect_error(self.eval([self.ckpt], data=nan), 2, "NaN or infinite")
        huge = self.path("hugedecl.h5")  # declares far more data than memory holds (chunked, never written)
        with h5py.File(huge, "w") as f:
            f.create_dataset("inputs", shape=(1 << 40, 6), dtype="f8", chunks=(16, 6))
            f["targets"] = np.zeros(10, dtype=np.int64)
        self.expect_error(self.eval([self.ckpt], data=huge), 2, "does not fit in memory")

    def test_bad_manifest(self):
        m = self.path("manifest.csv")
        with open(m, "w") as f:
            f.write("path,step\nckpt.pt,notanumber\n")
        p = e2e.run(["eval", "--series", m, "--out", self.path("o.h5"), "--quiet"])
        self.expect_error(p, 2, "step 'notanumber' is not an integer")
        with open(m, "w") as f:
            f.write("file,epoch\nckpt.pt,1\n")
        p = e2e.run(["eval", "--series", m, "--out", self.path("o.h5"), "--quiet"])
        self.expect_error(p, 2, "columns 'path' and 'step'")

    def test_bad_result_files(self):
        junk = self.path("junk.h5")
        with open(junk, "wb") as f:
            f.write(os.urandom(3000))
        for cmd in (["show", junk], ["merge", "--out", self.path("m.h5"), junk]):
            p = e2e.run(cmd)
            self.expect_error(p, 2, "junk.h5")
        notres = self.path("notresult.h5")
        shutil.copy(self.data, notres)
        self.expect_error(e2e.run(["show", notres]), 2, "not a fisheval result file")

    # --- inside a run -----------------------------------------------------------------------
    def test_bad_checkpoint_inside_a_series(self):
        series = self.path("series")
        os.makedirs(series, exist_ok=True)
        src = e2e.fixture("series")
        shutil.copy(os.path.join(src, "ckpt_step0.pt"), series)
        shutil.copy(os.path.join(src, "ckpt_step100.pt"), series)
        with open(os.path.join(src, "ckpt_step50.pt"), "rb") as f:
            whole = f.read()
        with open(os.path.join(series, "ckpt_step50.pt"), "wb") as f:
            f.write(whole[: len(whole) // 3])  # truncated
        with open(os.path.join(series, "manifest.csv"), "w") as f:
            f.write("path,step\nckpt_step0.pt,0\nckpt_step50.pt,50\nckpt_step100.pt,100\n")
        common = ["--data", e2e.fixture("series.h5"), "--batch-size", "8", "--num-batches", "3",
                  "--methods", "sgd,ef,ief,sf", "--damping", "0,1e-3", "--seed", "5", "--quiet"]
        out = self.path("partial.h5")
        p = e2e.run(["eval", "--series", series, "--out", out] + common, check=3)
        self.assertIn("checkpoint 1", p.stderr)
        self.assertIn("failed and is skipped", p.stderr)
        self.assertIn("1 checkpoint(s) failed", p.stderr)
        ref = self.path("good.h5")  # the good checkpoints of the fixture series, unharmed
        e2e.run(["eval", "--series", os.path.join(src, "manifest.csv"), "--out", ref] + common, check=0)
        with h5py.File(out, "r") as f, h5py.File(ref, "r") as g:
            status = [s.decode() for s in f["checkpoint_status"][()]]
            self.assertEqual(status[0], "ok")
            self.assertTrue(status[1].startswith("failed: "), status)
            self.assertIn("ckpt_step50.pt", status[1])
            self.assertEqual(status[2], "ok")
            self.assertEqual(f["done"][()].tolist(), [[1, 1, 1], [0, 0, 0], [1, 1, 1]])
            self.assertTrue(np.all(np.isnan(f["gamma"][1])))
            for c in (0, 2):
                np.testing.assert_array_equal(f["gamma"][c], g["gamma"][c])
                np.testing.assert_array_equal(f["loss"][c], g["loss"][c])

    def relu_data(self):
        with h5py.File(e2e.fixture("mlp_relu_ce.h5"), "r") as f:
            return f["inputs"][()].copy(), f["targets"][()]

    def test_loss_overflow_is_recorded_not_fatal(self):
        ckpt = e2e.fixture("mlp_relu_ce.pt")
        x, y = self.relu_data()
        x[:8] = 1.7e308  # the first batch's pre-activations overflow; the second batch is ordinary
        # Independent check with PyTorch that this batch's loss is indeed not finite.
        z = torch.jit.load(ckpt)(torch.from_numpy(x[:8]))
        loss = torch.nn.functional.cross_entropy(z, torch.from_numpy(y[:8]), reduction="sum")
        self.assertFalse(bool(torch.isfinite(loss)), loss)
        bad = self.path("overflow.h5")
        ex.export_data(bad, torch.from_numpy(x), torch.from_numpy(y))
        out = self.path("overflow_out.h5")
        p = self.eval([ckpt], data=bad, out=out, check=0)
        self.assertIn("warning: checkpoint 0 batch 0: the loss or gradient is not finite", p.stderr)
        with h5py.File(out, "r") as f:
            self.assertEqual(f["done"][()].tolist(), [[1, 1]])
            self.assertFalse(np.isfinite(f["loss"][0, 0]))
            self.assertTrue(np.all(np.isnan(f["gamma"][0, 0])))
            self.assertTrue(np.isfinite(f["loss"][0, 1]))
            self.assertTrue(np.all(np.isfinite(f["gamma"][0, 1])))

    def test_large_but_finite_inputs(self):
        """Magnitudes where the loss is finite but squared gradient norms may overflow."""
        ckpt = e2e.fixture("mlp_relu_ce.pt")
        x, y = self.relu_data()
        for scale in (1e100, 1e160, 1e200):
            bad = self.path(f"large{int(np.log10(scale))}.h5")
            ex.export_data(bad, torch.from_numpy(x * scale), torch.from_numpy(y))
            out = self.path(f"large_out{int(np.log10(scale))}.h5")
            p = self.eval([ckpt], data=bad, out=out, extra=["--methods", "sgd,ef,ief,sf,ng-cg,ng-dense"])
            self.assertEqual(p.returncode, 0, p.stderr)
            with h5py.File(out, "r") as f:
                self.assertEqual(f["done"][()].tolist(), [[1, 1]])
                gamma, norms = f["gamma"][()], f["per_sample_grad_norm"][()]
            if not np.all(np.isfinite(norms)):  # ‖g‖ or the squared per-sample norms overflowed
                self.assertRegex(p.stderr, r"warning: checkpoint 0 batch \d: the (loss or gradient is not finite|"
                                           r"per-sample gradients overflow)")
            if not np.all(np.isfinite(gamma)):
                self.assertIn("warning", p.stderr)

    def test_singular_gram(self):
        with h5py.File(self.data, "r") as f:
            x, y = f["inputs"][()], f["targets"][()]
        dup = self.path("duplicates.h5")  # every sample twice: the Gram matrix has rank N/2
        ex.export_data(dup, torch.from_numpy(np.repeat(x[:8], 2, axis=0)), torch.from_numpy(np.repeat(y[:8], 2)))
        out = self.path("singular.h5")
        p = self.eval([self.ckpt], data=dup, out=out, extra=["--singular", "error", "--num-batches", "1"])
        self.expect_error(p, 1, "is singular at damping 0", "--singular pinv")
        self.assertFalse(os.path.exists(out))
        p = self.eval([self.ckpt], data=dup, out=out, extra=["--num-batches", "1"], check=0)
        with h5py.File(out, "r") as f:
            methods = [m.decode() for m in f["method"][()]]
            status, gamma = f["solve_status"][0, 0], f["gamma"][0, 0]
        for m in ("ef", "ief"):
            i = methods.index(m)
            self.assertEqual(status[i, 0], 1, f"{m} at λ=0: pseudo-inverse")
            self.assertTrue(np.isfinite(gamma[i, 0]))
            self.assertEqual(status[i, 1], 0, f"{m} at λ=1e-3: exact")
        self.assertEqual(status[methods.index("sgd"), 0], 0)

    def test_all_checkpoints_failing(self):
        p = self.eval([self.path("a_missing.pt"), self.path("b_missing.pt")])
        self.expect_error(p, 2, "2 checkpoint(s) failed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
