#!/usr/bin/env python3
"""Turn a native fisheval checkpoint (written by `fisheval train`) into PyTorch.

A native checkpoint is a dict that torch.load reads (format "fisheval-native"):
model, config, state (the parameters), trainable, loss, step, epoch, metrics, notes.
For the `mlp`, `autoencoder` and `cnn` models this script rebuilds the same network as an
nn.Sequential with the same parameter names, and can export it as a TorchScript
checkpoint with scripts/export_checkpoint.py (same trainable parameters, same loss):

    .venv/bin/python scripts/native_to_torchscript.py step_0000100.pt --out step_0000100.ts.pt

Python use:
    sys.path.insert(0, "scripts"); import native_to_torchscript as nt
    ckpt = nt.load_native("step_0000100.pt"); model = nt.build_module(ckpt)
"""
import argparse
import os
import sys
from collections import OrderedDict

import torch
import torch.jit._pickle
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_checkpoint as ex  # noqa: E402

# The helpers LibTorch's pickler names in a native checkpoint (torch.load's weights_only mode
# refuses every global it was not given).
LIBTORCH_PICKLE_GLOBALS = [getattr(torch.jit._pickle, name) for name in dir(torch.jit._pickle)
                           if name.startswith(("build_", "restore_"))]
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


def load_native(path: str) -> dict:
    """The checkpoint's dict; ValueError when the file is not a native fisheval checkpoint."""
    # A native checkpoint is a dict pickled by LibTorch (torch::pickle_save), whose containers
    # carry type tags and typed lists: those globals are allowed, everything else stays refused.
    with torch.serialization.safe_globals(LIBTORCH_PICKLE_GLOBALS):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "fisheval-native":
        raise ValueError(f"{path} is not a native fisheval checkpoint")
    return ckpt


def build_module(ckpt: dict) -> nn.Sequential:
    """The network of an mlp, autoencoder or cnn checkpoint as nn.Sequential, parameters loaded (strict)."""
    cfg = ckpt["config"]
    act = ACTIVATIONS[cfg["activation"]]
    c, h, w = cfg["input_shape"]
    layers = OrderedDict()
    if ckpt["model"] == "mlp":
        layers["flatten"] = nn.Flatten()
        width = c * h * w
        for i, out in enumerate(cfg["widths"]):
            layers[f"fc{i}"] = nn.Linear(width, out)
            layers[f"act{i}"] = act()
            width = out
        layers[f"fc{len(cfg['widths'])}"] = nn.Linear(width, cfg["num_classes"])
    elif ckpt["model"] == "autoencoder":
        # The narrowest hidden layer (the code) is linear; the logits are one Bernoulli per pixel.
        layers["flatten"] = nn.Flatten()
        width = pixels = c * h * w
        code = cfg["widths"].index(min(cfg["widths"]))
        for i, out in enumerate(cfg["widths"]):
            layers[f"fc{i}"] = nn.Linear(width, out)
            if i != code:
                layers[f"act{i}"] = act()
            width = out
        layers[f"fc{len(cfg['widths'])}"] = nn.Linear(width, pixels)
    elif ckpt["model"] == "cnn":
        for i, out in enumerate(cfg["channels"]):
            layers[f"conv{i}"] = nn.Conv2d(c, out, 3, stride=2, padding=1)
            layers[f"act{i}"] = act()
            c, h, w = out, (h - 1) // 2 + 1, (w - 1) // 2 + 1
        layers["flatten"] = nn.Flatten()
        layers["fc0"] = nn.Linear(c * h * w, cfg["hidden"])
        layers["act_fc"] = act()
        layers["fc1"] = nn.Linear(cfg["hidden"], cfg["num_classes"])
    else:
        raise ValueError(f"model {ckpt['model']!r}: only mlp, autoencoder and cnn are rebuilt as nn.Sequential")
    model = nn.Sequential(layers)
    state = ckpt["state"]
    dtype = next(iter(state.values())).dtype
    model.to(dtype)
    model.load_state_dict(state, strict=True)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="native checkpoint (fisheval train)")
    ap.add_argument("--out", required=True, help="TorchScript checkpoint to write")
    args = ap.parse_args(argv)
    ckpt = load_native(args.checkpoint)
    model = build_module(ckpt)
    ex.export_checkpoint(model, args.out, loss=ckpt["loss"], trainable=",".join(ckpt["trainable"]))
    print(f"wrote {args.out} ({ckpt['model']}, step {ckpt['step']}, "
          f"{sum(p.numel() for p in model.parameters())} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
