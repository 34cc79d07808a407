#!/usr/bin/env python3
"""The native checkpoints of `fisheval train` against their TorchScript twins.

Trains a small MLP and CNN with the real CLI, reads the native checkpoints with
Python's torch.load, rebuilds each as an nn.Sequential (scripts/native_to_torchscript.py),
checks it computes the same logits as the native model's recorded forward, exports the
TorchScript twin with scripts/export_checkpoint.py, and runs `fisheval eval` on both:
every measure must agree (same trainable parameters, same γ values).
"""
import os
import shutil
import subprocess
import sys
import unittest

import h5py
import numpy as np
import torch

SOURCE = os.environ.get("FISHEVAL_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("FISHEVAL_BINARY", "fisheval")
WORK = os.path.join(os.environ.get("FISHEVAL_WORK", "/tmp/fisheval-e2e"), "native_vs_torchscript")
sys.path.insert(0, os.path.join(SOURCE, "scripts"))
import native_to_torchscript as nt  # noqa: E402


def run(*args, expect=0):
    proc = subprocess.run([BINARY, *args], capture_output=True, text=True)
    if proc.returncode != expect:
        raise AssertionError(f"fisheval {' '.join(args)} exited {proc.returncode} (expected {expect}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def fashion_test_inputs(n):
    """The first n Fashion-MNIST test images, standardised as fisheval does."""
    import gzip
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    return (torch.from_numpy(raw.astype(np.float32)) / 255.0 - 0.2860) / 0.3530


class NativeVsTorchScript(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        shutil.rmtree(WORK, ignore_errors=True)
        os.makedirs(WORK)

    def train(self, name, *model_flags):
        out = os.path.join(WORK, name)
        run("train", *model_flags, "--optimizer", "ief", "--data", "fashion-mnist:train:320",
            "--test-data", "fashion-mnist:test:64", "--eval-samples", "320", "--epochs", "1", "--batch-size", "32",
            "--save-every", "5", "--out", out, "--quiet")
        with open(os.path.join(out, "manifest.csv")) as f:
            rows = [line.strip().split(",") for line in f]
        header, rows = rows[0], rows[1:]
        self.assertEqual([int(r[header.index("step")]) for r in rows], [0, 5, 10])
        return os.path.join(out, rows[-1][header.index("path")])

    def compare(self, native, methods):
        ckpt = nt.load_native(native)
        self.assertEqual(ckpt["version"], 1)
        self.assertEqual(ckpt["loss"], "cross-entropy")
        self.assertEqual(ckpt["step"], 10)
        self.assertIn("test_accuracy", ckpt["metrics"])
        self.assertEqual(ckpt["notes"]["optimizer"], "ief")
        self.assertEqual(list(ckpt["state"]), [n for n in ckpt["state"]])  # an ordinary dict of tensors
        model = nt.build_module(ckpt)
        self.assertEqual([n for n, _ in model.named_parameters()], list(ckpt["state"]))
        twin = native.replace(".pt", ".ts.pt")
        proc = subprocess.run([sys.executable, os.path.join(SOURCE, "scripts", "native_to_torchscript.py"), native,
                               "--out", twin], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # The rebuilt network computes what was trained: its test accuracy on the stage's 64
        # test samples is the one fisheval recorded.
        with torch.no_grad():
            acc = (model(fashion_test_inputs(64)).argmax(1) == self.labels(64)).double().mean().item()
        self.assertAlmostEqual(acc, ckpt["metrics"]["test_accuracy"], places=12)
        results = {}
        for label, path in (("native", native), ("torchscript", twin)):
            out = os.path.join(os.path.dirname(native), f"results.{label}.h5")
            run("eval", "--checkpoints", path, "--data", "fashion-mnist:test:96", "--batch-size", "24",
                "--num-batches", "3", "--methods", methods, "--damping", "1e-6,1e-3,1", "--out", out, "--quiet")
            with h5py.File(out, "r") as f:
                results[label] = {k: f[k][()] for k in ("gamma", "gamma_rel_sgd", "cosine_sgd", "d_dot_g", "loss",
                                                        "per_sample_grad_norm", "logit_grad_norm_sq", "gamma_sgd")}
        for key, value in results["native"].items():
            other = results["torchscript"][key]
            self.assertEqual(value.shape, other.shape, key)
            self.assertTrue(np.all(np.isfinite(value)), key)
            np.testing.assert_allclose(value, other, rtol=1e-9, atol=0, err_msg=key)

    def labels(self, n):
        import gzip
        with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
            return torch.from_numpy(np.frombuffer(f.read(), dtype=np.uint8, offset=8)[:n].astype(np.int64))

    def test_mlp(self):
        native = self.train("mlp", "--model", "mlp", "--widths", "24,12", "--activation", "tanh")
        self.compare(native, "sgd,ef,ief,ief-param,sf,ng-cg")

    def test_cnn(self):
        native = self.train("cnn", "--model", "cnn", "--channels", "4,6", "--hidden", "16", "--activation", "relu")
        self.compare(native, "sgd,ef,ief,sf")

    def test_bad_input(self):
        run("train", "--optimizer", "adam", "--out", os.path.join(WORK, "bad"), expect=2)
        run("train", "--model", "resnet", "--out", os.path.join(WORK, "bad"), expect=2)
        out = os.path.join(WORK, "twice")
        args = ("train", "--widths", "8", "--data", "fashion-mnist:train:64", "--test-data", "", "--max-steps", "1",
                "--out", out, "--quiet")
        run(*args)
        proc = run(*args, expect=2)
        self.assertIn("--overwrite", proc.stderr)
        run(*args, "--overwrite")


if __name__ == "__main__":
    unittest.main()
