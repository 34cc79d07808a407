#!/usr/bin/env python3
"""The Fishy paper's autoencoder experiment, scaled down: train the deep autoencoder on
Fashion-MNIST pixel intensities (one Bernoulli per pixel) with Adam, K-FAC, Shampoo,
FIM-Shampoo and Fishy, each at the best learning rate of one shared grid, and score
γ/γ_sgd of the same methods along the winning runs with `fisheval eval`.

    .venv/bin/python scripts/compare_autoencoder.py [--fisheval build/fisheval] [--out DIR] [--reuse]

Protocol (every size a flag):
  * data: the first --train-samples images of fashion-mnist-pixels:train; the training loss
    of a stage is the mean summed binary cross-entropy (nats per image) on the first
    --eval-samples of them, the test loss on the first --eval-samples test images;
  * model: `fisheval train --model autoencoder --widths W` (--widths, default the `small`
    preset; `paper` is the paper's network), tanh, the narrowest layer linear;
  * every optimiser trains from the same initialisation on the same batches (--seed) for
    --steps steps of --batch-size, once per learning rate of LRS (the same grid for all;
    Adam is adamw with weight decay 0); the other settings are fisheval's defaults
    (statistics decay 0.95, refresh every 10 steps, ε = 1e-4 relative, Adam grafting);
  * the winner of each optimiser is the rate with the lowest final training loss (the
    paper's objective; a diverged run loses), trained again at --extra-seeds;
  * along the winning Adam and Fishy runs, `fisheval eval` scores sgd, kfac, shampoo,
    fim-shampoo and fishy on --eval-batches batches of 64 training images per stage.
Writes DIR/search.csv (every run), DIR/table.md (also printed), DIR/loss.png (training
loss against step for the winners), DIR/gamma_<run>.h5 and DIR/gamma.md.
"""
import argparse
import csv
import math
import os
import subprocess
import sys
import time

LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
ORDER = ["adamw", "kfac", "shampoo", "fim-shampoo", "fishy"]
LABEL = {"adamw": "Adam", "kfac": "K-FAC", "shampoo": "Shampoo", "fim-shampoo": "FIM-Shampoo", "fishy": "Fishy"}
EVAL_METHODS = "sgd,kfac,shampoo,fim-shampoo,fishy"


def train(args, optimiser, lr, out, seed=None):
    seed = args.seed if seed is None else seed
    manifest = os.path.join(out, "manifest.csv")
    if args.reuse and os.path.exists(manifest):
        with open(manifest) as f:
            stages = list(csv.DictReader(f))
        if stages and int(stages[-1]["step"]) == args.steps:
            return stages, False, float(stages[-1]["seconds"])
    cmd = [args.fisheval, "train", "--model", "autoencoder", "--widths", args.widths, "--activation", "tanh",
           "--optimizer", optimiser, "--lr", repr(lr), "--data", f"fashion-mnist-pixels:train:{args.train_samples}",
           "--test-data", f"fashion-mnist-pixels:test:{args.eval_samples}", "--eval-samples", str(args.eval_samples),
           "--max-steps", str(args.steps), "--epochs", "1000", "--batch-size", str(args.batch_size),
           "--save-every", str(args.save_every), "--seed", str(seed), "--out", out, "--overwrite", "--quiet"]
    if optimiser == "adamw":
        cmd += ["--weight-decay", "0"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"fisheval train failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    stages = []
    if os.path.exists(manifest):
        with open(manifest) as f:
            stages = list(csv.DictReader(f))
    return stages, proc.returncode != 0, seconds


def final_loss(stages, diverged):
    if diverged or not stages:
        return float("nan")
    v = float(stages[-1]["train_loss"])
    return v if math.isfinite(v) else float("nan")


def plot_losses(path, winners, runs_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for opt, row in winners.items():
        with open(os.path.join(runs_dir, row["tag"], "manifest.csv")) as f:
            stages = list(csv.DictReader(f))
        ax.plot([int(s["step"]) for s in stages], [float(s["train_loss"]) for s in stages], marker="o", ms=3,
                label=f"{LABEL[opt]} (lr {row['lr']:g})")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats per image)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def gamma_table(args, h5):
    """Per stage, γ/γ_sgd of each method (fisheval show's table, read back with h5py)."""
    out = subprocess.run([args.fisheval, "show", h5], capture_output=True, text=True)
    return out.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fisheval", default="build/fisheval")
    ap.add_argument("--out", default="autoencoder-comparison")
    ap.add_argument("--optimizers", default=",".join(ORDER))
    ap.add_argument("--widths", default="small")
    ap.add_argument("--train-samples", type=int, default=20000)
    ap.add_argument("--eval-samples", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--save-every", type=int, default=50)
    ap.add_argument("--eval-batches", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--extra-seeds", default="1,2",
                    help="re-run each winner at these seeds too (mean ± std of the final loss over all seeds)")
    ap.add_argument("--reuse", action="store_true", help="keep the finished runs already in DIR/runs")
    ap.add_argument("--skip-gamma", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    runs_dir = os.path.join(args.out, "runs")
    optimisers = [o for o in args.optimizers.split(",") if o]
    t_start = time.time()

    rows, winners = [], {}
    for opt in optimisers:
        for lr in LRS:
            tag = f"{opt}_lr{lr:g}"
            stages, diverged, seconds = train(args, opt, lr, os.path.join(runs_dir, tag))
            loss = final_loss(stages, diverged)
            test = float(stages[-1]["test_loss"]) if stages and not diverged else float("nan")
            row = {"optimizer": opt, "lr": lr, "final_train_loss": loss, "final_test_loss": test,
                   "diverged": diverged or not math.isfinite(loss), "seconds": round(seconds, 1), "tag": tag}
            rows.append(row)
            print(f"{opt:12} lr {lr:<7g} final train loss {loss:9.3f}  test {test:9.3f}  ({seconds:.0f}s)",
                  file=sys.stderr)
            if not row["diverged"] and (opt not in winners or loss < winners[opt]["final_train_loss"]):
                winners[opt] = row
    with open(os.path.join(args.out, "search.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # The winners again at other seeds (initialisation, batches, sampled labels).
    seeds = [int(x) for x in args.extra_seeds.split(",") if x]
    over_seeds = {}
    for opt, r in winners.items():
        losses = [r["final_train_loss"]]
        for seed in seeds:
            stages, diverged, _ = train(args, opt, r["lr"], os.path.join(runs_dir, f"{r['tag']}_seed{seed}"), seed)
            losses.append(final_loss(stages, diverged))
        over_seeds[opt] = losses
        print(f"{opt:12} lr {r['lr']:<7g} final train loss over seeds {losses}", file=sys.stderr)

    def mean_std(v):
        m = sum(v) / len(v)
        return m, (sum((x - m) ** 2 for x in v) / max(len(v) - 1, 1)) ** 0.5

    lines = ["| optimiser | best lr | final training loss | final test loss | "
             f"final training loss, seeds {args.seed},{args.extra_seeds} (mean ± std) | loss at every lr of the grid | "
             "seconds |", "|---|---|---|---|---|---|---|"]
    for opt in optimisers:
        grid = ", ".join("div." if r["diverged"] else f"{r['final_train_loss']:.1f}"
                         for r in rows if r["optimizer"] == opt)
        r = winners.get(opt)
        if r is None:
            lines.append(f"| {LABEL[opt]} | — | diverged | — | — | {grid} | — |")
        else:
            m, sd = mean_std(over_seeds[opt])
            lines.append(f"| {LABEL[opt]} | {r['lr']:g} | {r['final_train_loss']:.2f} | {r['final_test_loss']:.2f} | "
                         f"{m:.1f} ± {sd:.1f} | {grid} | {r['seconds']:.0f} |")
    lines.append("")
    lines.append(f"autoencoder --widths {args.widths} (tanh, linear code) on the first {args.train_samples} "
                 f"Fashion-MNIST training images (pixel intensities as Bernoulli targets); {args.steps} steps of "
                 f"batch {args.batch_size}, seed {args.seed}; losses in nats per image on the first "
                 f"{args.eval_samples} training / test images; grid lr ∈ {{{', '.join(f'{x:g}' for x in LRS)}}}. "
                 f"{len(rows)} runs, {time.time() - t_start:.0f} s.")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    print(table)
    plot_losses(os.path.join(args.out, "loss.png"), winners, runs_dir)

    if args.skip_gamma:
        return 0
    gamma = []
    for opt in ("adamw", "fishy"):
        if opt not in winners:
            continue
        run = os.path.join(runs_dir, winners[opt]["tag"])
        h5 = os.path.join(args.out, f"gamma_{opt}.h5")
        cmd = [args.fisheval, "eval", "--series", run, "--data", f"fashion-mnist-pixels:train:{args.train_samples}",
               "--methods", EVAL_METHODS, "--batch-size", "64", "--num-batches", str(args.eval_batches),
               "--damping", "1e-6", "--damping-mode", "relative", "--shampoo-epsilon", "1e-4", "--out", h5,
               "--overwrite", "--quiet"]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        t0 = time.time()
        subprocess.run(cmd, check=True)
        gamma.append(f"### Along the winning {LABEL[opt]} run (lr {winners[opt]['lr']:g}), "
                     f"{time.time() - t0:.0f} s\n\n```\n{gamma_table(args, h5)}```\n")
    with open(os.path.join(args.out, "gamma.md"), "w") as f:
        f.write("\n".join(gamma))
    print("\n".join(gamma))
    return 0


if __name__ == "__main__":
    sys.exit(main())
