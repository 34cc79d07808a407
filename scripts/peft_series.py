#!/usr/bin/env python3
"""A fisheval checkpoint series from a Hugging Face base model and PEFT adapter checkpoints.

A `transformers` + `peft` training run leaves a base model and one adapter folder per saved
stage (adapter_config.json and the adapter's weights, e.g. output/checkpoint-500/). This writes
one fisheval checkpoint per adapter folder (the base model with that adapter, exported by
scripts/export_checkpoint.py: traced, named inputs, layer taps of the adapter's LoRA layers)
and a manifest.csv with the steps, which `fisheval eval --series` reads.

    .venv/bin/python scripts/peft_series.py --base BASE --adapters RUN/checkpoint-* --out SERIES \\
        [--steps 100,200,...] [--readout auto|t5-first-token|logits|token-logits] [--dtype float32|float64]

BASE is a folder written by save_pretrained (config.json and weights), or a config.json alone
(the base weights are then random: only useful for timing; a warning says so). The model class
is the first of the configuration's `architectures`. The evaluated parameters are the
adapter's (and modules_to_save), as PEFT marks them trainable. Steps: from --steps, else the
last number in each adapter folder's name (checkpoint-500 -> 500).
"""
import argparse
import os
import re
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_checkpoint as ex  # noqa: E402
import hf_export  # noqa: E402


def load_base(spec: str, dtype: torch.dtype):
    import transformers

    folder = spec if os.path.isdir(spec) else os.path.dirname(os.path.abspath(spec))
    config_path = os.path.join(spec, "config.json") if os.path.isdir(spec) else spec
    if not os.path.isfile(config_path):
        raise SystemExit(f"peft_series: no config.json at {config_path}")
    config = transformers.AutoConfig.from_pretrained(config_path)
    if not getattr(config, "architectures", None):
        raise SystemExit(f"peft_series: {config_path} names no architecture (config.architectures)")
    cls = getattr(transformers, config.architectures[0])
    has_weights = os.path.isdir(spec) and any(f.endswith((".safetensors", ".bin")) for f in os.listdir(folder))
    if has_weights:
        model = cls.from_pretrained(folder, torch_dtype=dtype)
    else:
        print(f"peft_series: warning: {spec} has no weights; the base model is randomly initialised from its "
              "configuration", file=sys.stderr)
        model = cls(config).to(dtype)
    return model.eval()


def load_adapter(base, folder):
    """The base model with the adapter of `folder`, its parameters (and modules_to_save) trainable."""
    from peft import PeftConfig, PeftModel

    if PeftConfig.from_pretrained(folder).is_prompt_learning:
        # PEFT loads prompt-learning adapters frozen only; their parameters are the prompt encoder's.
        model = PeftModel.from_pretrained(base, folder)
        for p in model.prompt_encoder.parameters():
            p.requires_grad_(True)
        return model
    return PeftModel.from_pretrained(base, folder, is_trainable=True)


def step_of(folder: str) -> int:
    numbers = re.findall(r"\d+", os.path.basename(os.path.normpath(folder)))
    if not numbers:
        raise SystemExit(f"peft_series: no step number in the folder name {folder}: pass --steps")
    return int(numbers[-1])


def write_series(base_spec, adapters, out, steps=None, readout="auto", dtype=torch.float64):
    if steps is None:
        steps = [step_of(a) for a in adapters]
    if len(steps) != len(adapters):
        raise SystemExit("peft_series: --steps must give one step per adapter folder")
    os.makedirs(out, exist_ok=True)
    chosen = None if readout == "auto" else {"t5-first-token": hf_export.t5_first_token, "logits": hf_export.logits,
                                              "token-logits": hf_export.token_logits}[readout]
    rows = ["path,step,adapter"]
    for adapter, step in sorted(zip(adapters, steps), key=lambda t: t[1]):
        if not os.path.isfile(os.path.join(adapter, "adapter_config.json")):
            raise SystemExit(f"peft_series: {adapter} has no adapter_config.json (not a PEFT adapter folder)")
        # A fresh base model per adapter: PEFT modifies the model it wraps.
        model = load_adapter(load_base(base_spec, dtype), adapter).to(dtype).eval()
        name = f"ckpt_step{step}.pt"
        ex.export_checkpoint(model, os.path.join(out, name), readout=chosen)
        rows.append(f"{name},{step},{os.path.abspath(adapter)}")
        print(f"peft_series: {adapter} (step {step}) -> {os.path.join(out, name)}", file=sys.stderr)
    with open(os.path.join(out, "manifest.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return os.path.join(out, "manifest.csv")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="save_pretrained folder of the base model, or its config.json")
    ap.add_argument("--adapters", required=True, nargs="+", help="PEFT adapter folders, one per training stage")
    ap.add_argument("--out", required=True, help="folder for the series (checkpoints and manifest.csv)")
    ap.add_argument("--steps", help="comma-separated steps, one per adapter (default: from the folder names)")
    ap.add_argument("--readout", default="auto", choices=["auto", "t5-first-token", "logits", "token-logits"],
                    help="which logits are scored (auto: t5-first-token for encoder-decoder models, else logits)")
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                    help="dtype of the exported model; a traced model runs in it only, so choose the one fisheval "
                         "evaluates in (--dtype auto: float64 on the CPU, float32 on CUDA)")
    args = ap.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    warnings.filterwarnings("ignore", category=FutureWarning)
    manifest = write_series(args.base, args.adapters, args.out, steps, args.readout,
                            torch.float64 if args.dtype == "float64" else torch.float32)
    print(f"wrote {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
