#!/usr/bin/env python3
"""fisheval beside the peers a user would reach for, curvlinops and BackPACK: the same
quantities on the same model and batch, checked equal, then timed in one table.

Model and batch: the 784-512-512-10 ReLU MLP of scripts/bench_models.py (float64, seed 0),
the first N Fashion-MNIST test images, cross-entropy **summed** over the batch (fisheval's
convention, docs/METHODS.md; the peers get `reduction="sum"`). The script builds the model
once, exports it with scripts/export_checkpoint.py and the batch with export_data, runs
`fisheval eval` (absolute dampings) and `fisheval bench` on them, and computes with the
peers:

  per-sample gradients   BackPACK `BatchGrad`                 vs fisheval's per_sample_grad_norm
  ef, ief directions     from BackPACK's per-sample gradients (Jᵀ(JJᵀ + λI)⁻¹1, Jᵀ(JJᵀ + λI)⁻¹s)
  kfac-exact directions  curvlinops `KFACLinearOperator(fisher_type="type-2",
                         separate_weight_and_bias=False)` and `KFACInverseLinearOperator(
                         damping=λ, use_exact_damping=True)`: (A ⊗ B + λI)⁻¹ g
  ekfac directions       the same with fisher_type="empirical" (B from the true labels)
  dᵀFd of every one      curvlinops `GGNLinearOperator` (the GGN is the Fisher for cross-entropy)
  KFLR factors           BackPACK `KFLR` vs curvlinops type-2 with separate_weight_and_bias=True

and compares dᵀg, ‖d‖, dᵀFd and γ = sqrt(dᵀFd)/|dᵀg| with fisheval's result file, cell by
cell (relative difference), and BackPACK's KFLR factors with curvlinops'.

Conventions: fisheval's layer block of a Linear layer is [W | b] (the bias as the last
column, input ā = [a; 1]), so its A holds the cross-terms of weight and bias; curvlinops
does the same with separate_weight_and_bias=False. BackPACK's KFLR (and curvlinops'
default) block the bias apart from the weight: a block-diagonal K-FAC without those
cross-terms, a different approximation; its factors are compared with curvlinops' same
convention, not with fisheval's.

    .venv/bin/python scripts/bench_peers.py [--batch-size 32] [--dampings 10] [--repeats 3] \
        [--threads 2] [--fisheval build/fisheval] [--out DIR]

Exit status 1 when any compared value differs by more than 1e-8 (relative).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import warnings

import numpy as np
import torch
import torch.nn as nn

# BackPACK's hooks on a model whose input needs no gradient (its warning is about that).
warnings.filterwarnings("ignore", message="Full backward hook is firing")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_models import mlp  # noqa: E402
from bench_pytorch_baseline import load_batch  # noqa: E402
from bench_pytorch_baseline import median_ms as baseline_median_ms  # noqa: E402
from export_checkpoint import export_checkpoint, export_data  # noqa: E402

TOL = 1e-8


def median_ms(fn, repeats):
    fn()  # warm-up
    return baseline_median_ms(fn, repeats)


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=32, help="N, samples in the batch (default 32)")
    ap.add_argument("--dampings", type=int, default=10,
                    help="number of absolute dampings, log-spaced over 1e-4..1e2 (default 10)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions, the median is reported (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="threads of PyTorch and fisheval (default 2)")
    ap.add_argument("--fisheval", default=os.path.join(HERE, "..", "build", "fisheval"))
    ap.add_argument("--out", default=None, help="folder for the checkpoint, batch and result file (default: temporary)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from backpack import backpack, extend
    from backpack.extensions import KFLR, BatchGrad
    from curvlinops import GGNLinearOperator, KFACInverseLinearOperator, KFACLinearOperator

    tmp = tempfile.TemporaryDirectory()
    out = args.out or tmp.name
    os.makedirs(out, exist_ok=True)
    model = mlp()
    x, y = load_batch("fashion-mnist:test", args.batch_size, torch.float64)
    ckpt, data, res = f"{out}/mlp.pt", f"{out}/batch.h5", f"{out}/results.h5"
    export_checkpoint(model, ckpt)
    export_data(data, x, y)
    dampings = list(np.exp(np.linspace(np.log(1e-4), np.log(1e2), args.dampings)))
    methods = ["sgd", "ef", "ief", "kfac-exact", "ekfac"]

    # ---------------------------------------------------------------- fisheval
    damping_arg = ",".join(repr(float(d)) for d in dampings)
    subprocess.run([args.fisheval, "eval", "--checkpoints", ckpt, "--data", data, "--batch-size",
                    str(args.batch_size), "--num-batches", "1", "--methods", ",".join(methods), "--damping",
                    damping_arg, "--dtype", "float64", "--threads", str(args.threads), "--out", res, "--overwrite",
                    "--quiet"], check=True)
    subprocess.run([args.fisheval, "bench", "--checkpoint", ckpt, "--data", data, "--batch-size", str(args.batch_size),
                    "--methods", ",".join(methods), "--dampings", str(args.dampings), "--repeats", str(args.repeats),
                    "--dtype", "float64", "--threads", str(args.threads), "--json", f"{out}/bench.json"],
                   check=True, stdout=subprocess.DEVNULL)
    import h5py
    with h5py.File(res, "r") as f:
        names = list(f["method"].asstr()[:])
        fe = {k: f[k][0, 0] for k in ("gamma", "d_dot_g", "d_fisher_d", "update_norm")}
        fe_norms = f["per_sample_grad_norm"][0, 0]
        fe_dampings = f["damping"][:]
    assert np.allclose(fe_dampings, dampings, rtol=1e-15), "fisheval read other dampings"
    bench = {r["stage"]: r["median_ms"] for r in json.load(open(f"{out}/bench.json"))["rows"]}

    # ---------------------------------------------------------------- the peers
    params = [p for p in model.parameters()]
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    batch = [(x, y)]

    def fwd_bwd():
        model.zero_grad()
        loss_fn(model(x), y).backward()

    bp_model, bp_loss = extend(mlp()), extend(nn.CrossEntropyLoss(reduction="sum"))
    bp_model.load_state_dict(model.state_dict())
    bp_params = list(bp_model.parameters())

    def batch_grad():
        bp_model.zero_grad()
        with backpack(BatchGrad()):
            bp_loss(bp_model(x), y).backward()
        return torch.cat([p.grad_batch.reshape(x.shape[0], -1) for p in bp_params], 1), flat(p.grad for p in bp_params)

    def kflr():
        bp_model.zero_grad()
        with backpack(KFLR()):
            bp_loss(bp_model(x), y).backward()
        return [[f.clone() for f in p.kflr] for p in bp_params]

    def ggn():
        return GGNLinearOperator(model, loss_fn, params, batch, check_deterministic=False)

    def kfac(fisher_type, joint=True):
        op = KFACLinearOperator(model, loss_fn, params, batch, fisher_type=fisher_type,
                                separate_weight_and_bias=not joint, check_deterministic=False)
        op.compute_kronecker_factors()
        return op

    def gram_directions(J, g, rhs):
        # Jᵀ (JJᵀ + λI)⁻¹ rhs for every λ: one eigendecomposition of the Gram matrix C = JJᵀ.
        C = J @ J.T
        s, U = torch.linalg.eigh(C)
        t = U.T @ rhs
        return [J.T @ (U @ (t / (s + lam))) for lam in dampings]

    def score(F, g, ds):
        out = {"d_dot_g": [], "d_fisher_d": [], "update_norm": [], "gamma": []}
        for d in ds:
            dFd = float(d @ (F @ d))
            dg = float(d @ g)
            out["d_dot_g"].append(dg)
            out["d_fisher_d"].append(dFd)
            out["update_norm"].append(float(d.norm()))
            out["gamma"].append(np.sqrt(max(dFd, 0.0)) / abs(dg))
        return out

    def kfac_unit(fisher_type):
        K, F = kfac(fisher_type), ggn()
        g = flat(torch.autograd.grad(loss_fn(model(x), y), params))
        ds = [KFACInverseLinearOperator(K, damping=float(lam), use_exact_damping=True) @ g for lam in dampings]
        return score(F, g, ds)

    def gram_unit():
        J, g = batch_grad()
        z = model(x).detach()
        p = torch.softmax(z, 1)
        r = p - nn.functional.one_hot(y, z.shape[1]).to(p.dtype)  # ∇_z l_n for cross-entropy
        s = (r ** 2).sum(1)  # logit_grad_norm_sq
        F = ggn()
        return {"ef": score(F, g, gram_directions(J, g, torch.ones_like(s))),
                "ief": score(F, g, gram_directions(J, g, s))}

    peers = {}
    peers.update(gram_unit())
    peers["kfac-exact"] = kfac_unit("type-2")
    peers["ekfac"] = kfac_unit("empirical")

    # ---------------------------------------------------------------- values
    worst = 0.0
    lines = []

    def compare(label, a, b, matrix=False):
        # Per cell: the largest relative difference; a matrix: the largest difference
        # relative to its largest entry.
        nonlocal worst
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        scale = np.max(np.abs(b)) if matrix else np.maximum(np.abs(b), 1e-300)
        err = float(np.max(np.abs(a - b) / scale))
        worst = max(worst, err)
        lines.append(f"  {label:<66} max rel. diff {err:.1e}")

    J, _ = batch_grad()
    compare("per-sample gradient norms ‖∇θ l_n‖: BackPACK BatchGrad vs fisheval", J.norm(dim=1), fe_norms)
    for m, peer in [("ef", "BackPACK per-sample gradients"), ("ief", "BackPACK per-sample gradients"),
                    ("kfac-exact", "curvlinops KFAC type-2, joint [W|b], exact damping"),
                    ("ekfac", "curvlinops KFAC empirical, joint [W|b], exact damping")]:
        i = names.index(m)
        for k in ("d_dot_g", "update_norm", "d_fisher_d", "gamma"):
            compare(f"{m} {k} ({peer})", peers[m][k], fe[k][i])
    bp = kflr()
    cl = kfac("type-2", joint=False)
    for li, (name, mod) in enumerate((n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)):
        w, b = 2 * li, 2 * li + 1
        compare(f"KFLR {name}.weight B: BackPACK vs curvlinops (bias apart)", bp[w][0],
                cl._gradient_covariances[name], True)
        compare(f"KFLR {name}.weight A: BackPACK vs curvlinops (bias apart)", bp[w][1], cl._input_covariances[name],
                True)
        compare(f"KFLR {name}.bias   B: BackPACK vs curvlinops (bias apart)", bp[b][0], cl._gradient_covariances[name],
                True)

    # ---------------------------------------------------------------- times
    unit = median_ms(fwd_bwd, max(args.repeats, 5))
    F = ggn()
    v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64)
    K = kfac("type-2")
    # fisheval's time of a method: its row of `fisheval bench` (its directions, its own
    # statistics and eigendecompositions, the indicator) plus all of the shared per-batch work
    # (g, the Gram matrix, the sampled Gram matrix, the output-unit taps), more than it needs.
    shared = [v for k, v in bench.items() if k.startswith("shared per-batch work")][0]
    per_sample = median_ms(batch_grad, args.repeats)
    rows = [
        ("forward+backward, plain PyTorch", unit, bench["forward+backward (the unit)"]),
        ("per-sample gradients as an N×P matrix: BackPACK BatchGrad | fisheval", per_sample,
         [v for k, v in bench.items() if k.startswith("per-sample gradients J as an N×P")][0]),
        ("what ef/ief need of them: BackPACK BatchGrad | fisheval Gram C = JJᵀ", per_sample,
         [v for k, v in bench.items() if k.startswith("per-sample Gram")][0]),
        ("GGN/Fisher-vector product: curvlinops | fisheval", median_ms(lambda: F @ v, args.repeats),
         [v for k, v in bench.items() if k.startswith("Fisher-vector product")][0]),
        ("KFLR factors: BackPACK KFLR", median_ms(kflr, args.repeats), None),
        ("KFAC type-2 factors: curvlinops", median_ms(lambda: kfac("type-2"), args.repeats), None),
        ("inverse KFAC applied to g, one damping: curvlinops",
         median_ms(lambda: KFACInverseLinearOperator(K, damping=1e-2, use_exact_damping=True) @ v, args.repeats),
         None),
        (f"ef + ief, {args.dampings} dampings with γ: BackPACK + curvlinops GGN | fisheval",
         median_ms(gram_unit, args.repeats),
         bench[f"method ef: {args.dampings} direction(s) + indicator"]
         + bench[f"method ief: {args.dampings} direction(s) + indicator"] + shared),
        (f"kfac-exact, {args.dampings} dampings with γ: curvlinops | fisheval",
         median_ms(lambda: kfac_unit("type-2"), args.repeats),
         bench[f"method kfac-exact: {args.dampings} direction(s) + indicator"] + shared),
        (f"ekfac, {args.dampings} dampings with γ: curvlinops | fisheval",
         median_ms(lambda: kfac_unit("empirical"), args.repeats),
         bench[f"method ekfac: {args.dampings} direction(s) + indicator"] + shared),
    ]
    fb = bench["forward+backward (the unit)"]
    print(f"784-512-512-10 MLP, P = {sum(p.numel() for p in params)}, N = {args.batch_size}, float64, "
          f"{torch.get_num_threads()} threads, {args.dampings} absolute dampings 1e-4..1e2\n")
    print("values (fisheval's result file vs the peers; the KFLR rows compare the two peers):")
    print("\n".join(lines))
    print(f"\n{'stage':<70} {'peer ms':>9} {'x fwd+bwd':>9} {'fisheval ms':>11} {'x fwd+bwd':>9} {'speed-up':>8}")
    for name, peer_ms, fe_ms in rows:
        tail = f"{fe_ms:>11.2f} {fe_ms / fb:>9.2f} {peer_ms / fe_ms:>7.1f}x" if fe_ms is not None else ""
        print(f"{name:<70} {peer_ms:>9.2f} {peer_ms / unit:>9.2f} {tail}")
    print(f"\nworst relative difference {worst:.1e} (tolerance {TOL:g})")
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
