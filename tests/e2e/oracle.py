"""Float64 oracles of every quantity fisheval reports, written in plain PyTorch + NumPy on a
PyTorch module (no fisheval code): per-sample gradients by a loop of torch.autograd.grad, the
logit Jacobian row by row, loss Hessians by torch.autograd.functional.hessian, the Fisher as
Σ JᵀHJ, the Gram-form methods by direct solves in parameter space, and the Kronecker and
Shampoo families from forward hooks on the module's nn.Linear layers and dense solves of
their Kronecker matrices (the definitions of docs/METHODS.md, written again here).

The module may be the exported TorchScript archive or the original nn.Module (the tests of
PyTorch 2.x models use the original, so that nothing of the export is trusted).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SHAMPOO_EPSILON = 1e-12   # fisheval's default --shampoo-epsilon (relative to the largest eigenvalue)


def loss_name(ce):
    """The likelihood: `ce` is a loss name, or True (cross-entropy) / False (squared error)."""
    if isinstance(ce, str):
        return ce
    return "cross-entropy" if ce else "squared-error"


def per_sample_loss(z, y, ce):
    """l_n: cross-entropy summed over a sample's tokens (−100 ignored), ½‖z − y‖², or binary
    cross-entropy (a Bernoulli per output unit, targets in [0, 1]) summed over the units."""
    loss = loss_name(ce)
    if loss == "cross-entropy":
        c = z.shape[-1]
        return F.cross_entropy(z.reshape(-1, c), y.reshape(-1), reduction="none", ignore_index=-100) \
            .reshape(z.shape[0], -1).sum(1)
    if loss == "binary-cross-entropy":
        return F.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction="none").reshape(z.shape[0], -1).sum(1)
    assert loss == "squared-error", loss
    return 0.5 * ((z - y) ** 2).reshape(z.shape[0], -1).sum(1)


def trainable(model):
    """The evaluated parameters, each once (named_parameters drops the second name of a tied weight)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def take(x, sl):
    """Samples `sl` of the inputs: a tensor, or a dict of named tensors (Hugging Face models)."""
    return {k: v[sl] for k, v in x.items()} if isinstance(x, dict) else x[sl]


def batch_size(x):
    return next(iter(x.values())).shape[0] if isinstance(x, dict) else x.shape[0]


def splitmix64(seed, batch):
    """fisheval's seed of the label sampling of batch `batch` (eval/sweep.cpp: batch_seed)."""
    mask = (1 << 64) - 1
    z = (seed + 0x9E3779B97F4A7C15 * (batch + 1)) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def flat_grad(out, params):
    grads = torch.autograd.grad(out, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


class Oracle:
    """Everything about one batch (x, y) of `model`: J (per-sample gradients, N×P), the
    Fisher/GGN F, s_n, l_n, g, in the order of trainable(model)."""

    def __init__(self, model, x, y, ce):
        self.model, self.x, self.y, self.ce = model, x, y, ce
        self.named = trainable(model)
        params = [p for _, p in self.named]
        self.params = params
        n = batch_size(x)
        self.J = torch.stack([flat_grad(per_sample_loss(model(take(x, slice(i, i + 1))), y[i:i + 1], ce).sum(), params)
                              for i in range(n)]).numpy()
        with torch.no_grad():
            z = model(x)
        rows, hess = [], []
        for i in range(n):
            zi = model(take(x, slice(i, i + 1))).reshape(-1)
            rows.append(torch.stack([flat_grad(zi[k], params) for k in range(zi.numel())]))
            hess.append(torch.autograd.functional.hessian(
                lambda t: per_sample_loss(t.reshape(z[i:i + 1].shape), y[i:i + 1], ce).sum(), z[i].reshape(-1)))
        self.F = sum(r.T @ h @ r for r, h in zip(rows, hess)).numpy()
        zg = z.clone().requires_grad_(True)
        r = torch.autograd.grad(per_sample_loss(zg, y, ce).sum(), zg)[0]
        self.s = (r.reshape(n, -1) ** 2).sum(1).numpy()
        self.losses = per_sample_loss(z, y, ce).numpy()
        self.g = self.J.sum(0)
        self.z = z
        self.offsets = {}
        start = 0
        for name, p in self.named:
            self.offsets[name] = (start, p.numel())
            start += p.numel()

    def sampled_rows(self, seed, K=1):
        """Ĵ [K·N, P] (rows k·N + n): ∇θ(−log p(ŷ|z_n)) for labels drawn as fisheval draws them
        (cross-entropy: torch.multinomial of the float64 CPU softmax, K per token; binary
        cross-entropy: torch.bernoulli of the float64 CPU σ(z) expanded to [K, *z]; from a
        generator seeded with `seed`; mvp/loss.cpp)."""
        z = self.z.detach().to(torch.float64)
        if loss_name(self.ce) == "binary-cross-entropy":
            mean = torch.sigmoid(z).unsqueeze(0).expand((K,) + tuple(z.shape)).contiguous()
            grads = mean - torch.bernoulli(mean, generator=torch.Generator().manual_seed(seed))
        else:
            C = z.shape[-1]
            p = torch.softmax(z, -1).reshape(-1, C)
            labels = torch.multinomial(p, K, replacement=True, generator=torch.Generator().manual_seed(seed))
            onehot = torch.nn.functional.one_hot(labels.t().contiguous(), C).to(torch.float64)   # [K, rows, C]
            grads = (p.unsqueeze(0) - onehot).reshape((K,) + tuple(z.shape))
            mask = (self.y != -100).to(torch.float64).unsqueeze(-1)
            grads = grads * mask
        n = batch_size(self.x)
        rows = []
        for k in range(K):
            for i in range(n):
                zi = self.model(take(self.x, slice(i, i + 1)))
                rows.append(flat_grad((zi * grads[k, i:i + 1].to(zi.dtype)).sum(), self.params))
        return torch.stack(rows).numpy()

    def gamma(self, d):
        return np.sqrt(max(d @ self.F @ d, 0.0)) / abs(d @ self.g)

    # --- the Gram-form methods and the natural gradient --------------------------------------
    def gram_directions(self, lam):
        J, g, s = self.J, self.g, self.s
        P = g.size
        eye = np.eye(P)
        C = J @ J.T
        out = {"sgd": g}
        out["ef"] = (np.linalg.lstsq(J.T @ J + lam * eye, g, rcond=None)[0] if lam > 0
                     else J.T @ np.linalg.pinv(C) @ np.ones(len(s)))
        out["ief"] = J.T @ (np.linalg.pinv(C + lam * np.eye(len(s))) @ s)
        out["ief-param"] = np.linalg.solve(J.T @ np.diag(1 / s) @ J + lam * eye, g) if lam > 0 else out["ief"]
        out["ng-dense"] = np.linalg.pinv(self.F + lam * eye, rcond=1e-12, hermitian=True) @ g
        out["ng-cg"] = out["ng-dense"]
        if getattr(self, "Jhat", None) is not None and lam > 0:
            K = self.Jhat.shape[0] // len(s)
            out["sf"] = np.linalg.solve(self.Jhat.T @ self.Jhat / K + lam * eye, g)
        return out

    # --- the Kronecker and Shampoo families (docs/METHODS.md) --------------------------------
    def layer_directions(self, lam, methods):
        """Directions of `methods` (kfac-exact, ekfac, iekfac, shampoo) at damping λ > 0."""
        blocks, covered = self._blocks()
        out = {m: np.zeros_like(self.g) for m in methods}
        for blk in blocks:
            G = blk["G"]
            for m in methods:
                if m == "shampoo":
                    Gs = blk["G_true"]  # [N, rows, cols]
                    SL = np.einsum("nij,nkj->ik", Gs, Gs)
                    SR = np.einsum("nji,njk->ik", Gs, Gs)
                    d = inv_root(SL, lam, 0.25) @ G @ inv_root(SR, lam, 0.25)
                else:
                    B = blk[{"kfac-exact": "B_exact", "ekfac": "B_true", "iekfac": "B_true_over_s"}[m]]
                    K = np.kron(B, blk["A"])   # row-major vec of [rows, cols]
                    d = np.linalg.solve(K + lam * np.eye(K.shape[0]), G.reshape(-1)).reshape(G.shape)
                self._put_block(out[m], blk, d)
        # Parameters owned by no tapped layer: docs/METHODS.md's fallback of each family.
        for name, p in self.named:
            if name in covered:
                continue
            start, numel = self.offsets[name]
            sl = slice(start, start + numel)
            rows, gv = self.J[:, sl], self.g[sl]
            for m in methods:
                if m == "shampoo":
                    assert numel <= 2048
                    out[m][sl] = inv_root(rows.T @ rows, lam, 0.5) @ gv
                else:
                    D = {"kfac-exact": np.diag(self.F)[sl], "ekfac": (rows ** 2).sum(0),
                         "iekfac": (rows ** 2 / self.s[:, None]).sum(0)}[m]
                    out[m][sl] = gv / (D + lam)
        return out

    def _put_block(self, d, blk, D):
        w0, wn = self.offsets[blk["weight"]]
        d[w0:w0 + wn] = D[:, :blk["cols_w"]].reshape(-1)
        if blk["bias"] is not None:
            b0, bn = self.offsets[blk["bias"]]
            d[b0:b0 + bn] = D[:, -1]

    def _blocks(self):
        """One block per nn.Linear that owns trainable parameters and runs once: its [W | b]
        block of g, A = mean ā āᵀ over samples and tokens, B of the true, true-over-s and exact
        statistics (sums over samples and tokens), and the per-sample gradient matrices."""
        model, x, y, ce = self.model, self.x, self.y, self.ce
        names = {id(p): n for n, p in self.named}
        layers = []
        for mod in model.modules():
            if type(mod) is not nn.Linear:
                continue
            w = names.get(id(mod.weight))
            b = names.get(id(mod.bias)) if mod.bias is not None else None
            if w is not None:  # (a block of the bias alone does not occur in these tests)
                layers.append((mod, w, b))
        taps, handles = {}, []
        for mod, _, _ in layers:
            def hook(m, inputs, output, key=id(mod)):
                taps.setdefault(key, []).append((inputs[0], output))
            handles.append(mod.register_forward_hook(hook))
        try:
            z = model(x)
        finally:
            for h in handles:
                h.remove()
        n = batch_size(x)
        zd = z.detach().clone().requires_grad_(True)
        r = torch.autograd.grad(per_sample_loss(zd, y, ce).sum(), zd)[0]            # ∇_z l
        outs = [taps[id(mod)][0][1] for mod, _, _ in layers]
        assert all(len(taps[id(mod)]) == 1 for mod, _, _ in layers), "a layer ran more than once"

        def output_grads(seed):
            gs = torch.autograd.grad(z, outs, seed, retain_graph=True, allow_unused=True)
            return [tokens(gr if gr is not None else torch.zeros_like(o)).numpy() for gr, o in zip(gs, outs)]

        b_true = output_grads(r)
        exact = []
        if z.dim() == 2:  # per-sample logits [N, C]: B_exact = Σ_{n,t} J_ntᵀ H_n J_nt
            C = z.shape[1]
            H = [torch.autograd.functional.hessian(
                lambda t: per_sample_loss(t.reshape(1, C), y[i:i + 1], ce).sum(), z[i].detach()).numpy()
                for i in range(n)]
            unit = [output_grads(torch.eye(C, dtype=z.dtype)[k].expand(n, C)) for k in range(C)]
        blocks, covered = [], set()
        for li, (mod, w, bname) in enumerate(layers):
            a = tokens(taps[id(mod)][0][0].detach()).numpy()                          # [N, T, d_in]
            if bname is not None:
                a = np.concatenate([a, np.ones(a.shape[:2] + (1,))], axis=2)
            bt = b_true[li]                                                          # [N, T, d_out]
            blk = {"weight": w, "bias": bname, "cols_w": mod.weight.shape[1]}
            blk["A"] = np.einsum("nti,ntj->ij", a, a) / (a.shape[0] * a.shape[1])
            blk["B_true"] = np.einsum("nti,ntj->ij", bt, bt)
            blk["B_true_over_s"] = np.einsum("n,nti,ntj->ij", np.where(self.s > 0, 1 / self.s, 0), bt, bt)
            blk["G_true"] = np.einsum("nti,ntj->nij", bt, a)                         # Σ_t b āᵀ per sample
            if z.dim() == 2:
                Jt = np.stack([unit[k][li] for k in range(C)], axis=-1)              # [N, T, d_out, C]
                blk["B_exact"] = sum(np.einsum("tik,kl,tjl->ij", Jt[i], H[i], Jt[i]) for i in range(n))
            w0, wn = self.offsets[w]
            G = self.g[w0:w0 + wn].reshape(mod.weight.shape)
            if bname is not None:
                b0, bn = self.offsets[bname]
                G = np.concatenate([G, self.g[b0:b0 + bn, None]], axis=1)
            blk["G"] = G
            blocks.append(blk)
            covered.update([w] + ([bname] if bname else []))
        return blocks, covered


def tokens(t):
    """[N, ..., d] → [N, T, d] (T = 1 for [N, d])."""
    return t.reshape(t.shape[0], -1, t.shape[-1]) if t.dim() > 2 else t.reshape(t.shape[0], 1, t.shape[-1])


def inv_root(S, lam, p):
    """(S + (λ + ε σ_max) I)^{−p} by eigen-decomposition (fisheval's Shampoo convention)."""
    vals, vecs = np.linalg.eigh(0.5 * (S + S.T))
    vals = np.clip(vals, 0, None)
    shift = lam + SHAMPOO_EPSILON * vals.max()
    return (vecs * (vals + shift) ** (-p)) @ vecs.T
