#!/usr/bin/python3
"""Optimiser comparison (the paper's Table 8, scaled down): train the same MLP on
Fashion-MNIST with sgd, adamw, ef, sf and ief, each at the learning rate that won a
small search on a validation split, and tabulate final train loss and accuracies.

    /usr/bin/python3 scripts/compare_optimisers.py [--fisheval build/fisheval] [--out DIR]

Protocol (every number a flag; defaults documented in docs/TRAINING.md):
  * data: the first --train-samples Fashion-MNIST training images, of which the last
    --valid-samples are held out for validation; the full 10000-image test set;
  * search: for each optimiser, every learning rate of its grid (GRIDS below) is trained
    for --search-epochs; the one with the best final validation accuracy wins
    (a diverged run loses);
  * final: each optimiser trains for --epochs at its chosen learning rate with the
    same seed (same initialisation, same batches); reported are the final train loss
    (on the training samples), the final validation and test accuracy, and the test
    accuracy of the stage with the best validation accuracy (the paper's protocol).
Writes DIR/search.csv, DIR/final.csv and DIR/table.md (also printed).
"""
import argparse
import csv
import os
import subprocess
import sys
import time

# Learning-rate grids. For ef and sf the updates are normalised and decay linearly
# (the paper's schedule), so η is the norm of the first update.
GRIDS = {
    "sgd": [0.03, 0.1, 0.3],
    "adamw": [3e-4, 1e-3, 3e-3],
    "ef": [0.03, 0.1, 0.3, 1.0],
    "sf": [0.03, 0.1, 0.3, 1.0],
    "ief": [0.03, 0.1, 0.3, 1.0],
}
ORDER = ["ief", "adamw", "sgd", "sf", "ef"]  # as in the paper's Table 8
PAPER = {"ief": 58.6, "adamw": 56.6, "sgd": 54.4, "sf": 55.2, "ef": 29.2}  # Table 8, test accuracy (%)


def train(args, optimiser, lr, epochs, out):
    cmd = [args.fisheval, "train", "--model", "mlp", "--widths", args.widths, "--activation", args.activation,
           "--optimizer", optimiser, "--lr", repr(lr), "--damping", repr(args.damping),
           "--data", f"fashion-mnist:train:{args.train_samples}", "--valid-samples", str(args.valid_samples),
           "--eval-samples", "0", "--epochs", str(epochs), "--batch-size", str(args.batch_size),
           "--save-epochs", str(args.save_epochs), "--seed", str(args.seed), "--out", out, "--overwrite", "--quiet"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    stages = []
    manifest = os.path.join(out, "manifest.csv")
    if os.path.exists(manifest):
        with open(manifest) as f:
            stages = list(csv.DictReader(f))
    diverged = proc.returncode != 0
    if diverged and proc.returncode != 1:
        sys.exit(f"fisheval train failed ({proc.returncode}):\n{proc.stderr}")
    return stages, diverged, seconds


def summarise(stages, diverged):
    if diverged or not stages:
        return {"train_loss": float("nan"), "valid_accuracy": float("nan"), "test_accuracy": float("nan"),
                "best_valid_test_accuracy": float("nan"), "diverged": True}
    last = stages[-1]
    best = max(stages[1:] or stages, key=lambda s: float(s["valid_accuracy"]))
    return {"train_loss": float(last["train_loss"]), "valid_accuracy": float(last["valid_accuracy"]),
            "test_accuracy": float(last["test_accuracy"]), "best_valid_test_accuracy": float(best["test_accuracy"]),
            "diverged": False}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fisheval", default="build/fisheval")
    ap.add_argument("--out", default="optimiser-comparison")
    ap.add_argument("--optimizers", default=",".join(ORDER))
    ap.add_argument("--widths", default="128,64")
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--train-samples", type=int, default=12000)
    ap.add_argument("--valid-samples", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--search-epochs", type=int, default=2)
    ap.add_argument("--save-epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--damping", type=float, default=1e-6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-search", action="store_true", help="use each optimiser's default learning rate")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    optimisers = [o for o in args.optimizers.split(",") if o]
    t_start = time.time()

    chosen, search_rows = {}, []
    for opt in optimisers:
        if args.no_search:
            chosen[opt] = None
            continue
        best = None
        for lr in GRIDS[opt]:
            stages, diverged, seconds = train(args, opt, lr, args.search_epochs,
                                              os.path.join(args.out, "search", f"{opt}_lr{lr:g}"))
            s = summarise(stages, diverged)
            search_rows.append({"optimizer": opt, "lr": lr, "seconds": round(seconds, 1), **s})
            print(f"search {opt:5} lr {lr:<7g} valid acc {s['valid_accuracy']:.4f} train loss "
                  f"{s['train_loss']:.4f} ({seconds:.0f}s)", file=sys.stderr)
            if not s["diverged"] and (best is None or s["valid_accuracy"] > best[1]):
                best = (lr, s["valid_accuracy"])
        chosen[opt] = best[0] if best else GRIDS[opt][0]
    if search_rows:
        with open(os.path.join(args.out, "search.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(search_rows[0]))
            w.writeheader()
            w.writerows(search_rows)

    final_rows = []
    for opt in optimisers:
        lr = chosen[opt]
        out = os.path.join(args.out, "final", opt)
        cmd_lr = lr if lr is not None else -1.0
        stages, diverged, seconds = train(args, opt, cmd_lr, args.epochs, out)
        s = summarise(stages, diverged)
        final_rows.append({"optimizer": opt, "lr": lr if lr is not None else "default", "seconds": round(seconds, 1),
                           **s})
        print(f"final  {opt:5} test acc {s['test_accuracy']:.4f} train loss {s['train_loss']:.4f} "
              f"({seconds:.0f}s)", file=sys.stderr)
    with open(os.path.join(args.out, "final.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(final_rows[0]))
        w.writeheader()
        w.writerows(final_rows)

    lines = ["| optimiser | lr | final train loss | final valid acc. (%) | final test acc. (%) | "
             "test acc. at best valid (%) | time (s) | paper Table 8 test acc. (%) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in final_rows:
        def pct(v):
            return "diverged" if v != v else f"{100 * v:.1f}"
        lines.append(f"| {r['optimizer']} | {r['lr']} | {r['train_loss']:.4f} | {pct(r['valid_accuracy'])} | "
                     f"{pct(r['test_accuracy'])} | {pct(r['best_valid_test_accuracy'])} | {r['seconds']} | "
                     f"{PAPER.get(r['optimizer'], '—')} |")
    lines.append("")
    lines.append(f"MLP {args.widths} ({args.activation}) on the first {args.train_samples} Fashion-MNIST training "
                 f"images ({args.valid_samples} held out for validation), batch {args.batch_size}, "
                 f"{args.epochs} epochs, damping {args.damping:g} (ef, sf, ief), seed {args.seed}; "
                 f"learning rates searched over {args.search_epochs} epoch(s) "
                 f"({'; '.join(f'{o}: {GRIDS[o]}' for o in optimisers)}). "
                 f"Total wall time {time.time() - t_start:.0f} s.")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
