#!/usr/bin/env python3
"""The iEF paper's setups on small configurations: Hugging Face T5ForConditionalGeneration
with PEFT LoRA (r = 2 on q and v) and with PEFT prompt tuning (3 virtual tokens), scored on
the paper's read-out (the first decoder position's logits over the vocabulary, the label's
first token as the target), and ViTForImageClassification with LoRA on the query and value projections (q_proj,
v_proj in transformers 5) and
the classifier in modules_to_save. Each is exported with scripts/export_checkpoint.py (traced,
named inputs, layer taps as outputs), scored by `fisheval eval`, and compared with a float64
oracle computed on the Hugging Face model itself (tests/e2e/oracle.py through the read-out,
not through the export): γ of sgd, ef, ief, ief-param, sf (the same sampled labels), ng-dense,
and for the LoRA models the layer methods kfac-exact, ekfac, iekfac and shampoo. The
prompt-tuning parameter belongs to no layer: the layer methods are skipped with that reason.
"""
import json
import os
import sys
import warnings

import h5py
import numpy as np
import torch

from common import SOURCE, Failures, run, work_dir
from oracle import Oracle, splitmix64

sys.path.insert(0, os.path.join(SOURCE, "scripts"))
import export_checkpoint as ex  # noqa: E402
import hf_export  # noqa: E402

warnings.simplefilter("ignore")
from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model  # noqa: E402
from transformers import T5Config, T5ForConditionalGeneration, ViTConfig, ViTForImageClassification  # noqa: E402

GRAM = ["sgd", "ef", "ief", "ief-param", "sf", "ng-dense"]
LAYER = ["kfac-exact", "ekfac", "iekfac", "shampoo"]
DAMPINGS = [1e-3, 0.1]
N, SAMPLES, SEED = 5, 12, 3


def t5(adapter, save_base_to=None):
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=40, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=4,
                   decoder_start_token_id=0, pad_token_id=0, dropout_rate=0.0)
    base = T5ForConditionalGeneration(cfg).double().eval()
    if save_base_to:  # the pre-trained model, as a fine-tuning run starts from it
        base.save_pretrained(save_base_to)
    if adapter == "lora":
        model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q", "v"], lora_dropout=0.0))
    else:
        model = get_peft_model(base, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=3))
    with torch.no_grad():  # trained-looking adapters: every factor has a gradient
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.normal_(0, 0.3)
    ids = torch.randint(2, 40, (SAMPLES, 7))
    mask = torch.ones(SAMPLES, 7, dtype=torch.long)
    mask[::3, 5:] = 0
    ids[mask == 0] = 0
    labels = torch.randint(2, 40, (SAMPLES,))   # the labels' first tokens
    return model.double().eval(), {"input_ids": ids, "attention_mask": mask}, labels


def vit():
    torch.manual_seed(1)
    cfg = ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=32, num_labels=5, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
    base = ViTForImageClassification(cfg).double().eval()
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                                            modules_to_save=["classifier"]))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    return model.double().eval(), {"pixel_values": torch.randn(SAMPLES, 3, 8, 8, dtype=torch.float64)}, torch.randint(0, 5, (SAMPLES,))


class ReadOut(torch.nn.Module):
    """The oracle's model: the Hugging Face model through fisheval's read-out."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.readout = hf_export.default_readout(model)

    def forward(self, inputs):
        return self.readout(self.model, inputs)


def close(a, e, tol):
    return np.allclose(a, e, rtol=tol, atol=1e-12 * max(1.0, np.abs(e).max()))


def check(fx, name, model, inputs, labels, layer_methods):
    w = work_dir(f"hf-{name}")
    ckpt, data = os.path.join(w, "ckpt.pt"), os.path.join(w, "data.h5")
    ex.export_checkpoint(model, ckpt)
    ex.export_data(data, inputs, labels)
    methods = GRAM + layer_methods
    out = os.path.join(w, "r.h5")
    _, err = run(["eval", "--checkpoints", ckpt, "--data", data, "--batch-size", str(N), "--num-batches", "1",
                  "--methods", ",".join(methods), "--damping", ",".join(map(str, DAMPINGS)), "--seed", str(SEED),
                  "--dtype", "float64", "--out", out, "--quiet"])
    with h5py.File(out, "r") as f:
        idx = f["batch_samples"][0]
        x = {k: v[idx] for k, v in inputs.items()}
        o = Oracle(ReadOut(model), x, labels[idx], ce=True)
        o.Jhat = o.sampled_rows(splitmix64(SEED, 0))
        fx.check(int(f["num_params"][0, 0]) == o.g.size, f"{name}: P {f['num_params'][0, 0]} vs {o.g.size}")
        names = [e["name"] for e in json.loads(f["checkpoint_parameters"].asstr()[0])]
        fx.check(names == [n for n, _ in o.named], f"{name}: parameters {names}")  # both under the wrapper's "model."
        fx.check(close(f["loss"][0, 0], o.losses.sum(), 1e-10), f"{name}: loss")
        for j, lam in enumerate(DAMPINGS):
            dirs = o.gram_directions(lam)
            if layer_methods:
                dirs.update(o.layer_directions(lam, layer_methods))
            for m, method in enumerate(methods):
                expected, got = o.gamma(dirs[method]), f["gamma"][0, 0, m, j]
                fx.check(close(got, expected, 1e-7), f"{name} {method} λ={lam}: γ {got} vs oracle {expected}")
        status = f["method_status"].asstr()[0]
        fx.check(all(s == "" for s in status), f"{name}: every method ran: {status}")
    return ckpt, data


def main():
    fx = Failures()
    check(fx, "t5-lora", *t5("lora"), LAYER)
    check(fx, "vit-lora", *vit(), LAYER)
    ckpt, data = check(fx, "t5-prompt", *t5("prompt"), [])
    # Prompt tuning: the layer families are skipped with a reason that is true; the rest run.
    out = os.path.join(work_dir("hf-t5-prompt-layers"), "r.h5")
    _, err = run(["eval", "--checkpoints", ckpt, "--data", data, "--batch-size", str(N), "--methods", "sgd,kfac,shampoo",
                  "--damping", "1e-3", "--out", out, "--quiet"])
    with h5py.File(out, "r") as f:
        status = f["method_status"].asstr()[0]
        fx.check(status[0] == "" and np.isfinite(f["gamma"][0, 0, 0, 0]), "t5-prompt: sgd ran")
        for s in status[1:]:
            fx.check("prompt_encoder" in s and "belong to no Linear/Conv2d layer" in s and "export" not in s,
                     f"t5-prompt: the reason names the prompt parameter and is true: {s}")
    check_series(fx)
    fx.close()


def check_series(fx):
    """From a base model folder and PEFT adapter checkpoints, as a training run leaves them, to a
    series (scripts/peft_series.py) that `fisheval eval --series` scores: the same numbers as
    exporting each adapted model directly."""
    import subprocess
    w = work_dir("hf-series")
    base_dir = os.path.join(w, "base")
    model, inputs, labels = t5("lora", save_base_to=base_dir)
    adapters = []
    for step in (10, 20):
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn_like(p))
        folder = os.path.join(w, "run", f"checkpoint-{step}")
        model.save_pretrained(folder)
        adapters.append(folder)
    ex.export_checkpoint(model, os.path.join(w, "direct.pt"))  # the last stage, exported directly
    data = os.path.join(w, "data.h5")
    ex.export_data(data, inputs, labels)
    series = os.path.join(w, "series")
    p = subprocess.run([sys.executable, os.path.join(SOURCE, "scripts", "peft_series.py"), "--base", base_dir,
                        "--adapters", *adapters, "--out", series, "--dtype", "float64"], capture_output=True, text=True)
    fx.check(p.returncode == 0, f"peft_series.py failed: {p.stderr}")
    if p.returncode != 0:
        return
    args = ["--data", data, "--batch-size", str(N), "--methods", "sgd,ief,kfac", "--damping", "1e-3", "--quiet"]
    run(["eval", "--series", series, "--out", os.path.join(w, "series.h5"), *args])
    run(["eval", "--checkpoints", os.path.join(w, "direct.pt"), "--out", os.path.join(w, "direct.h5"), *args])
    with h5py.File(os.path.join(w, "series.h5"), "r") as s, h5py.File(os.path.join(w, "direct.h5"), "r") as d:
        fx.check(list(s["checkpoint"]["step"]) == [10, 20], f"series steps {list(s['checkpoint']['step'])}")
        fx.check(np.allclose(s["gamma"][1], d["gamma"][0], rtol=1e-10), "the series' last stage = the direct export")
        fx.check(not np.allclose(s["gamma"][0], s["gamma"][1]), "the stages differ")


if __name__ == "__main__":
    main()
