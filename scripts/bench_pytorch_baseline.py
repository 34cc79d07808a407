#!/usr/bin/env python3
"""The same evaluation written the plain PyTorch way, timed beside `fisheval bench`.

For one checkpoint and batch it computes what one fisheval unit computes — sgd, ef, ief,
sf, kfac, ekfac, iekfac and shampoo at DAMPINGS values (relative to max_n ‖∇θl_n‖²) and
the indicator γ of every direction — the way the paper's scripts and a typical
research script do it: per-sample gradients by a loop of backward passes (a TorchScript
checkpoint cannot be vmapped), Gram solves with torch.linalg, K-FAC and Shampoo factors
from the layers' recorded inputs and output gradients with one `eigh` per factor (the
input factor A, which kfac, ekfac and iekfac share, decomposed once; every damping reuses
the eigenpairs), and dᵀFd by double backward per
direction (grad of Jᵀu with respect to u, then the loss Hessian by another grad).

It then runs `fisheval bench` on the same checkpoint and batch, prints both tables side by
side with the speed-up, and checks that both compute the same γ for the deterministic
methods (sgd, ef, ief, ekfac, iekfac, shampoo) with `fisheval eval`.

    .venv/bin/python scripts/bench_pytorch_baseline.py --checkpoint ckpt.pt \
        [--data fashion-mnist:test | batches.h5] [--batch-size 32] [--dampings 10] \
        [--repeats 3] [--dtype float32|float64] [--fisheval build/fisheval]
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

METHODS = ["sgd", "ef", "ief", "sf", "kfac", "ekfac", "iekfac", "shampoo"]
DETERMINISTIC = ["sgd", "ef", "ief", "ekfac", "iekfac", "shampoo"]


# ----------------------------------------------------------------------------- data
def load_batch(spec, n, dtype):
    if spec.startswith("fashion-mnist"):
        split = spec.split(":")[1] if ":" in spec else "test"
        prefix = "train" if split == "train" else "t10k"
        root = os.environ.get("FISHEVAL_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
        with gzip.open(f"{root}/{prefix}-images-idx3-ubyte.gz") as f:
            images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
        with gzip.open(f"{root}/{prefix}-labels-idx1-ubyte.gz") as f:
            labels = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
        x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - 0.2860) / 0.3530
        return x.to(dtype), torch.from_numpy(labels.astype(np.int64))
    import h5py
    with h5py.File(spec, "r") as f:
        x, y = torch.from_numpy(f["inputs"][:n]), torch.from_numpy(f["targets"][:n])
    return (x.to(dtype) if x.is_floating_point() else x), (y.to(dtype) if y.is_floating_point() else y)


# ----------------------------------------------------------------------------- the plain evaluation
def per_sample_loss(z, y):
    if y.is_floating_point():
        return 0.5 * ((z - y) ** 2).reshape(z.shape[0], -1).sum(1)
    c = z.shape[-1]
    return F.cross_entropy(z.reshape(-1, c), y.reshape(-1), reduction="none", ignore_index=-100) \
        .reshape(z.shape[0], -1).sum(1)


def flat(grads, params):
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


class Plain:
    def __init__(self, model, x, y, seed=0):
        self.model, self.x, self.y = model, x, y
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.gen = torch.Generator().manual_seed(seed)

    def forward_backward(self):
        loss = per_sample_loss(self.model(self.x), self.y).sum()
        return flat(torch.autograd.grad(loss, self.params), self.params)

    def logit_grads(self, z):
        zz = z.detach().requires_grad_(True)
        return torch.autograd.grad(per_sample_loss(zz, self.y).sum(), zz)[0]

    def sampled_logit_grads(self, z):
        p = torch.softmax(z.detach().double(), -1)
        labels = torch.multinomial(p.reshape(-1, p.shape[-1]), 1, generator=self.gen).reshape(p.shape[:-1])
        return (p - F.one_hot(labels, p.shape[-1]).double()).to(z.dtype)

    def per_sample_rows(self, seed_fn):
        """A loop over samples: forward, logit seed, backward — the plain way."""
        rows = []
        for n in range(self.x.shape[0]):
            z = self.model(self.x[n:n + 1])
            u = seed_fn(n, z)
            rows.append(flat(torch.autograd.grad(z, self.params, u, allow_unused=True), self.params))
        return torch.stack(rows)

    def layers(self):
        """(module, weight name, bias name) of every tapped layer owning selected parameters."""
        out = []
        for name, m in self.model.named_modules():
            if hasattr(m, "fisheval_kind") and m.fisheval_kind == "linear":
                w, b = f"{name}.weight", f"{name}.bias"
                if w in self.names:
                    out.append((m, self.names.index(w), self.names.index(b) if b in self.names else -1))
        return out

    def fisher_quad(self, d):
        """dᵀFd by double backward, as the paper's code computes vGv."""
        z = self.model(self.x)
        loss = per_sample_loss(z, self.y).sum()
        grad_z = torch.autograd.grad(loss, z, create_graph=True)[0]
        u = torch.zeros_like(z, requires_grad=True)
        jt = torch.autograd.grad(z, self.params, u, create_graph=True)
        parts, i = [], 0
        for p in self.params:
            parts.append(d[i:i + p.numel()].view_as(p))
            i += p.numel()
        jv = torch.autograd.grad(jt, u, parts, retain_graph=True)[0]
        hjv = torch.autograd.grad(grad_z, z, jv)[0]
        return float((jv * hjv).sum())


def directions(pl, dampings, timings):
    """All directions of one unit; fills timings[stage] with seconds."""
    t = time.perf_counter
    out = {}
    t0 = t()
    z = pl.model(pl.x)
    r = pl.logit_grads(z)
    J = pl.per_sample_rows(lambda n, zn: r[n:n + 1])
    C = (J @ J.T).double()
    timings["per-sample gradients J and Gram C (loop)"] = t() - t0
    g = J.sum(0)
    s = (r.reshape(r.shape[0], -1) ** 2).sum(1).double()
    scale = float(C.diagonal().max())
    lams = [d * scale for d in dampings]
    eye = torch.eye(C.shape[0], dtype=torch.float64)
    out["sgd"] = [g]
    t0 = t()
    out["ef"] = [J.T @ torch.linalg.solve(C + l * eye, torch.ones_like(s)).to(J.dtype) for l in lams]
    timings["method ef"] = t() - t0
    t0 = t()
    out["ief"] = [J.T @ torch.linalg.solve(C + l * eye, s).to(J.dtype) for l in lams]
    timings["method ief"] = t() - t0
    t0 = t()
    rs = pl.sampled_logit_grads(z)
    Jh = pl.per_sample_rows(lambda n, zn: rs[n:n + 1])
    Ch = (Jh @ Jh.T).double()
    Jg = (Jh @ g).double()
    out["sf"] = [(g - Jh.T @ torch.linalg.solve(Ch + l * eye, Jg).to(J.dtype)) / l for l in lams]
    timings["method sf"] = t() - t0

    # K-FAC family from the recorded layer inputs and output gradients.
    t0 = t()
    z = pl.model(pl.x)
    layers = pl.layers()
    outs = [m.fisheval_output for m, _, _ in layers]
    ins = [m.fisheval_input.detach() for m, _, _ in layers]
    r = pl.logit_grads(z)
    rs = pl.sampled_logit_grads(z)
    b_true = torch.autograd.grad(z, outs, r, retain_graph=True)
    b_samp = torch.autograd.grad(z, outs, rs, retain_graph=True)
    offsets = np.cumsum([0] + [p.numel() for p in pl.params])
    timings["K-FAC taps (two backward passes), eigh of A"] = t() - t0

    def block_of(vec, wi, bi, shape):
        w = vec[offsets[wi]:offsets[wi + 1]].view(shape)
        return torch.cat([w, vec[offsets[bi]:offsets[bi + 1]].view(-1, 1)], 1) if bi >= 0 else w

    def put(blocks):
        d = torch.zeros_like(g)
        for (m, wi, bi), blk in zip(layers, blocks):
            w = blk[:, :pl.params[wi].shape[1]]
            d[offsets[wi]:offsets[wi + 1]] = w.reshape(-1)
            if bi >= 0:
                d[offsets[bi]:offsets[bi + 1]] = blk[:, -1]
        return d

    abar = []
    for (m, wi, bi), a in zip(layers, ins):
        a = a.reshape(-1, a.shape[-1]).double()
        abar.append(torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1) if bi >= 0 else a)
    # One eigendecomposition per factor: A = (1/NT) Σ ā āᵀ is the same for kfac, ekfac and
    # iekfac, so it is decomposed once per layer (timed with kfac, the first to need it).
    t0 = t()
    eig_a = [torch.linalg.eigh(a.T @ a / a.shape[0]) for a in abar]
    timings["K-FAC taps (two backward passes), eigh of A"] += t() - t0
    for name, bs, weight in [("kfac", b_samp, None), ("ekfac", b_true, None), ("iekfac", b_true, 1 / s)]:
        t0 = t()
        eig = []
        for ea, b in zip(eig_a, bs):
            b = b.reshape(b.shape[0], -1, b.shape[-1]).double()
            if weight is not None:
                b = b * weight.sqrt().view(-1, 1, 1)
            b = b.reshape(-1, b.shape[-1])
            eig.append((ea, torch.linalg.eigh(b.T @ b)))
        dirs = []
        for l in lams:
            blocks = []
            for (m, wi, bi), ((sa, ua), (sb, ub)) in zip(layers, eig):
                G = block_of(g, wi, bi, pl.params[wi].shape).double()
                blocks.append((ub @ ((ub.T @ G @ ua) / (sb.clamp_min(0)[:, None] * sa.clamp_min(0)[None, :] + l))
                               @ ua.T).to(g.dtype))
            dirs.append(put(blocks))
        out[name] = dirs
        timings[f"method {name}"] = t() - t0
    # Shampoo from per-sample gradient matrices (the rows of J).
    t0 = t()
    stats = []
    for (m, wi, bi) in layers:
        Gn = torch.stack([block_of(J[n], wi, bi, pl.params[wi].shape) for n in range(J.shape[0])]).double()
        SL = torch.einsum("nij,nkj->ik", Gn, Gn)
        SR = torch.einsum("nji,njk->ik", Gn, Gn)
        stats.append((torch.linalg.eigh(SL), torch.linalg.eigh(SR)))
    dirs = []
    for l in lams:
        blocks = []
        for (m, wi, bi), ((sl, ul), (sr, ur)) in zip(layers, stats):
            G = block_of(g, wi, bi, pl.params[wi].shape).double()
            el = l + 1e-12 * float(sl.max())
            er = l + 1e-12 * float(sr.max())
            Lm = ul @ torch.diag((sl.clamp_min(0) + el) ** -0.25) @ ul.T
            Rm = ur @ torch.diag((sr.clamp_min(0) + er) ** -0.25) @ ur.T
            blocks.append((Lm @ G @ Rm).to(g.dtype))
        dirs.append(put(blocks))
    out["shampoo"] = dirs
    timings["method shampoo"] = t() - t0
    return g, out


def evaluate(pl, dampings, timings):
    g, dirs = directions(pl, dampings, timings)
    t0 = time.perf_counter()
    gammas = {}
    for name, ds in dirs.items():
        gammas[name] = [np.sqrt(max(pl.fisher_quad(d), 0.0)) / abs(float(d @ g)) for d in ds]
    timings[f"indicator by double backward ({sum(len(v) for v in dirs.values())} directions)"] = \
        time.perf_counter() - t0
    return gammas


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default="fashion-mnist:test")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dampings", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--fisheval", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                                                       "fisheval"))
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.dtype == "float32" else torch.float64
    model = torch.jit.load(args.checkpoint).to(dtype)
    x, y = load_batch(args.data, args.batch_size, dtype)
    dampings = list(np.exp(np.linspace(np.log(1e-6), 0.0, args.dampings)))
    pl = Plain(model, x, y)
    pl.forward_backward()  # warm-up
    unit = median_ms(pl.forward_backward, max(args.repeats, 5))
    rows = [("forward+backward (the unit)", unit)]
    runs = []
    for _ in range(args.repeats):
        timings = {}
        t0 = time.perf_counter()
        evaluate(pl, dampings, timings)
        timings["whole unit"] = time.perf_counter() - t0
        runs.append(timings)
    for key in runs[0]:
        rows.append((key, float(np.median([r[key] for r in runs])) * 1e3))

    # fisheval bench on the same checkpoint and batch.
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [args.fisheval, "bench", "--checkpoint", args.checkpoint, "--data", args.data, "--batch-size",
               str(args.batch_size), "--methods", ",".join(METHODS), "--dampings", str(args.dampings), "--repeats",
               str(args.repeats), "--dtype", args.dtype, "--json", f"{tmp}/bench.json"]
        if args.threads > 0:
            cmd += ["--threads", str(args.threads)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        fb = json.load(open(f"{tmp}/bench.json"))
        # Agreement of γ on the deterministic methods (fisheval eval, same batch, same relative grid).
        subprocess.run([args.fisheval, "eval", "--checkpoints", args.checkpoint, "--data", args.data,
                        "--batch-size", str(args.batch_size), "--methods", ",".join(DETERMINISTIC),
                        "--damping-grid", f"1e-6:1:{args.dampings}", "--damping-mode", "relative",
                        "--dtype", "float64", "--out", f"{tmp}/r.h5", "--quiet"], check=True)
        import h5py
        with h5py.File(f"{tmp}/r.h5") as f:
            fisheval_gamma = {m: f["gamma"][0, 0, i] for i, m in enumerate(f["method"].asstr()[:])}
    pl64 = Plain(torch.jit.load(args.checkpoint).double(), *load_batch(args.data, args.batch_size, torch.float64))
    plain_gamma = evaluate(pl64, dampings, {})

    fe = {r["stage"]: r["median_ms"] for r in fb["rows"]}
    f_unit = fe["forward+backward (the unit)"]
    f_whole = [v for k, v in fe.items() if k.startswith("whole unit")][0]
    print(f"checkpoint {args.checkpoint}, data {args.data}, N = {args.batch_size}, P = {fb['params']}, "
          f"{args.dtype}, {torch.get_num_threads()} threads, {len(METHODS)} methods x {args.dampings} dampings\n")
    print(f"{'plain PyTorch stage':<58} {'ms':>10} {'x fwd+bwd':>10}")
    for name, ms in rows:
        print(f"{name:<58} {ms:>10.2f} {ms / unit:>10.2f}")
    print(f"\n{'fisheval stage':<58} {'ms':>10} {'x fwd+bwd':>10}")
    for r in fb["rows"]:
        print(f"{r['stage']:<58} {r['median_ms']:>10.2f} {r['ratio']:>10.2f}")
    base_whole = [ms for name, ms in rows if name == "whole unit"][0]
    print(f"\nwhole unit: plain PyTorch {base_whole:.1f} ms ({base_whole / unit:.1f}x its fwd+bwd), "
          f"fisheval {f_whole:.1f} ms ({f_whole / f_unit:.1f}x its fwd+bwd): fisheval is "
          f"{base_whole / f_whole:.1f}x faster")
    worst = 0.0
    for m in DETERMINISTIC:
        a, b = np.array(plain_gamma[m]), np.array(fisheval_gamma[m])
        err = float(np.max(np.abs(a - b) / np.abs(b)))
        worst = max(worst, err)
        print(f"  gamma agreement {m:<8} max relative difference {err:.2e} over {len(a)} dampings")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
