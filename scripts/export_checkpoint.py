#!/usr/bin/env python3
"""Export a PyTorch model and data for fisheval (run with the project environment's Python, .venv/bin/python).

A checkpoint is a TorchScript archive (torch.jit.save) whose forward(inputs) returns
logits [N, C] or [N, T, C]. This script

* wraps every nn.Linear and nn.Conv2d (LoRA factors that are nn.Linear included) in a
  "tap" module with the same parameters under the same names, whose forward records its
  input and output so that fisheval can read them from C++ (the convention documented in
  checkpoints/torchscript_model.cpp): per-sample gradients then come from one backward
  pass, and the Kronecker/Shampoo methods can run;
* records the activation that follows each wrapped layer (for Fishy's local sampling)
  when the model is an nn.Sequential-style chain, or as given by `activations`;
* marks trainable parameters (requires_grad) by glob, records the loss, and scripts the
  model (torch.jit.script; a model that cannot be scripted is traced instead, without
  taps: every method but the Kronecker/Shampoo family still works).

Data go to an HDF5 file with datasets `inputs` [M, ...] and `targets` [M] or [M, T]
(int64, -100 = ignored token) or float targets: for squared error, or in [0, 1] for binary
cross-entropy (a Bernoulli per output unit; fisheval never picks that loss from the targets
alone, so the checkpoint's recorded loss or --loss binary-cross-entropy says so).

Python use:
    sys.path.insert(0, "scripts"); import export_checkpoint as ex
    ex.export_checkpoint(model, "ckpt_step100.pt", loss="cross-entropy", trainable="*lora*,head.*")
    ex.export_data("batches.h5", inputs, targets)

Command line:
    .venv/bin/python scripts/export_checkpoint.py --factory my_models.py:make_model \
        [--kwargs '{"width": 64}'] [--state-dict trained.pt] [--trainable GLOB] \
        [--loss cross-entropy|squared-error|binary-cross-entropy] --out ckpt.pt \
        [--data data.pt --data-out batches.h5]
    (data.pt: a dict with tensors "inputs" and "targets", as saved by torch.save)
"""
import argparse
import copy
import fnmatch
import importlib.util
import json
import sys
import warnings
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

LOSSES = ("cross-entropy", "squared-error", "binary-cross-entropy")
ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu", nn.Softmax: "softmax",
               nn.Identity: "identity"}


class TappedLinear(nn.Module):
    """nn.Linear whose forward records its input and output for fisheval."""

    fisheval_kind: str
    fisheval_activation: str
    fisheval_calls: int
    fisheval_input: torch.Tensor
    fisheval_output: torch.Tensor

    def __init__(self, linear: nn.Linear, activation: str = "identity"):
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        if linear.bias is not None:
            self.bias = linear.bias
        else:
            self.register_parameter("bias", None)
        self.fisheval_kind = "linear"
        self.fisheval_activation = activation
        self.fisheval_calls = 0
        self.fisheval_input = torch.zeros(0)
        self.fisheval_output = torch.zeros(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        self.fisheval_input = x
        self.fisheval_output = y
        self.fisheval_calls += 1
        return y


class TappedConv2d(nn.Module):
    """nn.Conv2d (zero padding mode) whose forward records its input and output."""

    fisheval_kind: str
    fisheval_activation: str
    fisheval_calls: int
    fisheval_input: torch.Tensor
    fisheval_output: torch.Tensor
    fisheval_stride: List[int]
    fisheval_padding: List[int]
    fisheval_dilation: List[int]
    fisheval_groups: int

    def __init__(self, conv: nn.Conv2d, activation: str = "identity"):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("only zero-padded Conv2d with numeric padding can be tapped")
        self.weight = conv.weight
        if conv.bias is not None:
            self.bias = conv.bias
        else:
            self.register_parameter("bias", None)
        self.fisheval_kind = "conv2d"
        self.fisheval_activation = activation
        self.fisheval_calls = 0
        self.fisheval_input = torch.zeros(0)
        self.fisheval_output = torch.zeros(0)
        self.fisheval_stride = list(conv.stride)
        self.fisheval_padding = list(conv.padding)
        self.fisheval_dilation = list(conv.dilation)
        self.fisheval_groups = conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.fisheval_stride, self.fisheval_padding,
                     self.fisheval_dilation, self.fisheval_groups)
        self.fisheval_input = x
        self.fisheval_output = y
        self.fisheval_calls += 1
        return y


def _following_activation(parent: nn.Module, child_name: str) -> str:
    """The activation module right after `child_name` in an nn.Sequential parent."""
    if not isinstance(parent, nn.Sequential):
        return "identity"
    names = [n for n, _ in parent.named_children()]
    i = names.index(child_name)
    if i + 1 < len(names):
        nxt = getattr(parent, names[i + 1])
        for cls, name in ACTIVATIONS.items():
            if isinstance(nxt, cls):
                return name
    return "identity"


def add_taps(model: nn.Module, activations: Optional[Dict[str, str]] = None) -> nn.Module:
    """Replaces nn.Linear / nn.Conv2d submodules in place by tap modules (same parameters)."""
    activations = activations or {}

    def visit(module: nn.Module, prefix: str):
        for name, child in list(module.named_children()):
            qualified = f"{prefix}{name}"
            act = activations.get(qualified) or _following_activation(module, name)
            if type(child) is nn.Linear:
                setattr(module, name, TappedLinear(child, act))
            elif type(child) is nn.Conv2d and child.padding_mode == "zeros" and not isinstance(child.padding, str):
                setattr(module, name, TappedConv2d(child, act))
            else:
                visit(child, qualified + ".")

    visit(model, "")
    return model


def set_trainable(model: nn.Module, trainable: Optional[str]) -> None:
    """requires_grad = matches one of the comma-separated globs (None keeps the model's flags)."""
    if trainable is None:
        return
    globs = [g for g in trainable.split(",") if g]
    for name, p in model.named_parameters():
        p.requires_grad_(any(fnmatch.fnmatchcase(name, g) for g in globs))


def _tappable(module: nn.Module) -> Optional[dict]:
    """The manifest entry's kind and settings for a layer fisheval can tap, else None."""
    if type(module) is nn.Linear:
        return {"kind": "linear"}
    if type(module) is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str):
        return {"kind": "conv2d", "stride": list(module.stride), "padding": list(module.padding),
                "dilation": list(module.dilation), "groups": module.groups}
    return None


class _TracedExport(nn.Module):
    """What is traced: forward(<the input names>) returns (logits, a_1, o_1, ..., a_L, o_L),
    the logits of `readout(model, inputs)` and the input and output of every tapped layer,
    recorded by forward hooks (torch.jit.trace keeps no attribute writes, but it keeps
    outputs). Layers that do not run exactly once are left out."""

    def __init__(self, model: nn.Module, readout, layers: List[tuple]):
        super().__init__()
        self.model = model
        self._readout = readout
        self._layers = layers          # (qualified name under `model`, module, manifest entry)
        self.emitted: List[dict] = []  # the manifest's layers, filled by the traced call

    def run(self, inputs: Dict[str, torch.Tensor]):
        calls = {id(m): [] for _, m, _ in self._layers}
        hooks = [m.register_forward_hook(lambda mod, args, out, key=id(m): calls[key].append((args[0], out)))
                 for _, m, _ in self._layers]
        try:
            logits = self._readout(self.model, inputs)
        finally:
            for h in hooks:
                h.remove()
        outputs, self.emitted = [logits], []
        for name, m, entry in self._layers:
            if len(calls[id(m)]) == 1:
                a, o = calls[id(m)][0]
                outputs += [a, o]
                self.emitted.append(entry)
        return tuple(outputs)


def _traced_class(input_names: List[str]):
    """A subclass of _TracedExport whose forward takes the inputs by these names (the traced
    module keeps them, and fisheval passes the data's datasets by them)."""
    args = ", ".join(input_names)
    body = ", ".join(f"{n!r}: {n}" for n in input_names)
    scope = {}
    exec(f"def forward(self, {args}):\n    return self.run({{{body}}})\n", scope)  # noqa: S102
    return type("FishevalTraced", (_TracedExport,), {"forward": scope["forward"]})


def _as_named(example_inputs) -> Dict[str, torch.Tensor]:
    if isinstance(example_inputs, dict):
        return dict(example_inputs)
    if isinstance(example_inputs, torch.Tensor):
        return {"inputs": example_inputs}
    raise TypeError("inputs: a tensor or a dict of named tensors")


def _plain_readout(model, inputs):
    return model(inputs["inputs"]) if list(inputs) == ["inputs"] else model(**inputs)


def trace_with_taps(model: nn.Module, example_inputs, readout=None, taps: bool = True,
                    activations: Optional[Dict[str, str]] = None):
    """Traces `model` (eval mode, trainable flags set) with layer taps as outputs; returns the
    traced module and the manifest's layer list. `readout(model, inputs)` gives the logits
    (default: model(inputs) or model(**inputs))."""
    inputs = _as_named(example_inputs)
    readout = readout or _plain_readout
    activations = activations or {}
    layers = []
    if taps:
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        for name, m in model.named_modules():
            entry = _tappable(m)
            owns = any(id(p) in trainable for p in m.parameters(recurse=False))
            if entry is None or not owns:  # only layers that own evaluated parameters (memory)
                continue
            entry.update(name="model." + name, weight=f"model.{name}.weight",
                         bias=f"model.{name}.bias" if getattr(m, "bias", None) is not None else "",
                         activation=activations.get(name, "identity"))
            layers.append((name, m, entry))
    wrapper = _traced_class(list(inputs))(model, readout, layers)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        traced = torch.jit.trace(wrapper, tuple(inputs.values()), check_trace=False, strict=False)
    return traced, list(wrapper.emitted)


def export_checkpoint(model: nn.Module, path: str, loss: str = "cross-entropy", trainable: Optional[str] = None,
                      activations: Optional[Dict[str, str]] = None, taps: bool = True, example_inputs=None,
                      readout=None, method: str = "auto"):
    """Writes `model` as a fisheval TorchScript checkpoint and returns the TorchScript module.

    model:      an nn.Module whose forward returns logits, a torch.compile'd one (its module is
                exported), or a Hugging Face transformers model with or without a PEFT adapter
                (hf_export.py chooses the read-out, e.g. the first decoder position of T5, and
                example inputs from the model's configuration).
    trainable:  globs of the evaluated parameters (requires_grad); None keeps the model's
                flags (for a PEFT model: its adapter and modules_to_save).
    method:     "script" (taps as module attributes), "trace" (needs example_inputs: a tensor,
                or a dict of named tensors; taps as forward outputs), or "auto": scripted when
                that works, else traced.
    The caller's model is left as it was (training mode, requires_grad flags, modules):
    what is exported is a copy. The archive carries the export manifest fisheval.json
    (docs/FORMAT.md)."""
    if loss not in LOSSES:
        raise ValueError("loss must be one of " + ", ".join(LOSSES))
    # A torch.compile'd model is exported as the module it wraps (TorchScript cannot
    # compile what Dynamo made; the numbers are the same).
    model = getattr(model, "_orig_mod", model)
    model = copy.deepcopy(model).eval()
    set_trainable(model, trainable)
    import hf_export  # Hugging Face read-outs and example inputs, when the model is one
    readout, example_inputs, method = hf_export.defaults(model, readout, example_inputs, method)
    manifest = {"format": "fisheval-torchscript", "version": 1, "loss": loss,
                "trainable": [n for n, p in model.named_parameters() if p.requires_grad]}
    # PyTorch 2.x marks TorchScript deprecated in favour of torch.export, but torch.export's
    # programs cannot be differentiated from C++; a TorchScript module run by LibTorch's
    # autograd is the route to gradients, JVPs and Fisher products, so the warnings are muted.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        module, failure = None, None
        if method in ("auto", "script") and readout is None:
            scripted_model = copy.deepcopy(model)
            if taps:
                add_taps(scripted_model, activations)
            scripted_model.fisheval_loss = loss  # a TorchScript attribute (str)
            try:
                module = torch.jit.script(scripted_model)
                manifest.update(inputs=["inputs"], taps="attributes" if taps else "none")
            except Exception as exc:  # not scriptable
                if method == "script":
                    raise
                failure = exc
        if module is None:
            if example_inputs is None:
                raise RuntimeError(f"torch.jit.script failed ({failure}); pass example_inputs to trace instead")
            if failure is not None:
                print(f"export_checkpoint: scripting failed ({failure.__class__.__name__}); traced instead, with "
                      f"the layer taps as outputs", file=sys.stderr)
            module, layers = trace_with_taps(model, example_inputs, readout, taps, activations)
            # A trace may keep the dtype it ran in (casts to a recorded dtype, as PEFT's LoRA
            # layers do): fisheval evaluates it in that dtype only.
            dtype = {torch.float32: "float32", torch.float64: "float64"}.get(next(model.parameters()).dtype)
            manifest.update(inputs=list(_as_named(example_inputs)), taps="outputs" if taps else "none", layers=layers,
                            trainable=["model." + n for n in manifest["trainable"]], dtype=dtype)
        if readout is not None:
            manifest["readout"] = getattr(readout, "name", readout.__name__)
        torch.jit.save(module, path, _extra_files={"fisheval.json": json.dumps(manifest, indent=1)})
    return module


def export_data(path: str, inputs, targets: torch.Tensor) -> None:
    """Writes an HDF5 batch file: the inputs (a tensor, written as dataset `inputs`, or a dict
    of named tensors, each a dataset of its own and listed in the root attribute
    `input_names`, which fisheval passes to the model's forward by name) and `targets`."""
    import h5py
    import numpy as np

    named = _as_named(inputs)
    for name, value in named.items():
        if value.shape[0] != targets.shape[0]:
            raise ValueError(f"input {name} and targets must have the same number of samples")
    with h5py.File(path, "w") as f:
        for name, value in named.items():
            f.create_dataset(name, data=value.detach().cpu().numpy())
        if list(named) != ["inputs"]:
            f.attrs["input_names"] = ",".join(named)
        t = targets.detach().cpu()
        f.create_dataset("targets", data=t.numpy().astype(np.int64) if not t.is_floating_point() else t.numpy())


def _load_factory(spec: str):
    path, _, func = spec.partition(":")
    loaded = importlib.util.spec_from_file_location("fisheval_user_module", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return getattr(module, func)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--factory", required=True, help="FILE.py:FUNCTION returning the nn.Module")
    ap.add_argument("--kwargs", default="{}", help="JSON keyword arguments for the factory")
    ap.add_argument("--state-dict", help="torch.save'd state dict to load into the model")
    ap.add_argument("--trainable", help="comma-separated globs of trainable parameters (default: keep flags)")
    ap.add_argument("--loss", default="cross-entropy", choices=list(LOSSES))
    ap.add_argument("--out", required=True, help="checkpoint file to write (TorchScript)")
    ap.add_argument("--no-taps", action="store_true", help="do not wrap layers")
    ap.add_argument("--data", help="torch.save'd dict with 'inputs' and 'targets'")
    ap.add_argument("--data-out", help="HDF5 batch file to write from --data")
    args = ap.parse_args(argv)
    model = _load_factory(args.factory)(**json.loads(args.kwargs))
    if args.state_dict:
        model.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
    example = None
    if args.data:
        data = torch.load(args.data, map_location="cpu")
        example = data["inputs"][:2]
    export_checkpoint(model, args.out, loss=args.loss, trainable=args.trainable, taps=not args.no_taps,
                      example_inputs=example)
    if args.data and args.data_out:
        export_data(args.data_out, data["inputs"], data["targets"])
    print(f"wrote {args.out}" + (f" and {args.data_out}" if args.data_out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
