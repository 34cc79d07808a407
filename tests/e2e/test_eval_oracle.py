#!/usr/bin/env python3
"""End to end: `fisheval eval` on real TorchScript checkpoints made by PyTorch writes an
HDF5 file that h5py reads, with the values an independent oracle gives.

The oracle (tests/e2e/oracle.py) is plain PyTorch + NumPy (float64): per-sample gradients by
a loop of torch.autograd.grad, the logit Jacobian row by row, the loss Hessian by
torch.autograd.functional.hessian, the Fisher as Σ JᵀHJ, and every direction by a
direct solve in parameter space (no Woodbury, no fisheval code).
"""
import h5py
import numpy as np
import torch

from common import Failures, fixture, run, work_dir
from oracle import Oracle, splitmix64

DAMPINGS = [0.0, 1e-3, 0.1]
METHODS = ["sgd", "ef", "ief", "ief-param", "ng-dense", "ng-cg"]


def check_fixture(fx, name, batch_size=6, num_batches=2, extra=()):
    out_dir = work_dir(f"oracle-{name}")
    out = f"{out_dir}/r.h5"
    run(["eval", "--checkpoints", fixture(name + ".pt"), "--data", fixture(name + ".h5"), "--batch-size",
         str(batch_size), "--num-batches", str(num_batches), "--methods", ",".join(METHODS), "--damping",
         ",".join(map(str, DAMPINGS)), "--dtype", "float64", "--cg-max-iter", "2000", "--cg-rtol", "1e-12",
         "--out", out, "--quiet", *extra])
    model = torch.jit.load(fixture(name + ".pt")).double()
    with h5py.File(fixture(name + ".h5"), "r") as d:
        inputs, targets = torch.from_numpy(d["inputs"][:]), torch.from_numpy(d["targets"][:])
    if inputs.is_floating_point():
        inputs = inputs.double()
    ce = not targets.is_floating_point()
    with h5py.File(out, "r") as f:
        fx.check(list(f["method"].asstr()[:]) == METHODS, f"{name}: method axis")
        fx.check(np.allclose(f["damping"][:], DAMPINGS), f"{name}: damping axis")
        fx.check(f["gamma"].shape == (1, num_batches, len(METHODS), len(DAMPINGS)), f"{name}: gamma shape")
        fx.check(f["checkpoint"]["step"][0] == 0, f"{name}: checkpoint step")
        fx.check(f["checkpoint"]["path"][0].decode().endswith(name + ".pt"), f"{name}: checkpoint path")
        fx.check(f.attrs["dtype"] == "float64" and "command_line" in f.attrs and "torch_version" in f.attrs,
                 f"{name}: root attributes")
        fx.check(int(f["done"][:].sum()) == num_batches, f"{name}: done")
        for b in range(num_batches):
            idx = f["batch_samples"][b]
            o = Oracle(model, inputs[idx], targets[idx], ce)
            J, Fm, s, losses, g = o.J, o.F, o.s, o.losses, o.g
            norms = np.linalg.norm(J, axis=1)
            close = lambda a, e, tol=1e-8: np.allclose(a, e, rtol=tol, atol=1e-12 * max(1.0, np.abs(e).max()))
            fx.check(close(f["loss"][0, b], losses.sum()), f"{name} b{b}: loss")
            fx.check(close(f["grad_norm"][0, b], np.linalg.norm(g)), f"{name} b{b}: grad_norm")
            fx.check(close(f["logit_grad_norm_sq"][0, b], s), f"{name} b{b}: s_n")
            fx.check(close(f["per_sample_grad_norm"][0, b], norms), f"{name} b{b}: per-sample norms")
            fx.check(close(f["per_sample_loss"][0, b], losses), f"{name} b{b}: per-sample loss")
            fx.check(close(f["grad_norm_imbalance"][0, b], norms.max() / norms.min()), f"{name} b{b}: imbalance")
            g_sgd = o.gamma(g)
            fx.check(close(f["gamma_sgd"][0, b], g_sgd), f"{name} b{b}: gamma_sgd")
            g_ng = o.gamma(o.gram_directions(0.0)["ng-dense"])
            fx.check(close(f["gamma_ng"][0, b], g_ng, 1e-6), f"{name} b{b}: gamma_ng")
            for j, lam in enumerate(DAMPINGS):
                dirs = o.gram_directions(lam)
                for m, method in enumerate(METHODS):
                    d = dirs[method]
                    tol = 1e-5 if method == "ng-cg" or lam == 0 else 1e-7
                    where = f"{name} b{b} {method} λ={lam}"
                    fx.check(close(f["gamma"][0, b, m, j], o.gamma(d), tol),
                             f"{where}: gamma {f['gamma'][0, b, m, j]} vs {o.gamma(d)}")
                    fx.check(close(f["gamma_rel_sgd"][0, b, m, j], o.gamma(d) / g_sgd, tol), f"{where}: rel sgd")
                    fx.check(close(f["gamma_rel_ng"][0, b, m, j], o.gamma(d) / g_ng, 1e-5), f"{where}: rel ng")
                    cos = d @ g / (np.linalg.norm(d) * np.linalg.norm(g))
                    fx.check(close(f["cosine_sgd"][0, b, m, j], cos, tol), f"{where}: cosine")
                    if method != "ng-cg" and lam > 0:
                        fx.check(close(f["update_norm"][0, b, m, j], np.linalg.norm(d), 1e-6), f"{where}: ‖d‖")
                        fx.check(close(f["d_dot_g"][0, b, m, j], d @ g, 1e-6), f"{where}: dᵀg")
                    fx.check(f["gamma_rel_ng"][0, b, m, j] >= 1 - 1e-6, f"{where}: γ/γ_ng ≥ 1")
    return out


# The original modules of the binary cross-entropy fixtures (tests/fixtures/make_fixtures.py),
# rebuilt here and given the checkpoint's parameters, so that the oracle's layer hooks see
# plain nn.Linear layers.
BERNOULLI_MODULES = {
    "mlp_tanh_bce": lambda: torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5)),
    "ae_bce": lambda: torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Sigmoid(), torch.nn.Linear(5, 2),
                                          torch.nn.Linear(2, 5), torch.nn.Tanh(), torch.nn.Linear(5, 6)),
}


def check_bernoulli(fx, name, batch_size=5, seed=3):
    """Binary cross-entropy read from the checkpoint (--loss auto): every Gram-form method with
    sf on fisheval's Bernoulli draws, the deterministic layer methods, the per-sample losses
    and target probabilities (the geometric mean of p(y|z) over the output units)."""
    out = f"{work_dir(f'oracle-{name}')}/r.h5"
    gram = ["sgd", "ef", "ief", "ief-param", "sf", "ng-dense", "ng-cg"]
    layer = ["kfac-exact", "ekfac", "iekfac", "shampoo"]
    dampings = [1e-3, 0.1]
    run(["eval", "--checkpoints", fixture(name + ".pt"), "--data", fixture(name + ".h5"), "--batch-size",
         str(batch_size), "--num-batches", "1", "--methods", ",".join(gram + layer), "--damping",
         ",".join(map(str, dampings)), "--seed", str(seed), "--cg-max-iter", "2000", "--cg-rtol", "1e-12",
         "--out", out, "--quiet"])
    model = BERNOULLI_MODULES[name]().double()
    model.load_state_dict(torch.jit.load(fixture(name + ".pt")).double().state_dict())
    with h5py.File(fixture(name + ".h5"), "r") as d:
        inputs, targets = torch.from_numpy(d["inputs"][:]).double(), torch.from_numpy(d["targets"][:]).double()
    with h5py.File(out, "r") as f:
        idx = f["batch_samples"][0]
        o = Oracle(model, inputs[idx], targets[idx], "binary-cross-entropy")
        o.Jhat = o.sampled_rows(splitmix64(seed, 0))
        close = lambda a, e, tol=1e-8: np.allclose(a, e, rtol=tol, atol=1e-12 * max(1.0, np.abs(e).max()))
        fx.check(close(f["per_sample_loss"][0, 0], o.losses), f"{name}: per-sample loss (the checkpoint's loss)")
        units = o.z[0].numel()
        fx.check(close(f["target_prob"][0, 0], np.exp(-o.losses / units)), f"{name}: target probabilities")
        fx.check(close(f["logit_grad_norm_sq"][0, 0], o.s), f"{name}: s_n")
        g_sgd = o.gamma(o.g)
        fx.check(close(f["gamma_sgd"][0, 0], g_sgd), f"{name}: gamma_sgd")
        for j, lam in enumerate(dampings):
            dirs = o.gram_directions(lam)
            dirs.update(o.layer_directions(lam, layer))
            for m, method in enumerate(gram + layer):
                expected, got = o.gamma(dirs[method]), f["gamma"][0, 0, m, j]
                tol = 1e-5 if method == "ng-cg" else 1e-7
                fx.check(close(got, expected, tol), f"{name} {method} λ={lam}: γ {got} vs oracle {expected}")


def main():
    fx = Failures()
    first = check_fixture(fx, "mlp_tanh_ce")         # taps engine, classification
    check_fixture(fx, "mlp_tanh_mse")                # squared error
    check_bernoulli(fx, "mlp_tanh_bce")              # binary cross-entropy (a Bernoulli per output unit)
    check_bernoulli(fx, "ae_bce")
    check_fixture(fx, "seq_ce", batch_size=4)        # sequences with ignored tokens
    check_fixture(fx, "norm_ce", num_batches=1)      # untapped parameters: per-sample loop engine
    check_fixture(fx, "conv_ce", batch_size=4, num_batches=1, extra=("--jvp-engine", "double-backward"))
    out, _ = run(["show", first])
    fx.check("ief-param" in out and "λ = 0.001" in out, "show prints the methods and dampings")
    fx.close()


if __name__ == "__main__":
    main()
