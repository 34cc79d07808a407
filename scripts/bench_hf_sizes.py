#!/usr/bin/env python3
"""fisheval at the real sizes of the iEF paper's Hugging Face models, on random weights.

No weights can be downloaded on the development machine, so t5-base and
vit-base-patch16-224 are built from their configurations (written out below) with random
weights, seed 0; timing does not depend on the weights' values. Adapters as in the paper:
LoRA r = 8 on the attention query and value projections (T5: q, v; ViT: q_proj, v_proj),
and for T5 prompt tuning with 20 virtual tokens; the LoRA B factors get small random values
(PEFT starts them at zero, which would make every gradient of A zero).

For each model + adapter this exports the PEFT model with the project's own exporter
(export_checkpoint.py, which picks the paper's read-out: T5's first decoder position over
the 32 128-token vocabulary, ViT's classification head), writes a data file of one batch,
times one forward+backward of the same model and batch in PyTorch (same dtype and threads:
the loss of the read-out, gradients of the adapter's parameters), runs

    /usr/bin/time -v FISHEVAL eval --checkpoints CKPT --data DATA --batch-size N --methods ALL
        --damping-grid 1e-6:1:D --damping-mode relative --dtype float32 --threads T ...

and prints a markdown table: the whole unit (one checkpoint, one batch) and each method's
share of it (the result file's `seconds`, summed over dampings; `seconds_shared` for the
per-batch work every method shares), as multiples of that forward+backward, fisheval's peak
resident memory (max RSS from /usr/bin/time -v), and the methods skipped with the reason the
result file records (`method_status`).

    .venv/bin/python scripts/bench_hf_sizes.py --fisheval build/fisheval --model vit-lora \\
        [--batch 32] [--length 128] [--dampings 6] [--threads 2] [--work /tmp/bench-hf]

--size tiny builds small configurations of the same architectures (a check of the script).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_checkpoint as ex  # noqa: E402
import hf_export  # noqa: E402

ALL = ("sgd,ef,ief,ief-param,sf,ng-dense,ng-cg,kfac,kfac-exact,ekfac,iekfac,kfe,shampoo,fim-shampoo,fishy")
MODELS = ("t5-lora", "t5-prompt", "vit-lora")


def t5_config(size):
    from transformers import T5Config
    if size == "base":  # t5-base
        return T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12,
                        num_heads=12, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)
    return T5Config(vocab_size=512, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)


def vit_config(size, labels):
    from transformers import ViTConfig
    if size == "base":  # vit-base-patch16-224: ViTConfig's defaults
        return ViTConfig(image_size=224, patch_size=16, num_channels=3, hidden_size=768, num_hidden_layers=12,
                         num_attention_heads=12, intermediate_size=3072, num_labels=labels, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0)
    return ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, num_labels=labels, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)


def build(name, size, n, length, labels, dtype):
    """(PEFT model in eval mode, named inputs of n samples, targets)."""
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model
    from transformers import T5ForConditionalGeneration, ViTForImageClassification
    torch.manual_seed(0)
    if name.startswith("t5"):
        cfg = t5_config(size)
        base = T5ForConditionalGeneration(cfg)
        adapter = (LoraConfig(r=8, lora_alpha=16, target_modules=["q", "v"], lora_dropout=0.0) if name == "t5-lora"
                   else PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=20))
        ids = torch.randint(10, min(cfg.vocab_size, 32000), (n, length))
        inputs = {"input_ids": ids, "attention_mask": torch.ones(n, length, dtype=torch.long)}
        targets = torch.randint(10, min(cfg.vocab_size, 32000), (n,))  # the labels' first tokens
    else:
        cfg = vit_config(size, labels)
        base = ViTForImageClassification(cfg)
        adapter = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                             modules_to_save=["classifier"])
        inputs = {"pixel_values": torch.randn(n, cfg.num_channels, cfg.image_size, cfg.image_size)}
        targets = torch.randint(0, labels, (n,))
    model = get_peft_model(base, adapter)
    if name == "t5-prompt":  # as peft_series.py loads a prompt-learning adapter: its encoder trainable
        for p in model.prompt_encoder.parameters():
            p.requires_grad_(True)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_B" in pname:
                p.normal_(0, 0.02)
    model = model.to(dtype).eval()
    inputs = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in inputs.items()}
    return model, inputs, targets


def time_fwd_bwd(model, inputs, targets, repeats):
    """Median seconds of one forward (the read-out) + cross-entropy + backward to the trainable parameters."""
    readout = hf_export.default_readout(model)
    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(readout(model, inputs), targets)
        torch.autograd.grad(loss, params)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), sum(p.numel() for p in params)


def run_fisheval(fisheval, ckpt, data, out, n, methods, dampings, threads, extra):
    cmd = ["/usr/bin/time", "-v", fisheval, "eval", "--checkpoints", ckpt, "--data", data, "--batch-size", str(n),
           "--methods", methods, "--damping-grid", f"1e-6:1:{dampings}", "--damping-mode", "relative",
           "--dtype", "float32", "--device", "cpu", "--threads", str(threads), "--out", out, "--overwrite"] + extra
    print("+ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"bench_hf_sizes: fisheval eval failed (exit {proc.returncode})")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr).group(1)
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    notes = [line for line in proc.stderr.splitlines() if "warning" in line.lower() or "skipped" in line]
    return rss_kb / 1024 ** 2, secs, notes, " ".join(cmd[2:])


def read_results(out):
    import h5py
    with h5py.File(out, "r") as f:
        methods = list(f["method"].asstr()[:])
        seconds = f["seconds"][0, 0]                      # [M, D]
        status = [s.decode() if isinstance(s, bytes) else s for s in f["method_status"][0]]
        shared = float(f["seconds_shared"][0, 0])
        solve = f["solve_status"][0, 0]
        extra = {k: float(f[k][0, 0]) for k in ("ng_converged", "ng_iterations") if k in f}
        num_params = int(f["num_params"][0, 0])
    per_method = {}
    for m, name in enumerate(methods):
        row = seconds[m]
        # sgd is undamped: every damping's cell repeats its one direction's time
        per_method[name] = (float(row[0]) if name == "sgd" else float(np.nansum(row)), status[m],
                            sorted({int(s) for s in solve[m] if s >= 0}))
    return per_method, shared, extra, num_params


def bench(args, name, dtype):
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    model, inputs, targets = build(name, args.size, args.batch, args.length, args.labels, dtype)
    ckpt, data, out = (os.path.join(work, f) for f in ("ckpt.pt", "data.h5", "results.h5"))
    t0 = time.perf_counter()
    ex.export_checkpoint(model, ckpt)
    export_s = time.perf_counter() - t0
    ex.export_data(data, inputs, targets)
    fb, trainable = time_fwd_bwd(model, inputs, targets, args.fwd_repeats)
    del model
    rss, wall, notes, cmd = run_fisheval(args.fisheval, ckpt, data, out, args.batch, args.methods, args.dampings,
                                         args.threads, args.extra)
    per_method, shared, extra, num_params = read_results(out)
    return dict(model=name, n=args.batch, length=args.length, fwd_bwd_s=fb, trainable=trainable, num_params=num_params,
                export_s=export_s, rss_gib=rss, wall_s=wall, shared_s=shared, methods=per_method, ng=extra,
                notes=notes, command=cmd)


def table(results):
    lines = []
    for r in results:
        fb = r["fwd_bwd_s"]
        unit = r["shared_s"] + sum(s for s, st, _ in r["methods"].values() if not st)
        shape = f"N = {r['n']}" + (f", L = {r['length']}" if r["model"].startswith("t5") else "")
        lines += [f"**{r['model']}** ({shape}, P = {r['num_params']:,} evaluated, float32): "
                  f"fwd+bwd {fb:.2f} s; fisheval eval {r['wall_s']:.0f} s wall (the unit {unit:.0f} s = "
                  f"{unit / fb:.0f}× fwd+bwd, the rest loading and tracing), peak RSS {r['rss_gib']:.2f} GiB",
                  "", "| part of the unit | seconds | × fwd+bwd | status |", "|---|---:|---:|---|",
                  f"| per-batch work shared by all methods | {r['shared_s']:.1f} | {r['shared_s'] / fb:.1f} | |"]
        for name, (s, status, solve) in r["methods"].items():
            if status:
                lines.append(f"| {name} | – | – | {status} |")
            else:
                note = "solve_status " + ",".join(map(str, solve)) if any(x != 0 for x in solve) else "ran"
                lines.append(f"| {name} | {s:.1f} | {s / fb:.1f} | {note} |")
        lines += [f"| **whole unit** | **{unit:.1f}** | **{unit / fb:.0f}** | |", ""]
        if r["ng"]:
            lines += ["natural-gradient reference: " + ", ".join(f"{k} {v:g}" for k, v in r["ng"].items()), ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fisheval", required=True, help="the fisheval binary")
    ap.add_argument("--model", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--size", default="base", choices=["base", "tiny"])
    ap.add_argument("--batch", type=int, default=32, help="samples per batch N")
    ap.add_argument("--length", type=int, default=128, help="T5 input length")
    ap.add_argument("--labels", type=int, default=10, help="ViT classes (the paper: CIFAR-100, 100)")
    ap.add_argument("--dampings", type=int, default=6, help="dampings (log grid 1e-6..1, relative)")
    ap.add_argument("--methods", default=ALL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fwd-repeats", type=int, default=3)
    ap.add_argument("--work", default="/tmp/bench-hf")
    ap.add_argument("--fwd-bwd-only", action="store_true",
                    help="only time one forward+backward (e.g. at the full batch, when fisheval ran on a smaller one)")
    ap.add_argument("--json", help="also write the measurements here")
    ap.add_argument("extra", nargs="*", help="after --: more fisheval eval options")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    results = []
    for name in args.model:
        if args.fwd_bwd_only:
            model, inputs, targets = build(name, args.size, args.batch, args.length, args.labels, torch.float32)
            fb, trainable = time_fwd_bwd(model, inputs, targets, args.fwd_repeats)
            print(f"{name}: N = {args.batch}, one forward+backward {fb:.2f} s (median of {args.fwd_repeats}), "
                  f"{trainable:,} trainable", flush=True)
            continue
        results.append(bench(args, name, torch.float32))
        print(table(results[-1:]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
