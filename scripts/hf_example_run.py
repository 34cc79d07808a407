#!/usr/bin/env python3
"""A small `transformers` + `peft` fine-tuning run that leaves what a user's run leaves: a base
model folder (save_pretrained) and one PEFT adapter folder per saved step (checkpoint-N/), plus
an HDF5 data file for fisheval with the inputs by name. docs/HUGGING_FACE.md walks from here to
the report. No weights can be downloaded here, so the base models are built from their
configurations (random weights) and pre-trained briefly on the task's data first.

    .venv/bin/python scripts/hf_example_run.py --task vit-lora   --out RUN [--size small|base] [--steps 0,50,100,200]
    .venv/bin/python scripts/hf_example_run.py --task t5-prompt  --out RUN [--size small|base] [--steps ...]

vit-lora   ViTForImageClassification on Fashion-MNIST (Debian's dataset-fashion-mnist): the base
           pre-trained on classes 0-4, then LoRA (r = 8 on the query and value projections,
           the classifier in modules_to_save) fine-tuned on all ten classes with AdamW.
t5-prompt  T5ForConditionalGeneration with prompt tuning (20 virtual tokens), on a synthetic
           sequence task whose target is a function of the input tokens (a "label word" per
           class, as T5 reads GLUE), scored by the first decoder position's logits.
--size base uses the t5-base / vit-base-patch16-224 configurations (hours on a CPU); small
(the default) uses small configurations that train in minutes.

Writes RUN/base/ (the base model), RUN/run/checkpoint-N/ (adapters), RUN/data.h5 (held-out
batches: input datasets by name, targets) and RUN/train_log.csv (step, loss).
"""
import argparse
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_checkpoint as ex  # noqa: E402
from make_mlp_series import read_idx  # noqa: E402

warnings.filterwarnings("ignore")
from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model  # noqa: E402
from transformers import T5Config, T5ForConditionalGeneration, ViTConfig, ViTForImageClassification  # noqa: E402

FASHION = os.environ.get("FISHEVAL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


# --- tasks: (base model, train inputs, train targets, held-out inputs, held-out targets, loss) --------

def vit_task(size, samples):
    if size == "base":
        cfg = ViTConfig(image_size=224, patch_size=16, num_channels=1, num_labels=10)  # vit-base-patch16-224
        side = 224
    else:
        cfg = ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=64, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=128, num_labels=10)
        side = 28
    images = read_idx(os.path.join(FASHION, "train-images-idx3-ubyte.gz"))[:samples + 1000]
    labels = read_idx(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"))[:samples + 1000]
    x = (torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0 - 0.2860) / 0.3530
    if side != 28:
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    y = torch.tensor(labels, dtype=torch.int64)
    model = ViTForImageClassification(cfg)
    return model, {"pixel_values": x[:samples]}, y[:samples], {"pixel_values": x[samples:]}, y[samples:]


def t5_task(size, samples, vocab_words=8, length=16):
    if size == "base":
        cfg = T5Config.from_dict(dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))  # t5-base
    else:
        cfg = T5Config(vocab_size=256, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                       num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)
    g = torch.Generator().manual_seed(7)
    n = samples + 512
    ids = torch.randint(10, min(cfg.vocab_size, 2000), (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    cut = torch.randint(length // 2, length + 1, (n,), generator=g)
    for i in range(n):
        mask[i, cut[i]:] = 0
        ids[i, cut[i]:] = 0
    # The class: which of the first four tokens is largest; each class answers with its "label word".
    cls = ids[:, :4].argmax(1) % 2 + 2 * ((ids[:, 0] % 2) == 1).long()
    label_words = torch.arange(2, 2 + vocab_words)
    target = label_words[cls]
    model = T5ForConditionalGeneration(cfg)
    tr = {"input_ids": ids[:samples], "attention_mask": mask[:samples]}
    te = {"input_ids": ids[samples:], "attention_mask": mask[samples:]}
    return model, tr, target[:samples], te, target[samples:]


def logits_of(model, task, inputs):
    if task == "t5-prompt":
        start = torch.full((inputs["input_ids"].shape[0], 1), model.config.decoder_start_token_id, dtype=torch.long)
        return model(**inputs, decoder_input_ids=start, use_cache=False).logits[:, 0, :]
    return model(**inputs).logits


def train(model, task, x, y, steps, lr, batch, seed, save=None, log=None, record=()):
    """AdamW steps on the trainable parameters; saves the adapter at the steps in `record`."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(seed)
    n = y.shape[0]
    for step in range(steps + 1):
        if step in record and save:
            save(step)
        if step == steps:
            break
        idx = torch.randint(0, n, (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(logits_of(model, task, {k: v[idx] for k, v in x.items()}), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log is not None:
            log.append((step + 1, loss.item()))
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, choices=["vit-lora", "t5-prompt"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="small", choices=["small", "base"])
    ap.add_argument("--steps", default="0,50,100,200", help="steps at which the adapter is saved")
    ap.add_argument("--pretrain-steps", type=int, default=300, help="AdamW steps of the base model before the run")
    ap.add_argument("--samples", type=int, default=4000, help="training samples")
    ap.add_argument("--eval-samples", type=int, default=256, help="held-out samples written to data.h5")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    record = sorted(int(s) for s in args.steps.split(","))
    task = args.task
    model, x, y, xe, ye = (vit_task if task == "vit-lora" else t5_task)(args.size, args.samples)
    # Pre-train the base model (no weights can be downloaded): ViT on classes 0-4, T5 on all.
    keep = (y < 5) if task == "vit-lora" else torch.ones_like(y, dtype=torch.bool)
    train(model, task, {k: v[keep] for k, v in x.items()}, y[keep], args.pretrain_steps, 1e-3, 32, args.seed)
    base_dir = os.path.join(args.out, "base")
    model.save_pretrained(base_dir)
    if task == "vit-lora":
        peft_cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                              modules_to_save=["classifier"])
        lr = 2e-3
    else:
        peft_cfg = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=20)
        lr = 3e-2
    model = get_peft_model(model, peft_cfg)
    log = []
    run_dir = os.path.join(args.out, "run")
    train(model, task, x, y, max(record), lr, 32, args.seed + 1,
          save=lambda s: model.save_pretrained(os.path.join(run_dir, f"checkpoint-{s}")), log=log, record=record)
    ex.export_data(os.path.join(args.out, "data.h5"), {k: v[:args.eval_samples] for k, v in xe.items()},
                   ye[:args.eval_samples])
    with open(os.path.join(args.out, "train_log.csv"), "w") as f:
        f.write("step,loss\n" + "".join(f"{s},{l:.6f}\n" for s, l in log))
    print(f"hf_example_run: {task} ({args.size}): base {base_dir}, adapters {run_dir}/checkpoint-{{{args.steps}}}, "
          f"data {os.path.join(args.out, 'data.h5')}; last training loss {log[-1][1]:.4f}" if log else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
