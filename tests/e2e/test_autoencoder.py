#!/usr/bin/env python3
"""The Fishy paper's experiment through the command line: `fisheval train --model autoencoder`
on Fashion-MNIST pixel intensities with the layer-structured optimisers writes checkpoints
whose recorded losses a PyTorch forward of the saved parameters reproduces (binary cross-entropy
against byte/255 read from Debian's IDX files here), the paper's network is the default, and
`fisheval eval` scores the Shampoo family along the run."""
import csv
import gzip
import os
import subprocess
import sys
import unittest

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from common import SOURCE, run, work_dir

sys.path.insert(0, os.path.join(SOURCE, "scripts"))
import native_to_torchscript as nt  # noqa: E402

MNIST = os.environ.get("FISHEVAL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def images(split, count):
    """[count, 784] bytes of the IDX file, read without fisheval."""
    name = "train-images-idx3-ubyte.gz" if split == "train" else "t10k-images-idx3-ubyte.gz"
    with gzip.open(os.path.join(MNIST, name), "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=16)[: count * 784].reshape(count, 784)


def autoencoder_loss(ckpt, pixels):
    """Mean over images of Σ_pixels BCE, with the network written out from the saved state."""
    state, cfg = ckpt["state"], ckpt["config"]
    y = torch.tensor(pixels, dtype=torch.float64) / 255.0
    h = ((y - 0.2860) / 0.3530)  # the standardised inputs
    widths = cfg["widths"]
    code = widths.index(min(widths))
    for i in range(len(widths) + 1):
        h = h @ state[f"fc{i}.weight"].double().t() + state[f"fc{i}.bias"].double()
        if i < len(widths) and i != code:
            h = torch.tanh(h)
    return F.binary_cross_entropy_with_logits(h, y, reduction="none").sum(1).mean().item()


class Autoencoder(unittest.TestCase):
    def test_fishy_trains_and_the_recorded_losses_are_the_networks(self):
        out = work_dir("autoencoder_fishy")
        run(["train", "--model", "autoencoder", "--widths", "64,16,64", "--activation", "tanh", "--optimizer",
             "fishy", "--data", "fashion-mnist-pixels:train:512", "--test-data", "fashion-mnist-pixels:test:128",
             "--eval-samples", "256", "--epochs", "2", "--max-steps", "32", "--batch-size", "32", "--save-every", "16", "--out", out,
             "--overwrite", "--quiet"])
        with open(os.path.join(out, "manifest.csv")) as f:
            stages = list(csv.DictReader(f))
        self.assertEqual([int(s["step"]) for s in stages], [0, 16, 32])
        self.assertLess(float(stages[-1]["train_loss"]), 0.9 * float(stages[0]["train_loss"]))
        train_px, test_px = images("train", 256), images("test", 128)
        for s in stages:
            ckpt = nt.load_native(os.path.join(out, s["path"]))
            self.assertEqual(ckpt["model"], "autoencoder")
            self.assertEqual(ckpt["loss"], "binary-cross-entropy")
            self.assertEqual(ckpt["notes"]["optimizer"], "fishy")
            self.assertAlmostEqual(autoencoder_loss(ckpt, train_px), float(s["train_loss"]),
                                   delta=1e-4 * float(s["train_loss"]))
            self.assertAlmostEqual(autoencoder_loss(ckpt, test_px), float(s["test_loss"]),
                                   delta=1e-4 * float(s["test_loss"]))
        # The rebuilt nn.Sequential (native_to_torchscript) computes the same logits.
        ckpt = nt.load_native(os.path.join(out, stages[-1]["path"]))
        module = nt.build_module(ckpt)
        x = (torch.tensor(train_px[:8], dtype=torch.float32) / 255.0 - 0.2860) / 0.3530
        z = module(x.reshape(8, 1, 28, 28))
        self.assertEqual(tuple(z.shape), (8, 784))
        # Its TorchScript export (tapped by scripts/export_checkpoint.py) scores like the native model.
        native = os.path.join(out, stages[-1]["path"])
        twin = os.path.join(out, "last.ts.pt")
        proc = subprocess.run([sys.executable, os.path.join(SOURCE, "scripts", "native_to_torchscript.py"), native,
                               "--out", twin], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        results = {}
        for label, path in (("native", native), ("torchscript", twin)):
            h5 = os.path.join(out, f"twin.{label}.h5")
            run(["eval", "--checkpoints", path, "--data", "fashion-mnist-pixels:test:32", "--batch-size", "16",
                 "--num-batches", "2", "--methods", "sgd,ief,sf,kfac,shampoo,fim-shampoo,fishy", "--damping",
                 "1e-6,1e-2", "--damping-mode", "relative", "--out", h5, "--overwrite", "--quiet"])
            with h5py.File(h5, "r") as f:
                results[label] = {k: f[k][()] for k in ("gamma", "gamma_rel_sgd", "loss")}
        for key, value in results["native"].items():
            self.assertTrue(np.all(np.isfinite(value)), key)
            np.testing.assert_allclose(value, results["torchscript"][key], rtol=1e-8, atol=0, err_msg=key)

        # The Shampoo family scored along the run; without convolutions the Fishy classifier
        # samples in every (fully connected) layer: it is fishy.
        h5 = os.path.join(out, "gamma.h5")
        run(["eval", "--series", out, "--data", "fashion-mnist-pixels:train:512", "--methods",
             "sgd,shampoo,fim-shampoo,fishy,fishy-classifier", "--batch-size", "16", "--damping", "1e-6",
             "--damping-mode", "relative", "--out", h5, "--overwrite", "--quiet"])
        with h5py.File(h5, "r") as f:
            methods = [m.decode() for m in f["method"][()]]
            gamma = f["gamma"][()]  # [checkpoint, batch, method, damping]
            self.assertTrue(np.all(np.isfinite(gamma)))
            self.assertTrue(np.all(f["done"][()] == 1))
            np.testing.assert_array_equal(gamma[:, :, methods.index("fishy")],
                                          gamma[:, :, methods.index("fishy-classifier")])

    def test_the_papers_network_is_the_default(self):
        out = work_dir("autoencoder_paper")
        run(["train", "--model", "autoencoder", "--activation", "tanh", "--optimizer", "fishy", "--data",
             "fashion-mnist-pixels:train:64", "--test-data", "", "--eval-samples", "32", "--max-steps", "2",
             "--batch-size", "16", "--out", out, "--overwrite", "--quiet"])
        ckpt = nt.load_native(os.path.join(out, "step_0000002.pt"))
        self.assertEqual(ckpt["config"]["widths"], [1000] + [500] * 8 + [250, 30, 250] + [500] * 8 + [1000])
        self.assertEqual(sum(t.numel() for t in ckpt["state"].values()), 6344314)

    def test_bad_optimiser_settings_are_clear_errors(self):
        out = work_dir("autoencoder_bad")
        for flags, words in ((["--grafting", "rmsprop"], "--grafting"), (["--precond-every", "0"], "--precond-every"),
                             (["--stat-decay", "1"], "--stat-decay")):
            _, err = run(["train", "--model", "autoencoder", "--widths", "small", "--optimizer", "shampoo",
                          "--data", "fashion-mnist-pixels:train:64", "--max-steps", "1", "--out", out,
                          "--overwrite", "--quiet"] + flags, expect=2)
            self.assertIn(words, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
