#!/usr/bin/env python3
"""Figures of fisheval result files and of the toy problem (the paper's Figures 1-3).

    .venv/bin/python scripts/plot_results.py results RESULTS.h5 --out DIR [--damping LAMBDA]
    .venv/bin/python scripts/plot_results.py toy TOY.h5 --out DIR
    .venv/bin/python scripts/plot_results.py FILE.h5 --out DIR      (kind read from the file)
    .venv/bin/python scripts/plot_results.py check                  (are numpy, h5py, matplotlib installed?)

Method colours, labels and line styles come from fisheval's method registry: the file given
by --methods-json (what `fisheval methods --json` prints; `fisheval report` and `fisheval toy`
pass one), else the output of `BINARY methods --json` for --fisheval BINARY, $FISHEVAL_BINARY
or `fisheval` on PATH.

`fisheval report` and `fisheval toy` call this script; it is also meant to be read and
reused: every figure is one function taking the loaded data and an output path.

Figures of a result file (only those the file has data for):
  quality_over_training.png  gamma/gamma_sgd against training step at one damping (default:
                             the smallest), mean +- std over batches, one line per method; beside
                             it the per-sample gradient-norm imbalance (the paper's Figure 2)
  damping_robustness.png     gamma/gamma_sgd against damping, one panel per stage, the best
                             damping of each method marked (the paper's Figure 3)
  ng_relative.png            gamma/gamma_ng (1 = the exact natural gradient), when the file has
                             a converged natural-gradient reference
  cg_convergence.png         ng-cg's relative residual per iteration, and its iteration count
                             against damping, when ng-cg ran
Figure of a toy file (`fisheval toy`):
  toy.png                    loss landscape, update vector fields and trajectories of SGD,
                             NGD/iEF and EF (the paper's Figure 1)

Statistics: mean and standard deviation (ddof = 1; 0 for one batch) over the batches
of a checkpoint that are done and finite. The best damping of a method at a stage is
the damping whose mean gamma/gamma_sgd is smallest (ties: the smaller damping).
Each run also writes DIR/figures-<kind>.tsv: one line per figure, file TAB title TAB
caption (what `fisheval report` puts into its HTML).

Exit codes: 0 ok, 2 bad input, 3 a required Python module is missing.
"""
import math
import os
import sys
import zlib

MISSING_MODULES_EXIT = 3
BAD_INPUT_EXIT = 2


def _check_modules():
    missing = []
    for module, package in (("numpy", "python3-numpy"), ("h5py", "python3-h5py"),
                            ("matplotlib", "python3-matplotlib")):
        try:
            __import__(module)
        except ImportError:
            missing.append((module, package))
    return missing


if __name__ == "__main__":
    _missing = _check_modules()
    if _missing:
        sys.stderr.write("plot_results.py: missing Python module(s): {} (Python {} at {}). On Debian: "
                         "apt-get install {}\n".format(", ".join(m for m, _ in _missing), sys.version.split()[0],
                                                       sys.executable, " ".join(p for _, p in _missing)))
        sys.exit(MISSING_MODULES_EXIT)
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        sys.exit(0)

import h5py  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

# ---------------------------------------------------------------------------------------------
# One colour, line style, marker, width and opacity per method, the same in every figure and
# in the HTML report: fisheval's method registry (`fisheval methods --json`), loaded by
# load_methods(). A name the registry does not know (an old file) gets a colour from its
# CRC-32, a solid line, circles and its own name as label.
FALLBACK_COLOURS = ["#393b79", "#637939", "#843c39", "#5254a3", "#8ca252", "#bd9e39", "#ad494a", "#a55194",
                    "#6b6ecf", "#b5cf6b", "#e7ba52", "#d6616b"]
METHODS = {}  # name -> registry entry (a dict with the fields of `fisheval methods --json`)


def load_methods(json_path=None, fisheval=None):
    """Fills METHODS from a file of `fisheval methods --json` output, else by running the fisheval
    binary (`fisheval`, else $FISHEVAL_BINARY, else `fisheval` on PATH). Without a binary every
    method gets the fallback style (a warning says so)."""
    import json
    import shutil
    import subprocess
    if json_path:
        try:
            with open(json_path, encoding="utf-8") as f:
                entries = json.load(f)
        except (OSError, ValueError) as e:
            raise InputProblem(f"cannot read the method list '{json_path}': {e}")
    else:
        binary = fisheval or os.environ.get("FISHEVAL_BINARY") or shutil.which("fisheval")
        if not binary:
            sys.stderr.write("plot_results.py: warning: no fisheval binary (--fisheval, FISHEVAL_BINARY or PATH) to "
                             "read the method styles from; every method gets a fallback colour\n")
            return
        try:
            p = subprocess.run([binary, "methods", "--json"], capture_output=True, text=True, check=True)
            entries = json.loads(p.stdout)
        except (OSError, ValueError, subprocess.CalledProcessError) as e:
            raise InputProblem(f"cannot read the method list from '{binary} methods --json': {e}")
    METHODS.clear()
    for entry in entries:
        METHODS[entry["name"]] = entry


def method_colour(name):
    colour = METHODS.get(name, {}).get("colour")
    if colour:
        return colour
    return FALLBACK_COLOURS[zlib.crc32(name.encode()) % len(FALLBACK_COLOURS)]


def method_linestyle(name):
    return METHODS.get(name, {}).get("linestyle", "-")


def method_label(name):
    return METHODS.get(name, {}).get("label") or name


def method_marker(name):
    # Markers, so that lines stay distinguishable in grey print ("" for none).
    return METHODS.get(name, {}).get("marker", "o")


def method_linewidth(name):
    # A method that often coincides with another (the exact natural gradient by CG and by the
    # dense Fisher) is drawn wide and pale underneath so both stay visible.
    return METHODS.get(name, {}).get("linewidth", 1.8)


def residual_method(r):
    """Index of the method whose residual history the file records (cg_residual_history: the
    registry entry with records_residuals, ng-cg), or None."""
    for m, name in enumerate(r.methods):
        if METHODS.get(name, {}).get("records_residuals"):
            return m
    return None


def method_alpha(name):
    return METHODS.get(name, {}).get("alpha", 1.0)


def plain_log_axis(ax, which="y"):
    """Log-axis tick labels as plain numbers (0.5, 2, 1e-06) instead of 5×10⁻¹; minor ticks
    labelled only when the axis spans less than about one and a half decades."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    plain = mticker.FuncFormatter(lambda v, _: f"{v:.3g}")
    axis.set_major_formatter(plain)
    if lo > 0 and hi / lo < 30:
        axis.set_minor_locator(mticker.LogLocator(base=10, subs=(2, 3, 5) if hi / lo > 4 else (2, 3, 4, 5, 6, 8)))
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_formatter(mticker.NullFormatter())


def style():
    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
        "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False,
    })


class InputProblem(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Result files

def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _text(v[()])
    return str(v)


class Results:
    """A fisheval result file (reports/results.h): axes, measures and root attributes."""

    def __init__(self, path):
        self.path = path
        try:
            f = h5py.File(path, "r")
        except (OSError, IOError) as e:
            raise InputProblem(f"cannot open '{path}': {e}")
        with f:
            for name in ("checkpoint", "method", "damping", "gamma_rel_sgd", "done"):
                if name not in f:
                    raise InputProblem(f"'{path}' has no dataset '{name}' (not a fisheval result file?)")
            ck = f["checkpoint"][()]
            self.steps = np.asarray(ck["step"], dtype=np.int64)
            self.paths = [_text(p) for p in ck["path"]]
            self.methods = [_text(m) for m in f["method"][()]]
            self.dampings = np.asarray(f["damping"][()], dtype=np.float64)
            self.done = np.asarray(f["done"][()]) != 0
            self.attrs = {k: _text(v) for k, v in f.attrs.items()}
            self.data = {}
            for name, ds in f.items():
                if isinstance(ds, h5py.Dataset) and ds.dtype.kind in "fiu" and name not in ("damping", "done"):
                    self.data[name] = np.asarray(ds[()], dtype=np.float64)
        self.C, self.B = self.done.shape
        self.M, self.D = len(self.methods), len(self.dampings)

    @property
    def damping_mode(self):
        return self.attrs.get("damping_mode", "absolute")

    def has(self, name):
        return name in self.data

    def masked(self, name):
        """The measure with NaN where the unit is not done; first two axes [C, B]."""
        a = self.data[name].copy()
        mask = ~self.done.reshape(self.done.shape + (1,) * (a.ndim - 2))
        a[np.broadcast_to(mask, a.shape)] = np.nan
        return a

    def damping_index(self, value):
        """Index of damping `value` on the axis (None: the smallest)."""
        if value is None:
            return int(np.argmin(self.dampings))
        for j, d in enumerate(self.dampings):
            if d == value or (d != 0 and abs(d - value) <= 1e-9 * abs(d)):
                return j
        raise InputProblem("damping {:g} is not on the file's damping axis ({})".format(
            value, ", ".join(f"{d:g}" for d in self.dampings)))

    def stage_positions(self):
        """x positions of the checkpoints: their steps, or 0..C-1 when steps repeat."""
        if len(set(self.steps.tolist())) == self.C:
            return self.steps.astype(np.float64), "training step (checkpoint)"
        return np.arange(self.C, dtype=np.float64), "checkpoint (index; steps repeat)"

    def damping_label(self):
        if self.damping_mode == "relative":
            ref = self.attrs.get("damping_reference", "per-sample")
            scale = "max_n ‖∇θ l_n‖²" if ref == "per-sample" else "the largest diagonal entry of ĴĴᵀ"
            return f"damping λ (relative to {scale})"
        return "damping λ (absolute)"


def mean_std(a, axis=1):
    """Mean and standard deviation (ddof = 1, 0 for one value) over the finite entries along `axis`."""
    finite = np.isfinite(a)
    n = finite.sum(axis=axis)
    filled = np.where(finite, a, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=axis) / n
        dev = np.where(finite, a - np.expand_dims(mean, axis), 0.0)
        var = (dev ** 2).sum(axis=axis) / np.maximum(n - 1, 1)
    std = np.sqrt(var)
    mean = np.where(n > 0, mean, np.nan)
    std = np.where(n > 0, std, np.nan)
    return mean, std, n


def best_damping_index(means, dampings):
    """means [..., D] → index of the smallest finite mean (ties: smaller damping value); -1 if none."""
    order = np.argsort(dampings, kind="stable")
    flat = means.reshape(-1, means.shape[-1])
    out = np.full(flat.shape[0], -1, dtype=np.int64)
    for i, row in enumerate(flat):
        best = None
        for j in order:
            if np.isfinite(row[j]) and (best is None or row[j] < row[best]):
                best = j
        if best is not None:
            out[i] = best
    return out.reshape(means.shape[:-1])


def damping_positions(dampings):
    """x positions on a log axis; λ = 0 goes one decade below the smallest positive value."""
    pos = np.asarray(dampings, dtype=np.float64).copy()
    positive = pos[pos > 0]
    zero_at = None
    if (pos <= 0).any():
        zero_at = 10.0 ** (math.floor(math.log10(positive.min())) - 1) if positive.size else 1.0
        pos[pos <= 0] = zero_at
    return pos, zero_at


def damping_axis(ax, dampings, zero_at):
    """A log damping axis over the data; λ = 0 labelled "0" at its stand-in position left of a
    dotted break."""
    pos, _ = damping_positions(dampings)
    lo, hi = pos.min() / 2.5, pos.max() * 2.5
    ax.set_xscale("log")
    decades = np.arange(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    step = max(1, int(math.ceil(len(decades) / 7)))
    ticks = [10.0 ** d for d in decades[::step] if lo <= 10.0 ** d <= hi]
    labels = [f"1e{int(round(math.log10(t)))}" if abs(math.log10(t)) > 2 else f"{t:g}" for t in ticks]
    if zero_at is not None:
        ax.axvline(zero_at * 3.2, color="0.6", lw=0.8, ls=(0, (2, 2)))
        keep = [k for k, t in enumerate(ticks) if t > zero_at * 3.2]
        ticks = [zero_at] + [ticks[k] for k in keep]
        labels = ["0"] + [labels[k] for k in keep]
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax.set_xlim(lo, hi)


def fmt_damping(v):
    return "0" if v == 0 else f"{v:.3g}"


def positive_band(mean, std):
    lo = mean - std
    lo = np.where(lo > 0, lo, mean * 0.5)  # a log axis: keep the band's lower edge positive
    return lo, mean + std


def stage_series(ax, x, mean, std, colour, label, ls="-", marker="o", lw=1.8, alpha=1.0, dodge=0.0, bars=True):
    """One line over training stages with its ± std: error bars (few stages, dodged sideways so
    methods do not hide each other) or a shaded band (many stages). A log y axis."""
    ok = np.isfinite(mean) & (mean > 0)
    if not ok.any():
        return None
    lo, hi = positive_band(mean[ok], np.nan_to_num(std[ok]))
    if bars:
        xs = x[ok] + dodge
        (h,) = ax.plot(xs, mean[ok], color=colour, ls=ls, marker=marker, ms=5, lw=lw, alpha=alpha, label=label)
        ax.errorbar(xs, mean[ok], yerr=[mean[ok] - lo, hi - mean[ok]], fmt="none", ecolor=colour, elinewidth=1.1,
                    capsize=3, alpha=min(1.0, alpha + 0.2))
    else:
        (h,) = ax.plot(x[ok], mean[ok], color=colour, ls=ls, marker=marker, ms=4, lw=lw, alpha=alpha, label=label)
        ax.fill_between(x[ok], lo, hi, color=colour, alpha=0.12, lw=0)
    return h


def dodges(x, count):
    """Sideways offsets for `count` series at stages x (2% of the smallest gap between stages)."""
    gaps = np.diff(np.unique(x))
    width = 0.04 * (gaps.min() if gaps.size else 1.0)
    return [(k - (count - 1) / 2) * width / max(count - 1, 1) * 2 for k in range(count)]


def legend_below(fig, ax, ncol_max=6):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(handles), ncol_max), framealpha=0.9,
                   bbox_to_anchor=(0.5, 0.0))
    return int(math.ceil(len(handles) / ncol_max))


def fig_quality_over_training(r, j, out):
    """gamma/gamma_sgd against training stage at damping index j, and the gradient-norm imbalance."""
    x, xlabel = r.stage_positions()
    bars = r.C <= 8
    methods = [m for m in range(r.M) if r.methods[m] != "sgd"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.0), gridspec_kw={"width_ratios": [1.45, 1]})
    mean, std, n = mean_std(r.masked("gamma_rel_sgd")[:, :, :, j], axis=1)  # [C, M]
    offsets = dodges(x, len(methods))
    for k, m in enumerate(methods):
        name = r.methods[m]
        stage_series(ax, x, mean[:, m], std[:, m], method_colour(name), method_label(name),
                     ls=method_linestyle(name), marker=method_marker(name), lw=method_linewidth(name),
                     alpha=method_alpha(name), dodge=offsets[k], bars=bars)
    ax.axhline(1.0, color=method_colour("sgd"), ls=":", lw=1.5, label="SGD (= 1)")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("γ / γ_SGD  (ratio, log scale; < 1 beats SGD)")
    mode = " (relative)" if r.damping_mode == "relative" else ""
    ax.set_title(f"Approximation quality over training, λ = {fmt_damping(r.dampings[j])}{mode}")
    plain_log_axis(ax)

    for name, label, colour, ls in (("grad_norm_imbalance", "per-sample gradients ‖∇θ l_n‖", "#222222", "-"),
                                    ("logit_grad_norm_imbalance", "logit gradients ‖∇z l_n‖", "#8a8a8a", "--")):
        if r.has(name):
            mu, sd, _ = mean_std(r.masked(name), axis=1)
            stage_series(ax2, x, mu, sd, colour, label, ls=ls, bars=bars)
    ax2.set_yscale("log")
    ax2.set_xlabel(xlabel)
    ax2.set_ylabel("max_n ‖·‖ / min_n ‖·‖  (ratio, log scale)")
    ax2.set_title("Gradient-norm imbalance within a batch")
    ax2.legend(loc="best", framealpha=0.85)
    plain_log_axis(ax2)
    rows = legend_below(fig, ax)
    fig.tight_layout(rect=(0, 0.06 * rows, 1, 1))
    fig.savefig(out)
    plt.close(fig)
    nb = int(n.max()) if n.size else 0
    spread = "error bars" if bars else "bands"
    return ("Approximation quality over training",
            f"Left: γ/γ_SGD (lower is better; below 1 beats SGD) at λ = {fmt_damping(r.dampings[j])} "
            f"({r.damping_mode} damping) at each checkpoint, mean over up to {nb} batch(es) with ± one standard "
            f"deviation as {spread}, as in the paper's Figure 2. Right: the imbalance max_n‖·‖ / min_n‖·‖ of the "
            f"per-sample gradient norms and of the logit-gradient norms within a batch, mean ± std over batches.")


def choose_stages(C, limit=12):
    if C <= limit:
        return list(range(C))
    return sorted(set(int(round(i)) for i in np.linspace(0, C - 1, limit)))


def fig_damping_robustness(r, out):
    """gamma/gamma_sgd against damping, one panel per stage, best damping marked."""
    stages = choose_stages(r.C)
    ncols = min(len(stages), 4)
    nrows = int(math.ceil(len(stages) / ncols))
    width = 3.3 * ncols + 2.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 3.1 * nrows + 0.8), sharey=True, squeeze=False)
    mean, _, _ = mean_std(r.masked("gamma_rel_sgd"), axis=1)  # [C, M, D]
    best = best_damping_index(mean, r.dampings)  # [C, M]
    pos, zero_at = damping_positions(r.dampings)
    order = np.argsort(pos, kind="stable")
    _, x_label = r.stage_positions()
    handles = {}
    for k, c in enumerate(stages):
        ax = axes[k // ncols][k % ncols]
        for m, name in enumerate(r.methods):
            if name == "sgd":
                continue
            y = mean[c, m, order]
            ok = np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            col = method_colour(name)
            (h,) = ax.plot(pos[order][ok], y[ok], color=col, ls=method_linestyle(name), marker=method_marker(name),
                           ms=4, lw=method_linewidth(name), alpha=method_alpha(name))
            handles.setdefault(name, h)
            b = best[c, m]
            if b >= 0:
                ax.plot([pos[b]], [mean[c, m, b]], marker="*", ms=15, color=col, mec="black", mew=0.9, ls="none",
                        zorder=5)
        ax.axhline(1.0, color=method_colour("sgd"), ls=":", lw=1.5)
        if not np.isfinite(mean[c]).any():
            ax.text(0.5, 0.5, "no finished batches", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_yscale("log")
        damping_axis(ax, r.dampings, zero_at)
        ax.set_title(f"step {r.steps[c]}" if "step" in x_label else f"checkpoint {c} (step {r.steps[c]})")
        if k + ncols >= len(stages):
            ax.set_xlabel(r.damping_label())
        if k % ncols == 0:
            ax.set_ylabel("γ / γ_SGD  (ratio, log)")
    for k in range(len(stages), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    plain_log_axis(axes[0][0])
    legend = [handles[n] for n in r.methods if n in handles]
    labels = [method_label(n) for n in r.methods if n in handles]
    legend += [Line2D([], [], color=method_colour("sgd"), ls=":", lw=1.5),
               Line2D([], [], marker="*", ms=13, color="white", mec="black", ls="none")]
    labels += ["SGD (= 1)", "best λ of a method"]
    fig.legend(legend, labels, loc="center right", framealpha=0.9)
    fig.suptitle("Approximation quality against damping (mean over batches)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / width, 1))
    fig.savefig(out)
    plt.close(fig)
    shown = "" if len(stages) == r.C else f" ({len(stages)} of {r.C} checkpoints shown, evenly spaced)"
    zero = " λ = 0 is drawn at the left edge, left of the dotted break." if zero_at is not None else ""
    return ("Damping robustness",
            f"γ/γ_SGD against the damping λ ({r.damping_mode}) at each training stage{shown}, mean over batches, "
            f"as in the paper's Figure 3; a star marks each method's best λ at that stage (the smallest mean).{zero}")


def fig_ng_relative(r, j, out):
    """gamma/gamma_ng (1 = exact natural gradient) over training and against damping."""
    mean, std, _ = mean_std(r.masked("gamma_rel_ng"), axis=1)  # [C, M, D]
    x, xlabel = r.stage_positions()
    bars = r.C <= 8
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.0))
    offsets = dodges(x, r.M)
    for m, name in enumerate(r.methods):
        stage_series(ax, x, mean[:, m, j], std[:, m, j], method_colour(name), method_label(name),
                     ls=method_linestyle(name), marker=method_marker(name), lw=method_linewidth(name),
                     alpha=method_alpha(name), dodge=offsets[m], bars=bars)
    ax.axhline(1.0, color="black", lw=1.0, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("γ / γ_NG  (ratio, log; 1 = exact NG)")
    ax.set_title(f"Distance from the exact natural gradient, λ = {fmt_damping(r.dampings[j])}")
    plain_log_axis(ax)

    c_last = [c for c in range(r.C) if np.isfinite(mean[c]).any()][-1]
    pos, zero_at = damping_positions(r.dampings)
    order = np.argsort(pos, kind="stable")
    for m, name in enumerate(r.methods):
        y = mean[c_last, m, order]
        ok = np.isfinite(y) & (y > 0)
        if ok.any():
            ax2.plot(pos[order][ok], y[ok], color=method_colour(name), ls=method_linestyle(name),
                     marker=method_marker(name), ms=4, lw=method_linewidth(name), alpha=method_alpha(name))
    ax2.axhline(1.0, color="black", lw=1.0, alpha=0.6)
    ax2.set_yscale("log")
    damping_axis(ax2, r.dampings, zero_at)
    ax2.set_xlabel(r.damping_label())
    ax2.set_ylabel("γ / γ_NG  (ratio, log)")
    ax2.set_title(f"Against damping at step {r.steps[c_last]} (mean over batches)")
    plain_log_axis(ax2)
    rows = legend_below(fig, ax, ncol_max=7)
    fig.tight_layout(rect=(0, 0.06 * rows, 1, 1))
    fig.savefig(out)
    plt.close(fig)
    return ("Distance from the exact natural gradient",
            "γ/γ_NG: the indicator relative to that of the natural-gradient reference at λ = 0 "
            f"({r.attrs.get('ng_reference', 'auto')}; batches where it did not converge are left out); 1 is the "
            f"exact natural gradient. Left: over training at λ = {fmt_damping(r.dampings[j])}, mean ± std over "
            "batches. Right: against damping at the last checkpoint with a reference.")


def fig_cg_convergence(r, j, out, max_thin=20):
    """ng-cg: relative residual per iteration (per stage) and iterations against damping."""
    hist = r.masked("cg_residual_history")  # [C, B, D, I]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    cmap = plt.get_cmap("viridis")
    colours = [cmap(0.85 * c / max(r.C - 1, 1)) for c in range(r.C)]
    for c in range(r.C):
        rows = [row[np.isfinite(row)] for row in hist[c, :, j, :] if np.isfinite(row).any()]
        if not rows:
            continue
        for row in rows[:max_thin]:
            ax.plot(np.arange(row.size), np.maximum(row, 1e-300), color=colours[c], lw=0.7, alpha=0.35)
        length = max(row.size for row in rows)
        med = [np.median([row[i] for row in rows if row.size > i]) for i in range(length)]
        ax.plot(np.arange(length), np.maximum(med, 1e-300), color=colours[c], lw=2.0, label=f"step {r.steps[c]}")
    try:
        rtol = float(r.attrs.get("cg_rtol", "nan"))
    except ValueError:
        rtol = float("nan")
    if np.isfinite(rtol):
        ax.axhline(rtol, color="#d62728", ls="--", lw=1.0, label=f"tolerance {rtol:g}")
    ax.set_yscale("log")
    ax.set_xlabel("CG iteration k")
    ax.set_ylabel("relative residual ‖r_k‖ / ‖g‖  (log)")
    m = residual_method(r)
    ax.set_title(f"{r.methods[m]} convergence at λ = {fmt_damping(r.dampings[j])}")
    ax.legend(loc="best", framealpha=0.85, ncol=2 if r.C > 6 else 1, title="median over batches")

    if r.has("cg_iterations"):
        it_mean, _, _ = mean_std(r.masked("cg_iterations")[:, :, m, :], axis=1)  # [C, D]
        pos, zero_at = damping_positions(r.dampings)
        order = np.argsort(pos, kind="stable")
        for c in range(r.C):
            y = it_mean[c, order]
            ok = np.isfinite(y)
            if ok.any():
                ax2.plot(pos[order][ok], y[ok], color=colours[c], marker="o", ms=4, lw=1.6, label=f"step {r.steps[c]}")
        try:
            cap = float(r.attrs.get("cg_max_iter", "nan"))
        except ValueError:
            cap = float("nan")
        if np.isfinite(cap):
            ax2.axhline(cap, color="#d62728", ls="--", lw=1.0, label=f"iteration cap {cap:g}")
        damping_axis(ax2, r.dampings, zero_at)
        ax2.set_ylim(bottom=0)
        ax2.set_xlabel(r.damping_label())
        ax2.set_ylabel("CG iterations (mean over batches)")
        ax2.set_title("Iterations to reach the tolerance")
        ax2.legend(loc="best", framealpha=0.85, ncol=2 if r.C > 6 else 1)
    else:
        ax2.set_visible(False)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return ("Conjugate-gradient convergence",
            f"{r.methods[m]}, the Hessian-free natural gradient (F + λI)⁻¹g: left, the relative residual per iteration at "
            f"λ = {fmt_damping(r.dampings[j])} (one colour per checkpoint; thick lines are the median over batches, "
            f"thin ones up to {max_thin} single batches); right, the iterations CG needed against damping "
            "(the cap means it did not converge).")


def plot_results(path, out, damping=None):
    """Writes the figures of result file `path` into `out`; returns [(file, title, caption)]."""
    r = Results(path)
    j = r.damping_index(damping)
    if not r.done.any():
        raise InputProblem(f"'{path}' has no finished units (done is 0 everywhere): nothing to plot")
    os.makedirs(out, exist_ok=True)
    figures = []

    def make(file, fn, *args):
        title, caption = fn(r, *args, os.path.join(out, file))
        figures.append((file, title, caption))

    make("quality_over_training.png", fig_quality_over_training, j)
    make("damping_robustness.png", fig_damping_robustness)
    if r.has("gamma_rel_ng") and np.isfinite(r.masked("gamma_rel_ng")).any():
        make("ng_relative.png", fig_ng_relative, j)
    if (residual_method(r) is not None and r.has("cg_residual_history")
            and np.isfinite(r.masked("cg_residual_history")).any()):
        make("cg_convergence.png", fig_cg_convergence, j)
    return figures


# ---------------------------------------------------------------------------------------------
# The toy problem (fisheval toy)

class Toy:
    def __init__(self, path):
        try:
            f = h5py.File(path, "r")
        except (OSError, IOError) as e:
            raise InputProblem(f"cannot open '{path}': {e}")
        with f:
            if _text(f.attrs.get("fisheval_kind", "")) != "toy":
                raise InputProblem(f"'{path}' is not a toy file of `fisheval toy` (no attribute fisheval_kind = toy)")
            self.methods = [_text(m) for m in f["method"][()]]
            for name in ("theta0", "theta1", "loss", "field", "trajectory", "trajectory_loss", "start", "data_x",
                         "data_y"):
                setattr(self, name, np.asarray(f[name][()], dtype=np.float64))
            self.damping = float(f.attrs["damping"])
            self.lr = float(f.attrs["learning_rate"])


def _toy_panel(ax, toy, names, title, norm, cmap):
    ax.grid(False)
    T0, T1 = np.meshgrid(toy.theta0, toy.theta1)
    levels = np.quantile(toy.loss, np.linspace(0.02, 0.98, 12))
    ax.contour(T0, T1, toy.loss, levels=levels, colors="0.75", linewidths=0.7)
    # Each sample's zero-loss line: θ₀ + θ₁ x_n = y_n.
    t0 = np.linspace(toy.theta0[0], toy.theta0[-1], 2)
    for n, (xn, yn) in enumerate(zip(toy.data_x, toy.data_y)):
        if xn == 0:
            ax.axvline(yn, color="#555555", lw=1.0, ls="--")
        else:
            ax.plot(t0, (yn - t0) / xn, color="#555555", lw=1.0, ls="--")
    field_name = names[0]
    m = toy.methods.index(field_name)
    d = toy.field[m]  # [G1, G0, 2]
    step = toy.lr * np.hypot(d[..., 0], d[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        u, v = -d[..., 0] / (step / toy.lr), -d[..., 1] / (step / toy.lr)
    q = ax.quiver(T0, T1, u, v, np.log10(np.maximum(step, 1e-12)), cmap=cmap, norm=norm, pivot="mid",
                  angles="xy", scale=28, width=0.005, headwidth=3.5)
    for k, name in enumerate(names):
        mk = toy.methods.index(name)
        for s in range(toy.trajectory.shape[1]):
            path = toy.trajectory[mk, s]
            ok = np.isfinite(path).all(axis=1)
            ax.plot(path[ok, 0], path[ok, 1], color=method_colour(name), lw=1.7 if k == 0 else 1.0,
                    ls="-" if k == 0 else (0, (1, 1.5)), zorder=4)
    ax.plot(toy.start[:, 0], toy.start[:, 1], "o", color="black", ms=5, mfc="white", zorder=5)
    ax.plot([0], [0], marker="*", color="gold", mec="black", ms=14, zorder=6)
    ax.set_xlim(toy.theta0[0], toy.theta0[-1])
    ax.set_ylim(toy.theta1[0], toy.theta1[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("θ₀ (bias, dimensionless)")
    ax.set_ylabel("θ₁ (slope, dimensionless)")
    ax.set_title(title)
    return q


def plot_toy(path, out):
    toy = Toy(path)
    os.makedirs(out, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 10))
    fig.subplots_adjust(left=0.07, right=0.86, bottom=0.06, top=0.92, wspace=0.28, hspace=0.28)
    norms = []
    for m in range(len(toy.methods)):
        d = toy.field[m]
        s = toy.lr * np.hypot(d[..., 0], d[..., 1])
        norms.append(np.log10(np.maximum(s[np.isfinite(s)], 1e-12)))
    allv = np.concatenate(norms)
    norm = matplotlib.colors.Normalize(vmin=np.percentile(allv, 1), vmax=np.percentile(allv, 99))
    cmap = plt.get_cmap("plasma")
    lam = fmt_damping(toy.damping)
    panels = []
    if "sgd" in toy.methods:
        panels.append((["sgd"], "SGD: Δθ = −η g"))
    ng = [n for n in ("ng-dense", "ief", "ng-cg") if n in toy.methods]
    if ng:
        panels.append((ng, f"NGD / iEF (λ = {lam})"))
    if "ef" in toy.methods:
        panels.append((["ef"], f"EF (λ = {lam}): inversely-scaled projection"))
    q = None
    for ax, (names, title) in zip(axes.flat, panels):
        q = _toy_panel(ax, toy, names, title, norm, cmap)
        handles = [Line2D([], [], color=method_colour(n), lw=1.6 if i == 0 else 1.0,
                          ls="-" if i == 0 else (0, (1, 1.5))) for i, n in enumerate(names)]
        handles += [Line2D([], [], color="#555555", ls="--", lw=1.0),
                    Line2D([], [], marker="*", color="gold", mec="black", ms=11, ls="none")]
        labels = [f"{method_label(n)} trajectory" for n in names] + ["a sample's zero-loss line", "global minimum"]
        ax.legend(handles, labels, loc="lower left", fontsize=8, framealpha=0.9)
    for ax in list(axes.flat)[len(panels):-1]:
        ax.set_visible(False)
    if q is not None:
        cax = fig.add_axes([0.885, 0.35, 0.018, 0.5])
        cax.grid(False)
        cb = fig.colorbar(q, cax=cax)
        cb.set_label("log₁₀ step length η‖d‖ (arrows show direction only)")

    ax = axes.flat[-1]
    steps = np.arange(toy.trajectory_loss.shape[2])
    for m, name in enumerate(toy.methods):
        losses = toy.trajectory_loss[m]  # [S, T+1]
        for s in range(losses.shape[0]):
            ok = np.isfinite(losses[s]) & (losses[s] > 0)
            ax.plot(steps[ok], losses[s][ok], color=method_colour(name), lw=0.8, alpha=0.3)
        with np.errstate(divide="ignore", invalid="ignore"):
            geo = np.exp(np.nanmean(np.log(np.where(losses > 0, losses, np.nan)), axis=0))
        ok = np.isfinite(geo)
        ax.plot(steps[ok], geo[ok], color=method_colour(name), ls=method_linestyle(name) if name != "sgd" else "-",
                lw=method_linewidth(name) + 0.4, alpha=method_alpha(name), label=method_label(name))
    ax.set_yscale("log")
    ax.set_xlabel("update t (step number)")
    ax.set_ylabel("loss L(θ_t) = ½ Σ_n (θ₀ + θ₁x_n − y_n)²  (log)")
    ax.set_title(f"Training loss, learning rate η = {toy.lr:g}")
    ax.legend(loc="lower left", framealpha=0.9, title="thin: each start; thick: geometric mean", title_fontsize=8)
    fig.suptitle("Toy least squares f(x) = θ₀ + θ₁x, data (0, 0) and (1, 0) — the paper's Figure 1", fontsize=12)
    fig.savefig(os.path.join(out, "toy.png"))
    plt.close(fig)
    return [("toy.png", "Why EF is distorted: the toy problem of the paper's Figure 1",
             "The two-parameter least-squares problem f(x) = θ₀ + θ₁x with data (0, 0) and (1, 0). Grey contours: "
             "the loss; dashed lines: the parameters that fit one sample exactly; star: the global minimum. Arrows: "
             "the update direction −d of each method (colour: the log step length η‖d‖); lines: training "
             f"trajectories with learning rate η = {toy.lr:g} from the open circles; right below, their loss. "
             f"NGD and iEF (λ = {lam}; identical as λ → 0) shrink both residuals at the same rate and head straight "
             "for the minimum. EF reduces every sample's loss by the same amount (Δl_n ≈ −η), so its step grows as "
             "a sample's residual shrinks (the inversely-scaled projection): its trajectories are pulled onto a "
             "zero-loss line and zigzag along it.")]


# ---------------------------------------------------------------------------------------------

def write_manifest(out, kind, figures):
    path = os.path.join(out, f"figures-{kind}.tsv")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for file, title, caption in figures:
            f.write("\t".join(s.replace("\t", " ").replace("\n", " ") for s in (file, title, caption)) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def detect_kind(path):
    try:
        with h5py.File(path, "r") as f:
            return "toy" if _text(f.attrs.get("fisheval_kind", "")) == "toy" else "results"
    except (OSError, IOError) as e:
        raise InputProblem(f"cannot open '{path}': {e}")


def main(argv):
    import argparse
    kinds = ("results", "toy")
    kind = argv[0] if argv and argv[0] in kinds else None
    rest = argv[1:] if kind else argv
    p = argparse.ArgumentParser(prog="plot_results.py", description=__doc__.split("\n\n")[0],
                                usage="%(prog)s [results|toy|check] FILE.h5 --out DIR [--damping LAMBDA] "
                                      "[--methods-json FILE | --fisheval BINARY]")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="folder for the PNG files (created)")
    p.add_argument("--damping", type=float, default=None,
                   help="damping of the quality-over-training figure: a value on the file's axis (default: smallest)")
    p.add_argument("--methods-json", default=None,
                   help="the method styles: a file of `fisheval methods --json` output (fisheval passes one)")
    p.add_argument("--fisheval", default=None,
                   help="without --methods-json: the fisheval binary to ask (default: $FISHEVAL_BINARY, else "
                        "`fisheval` on PATH)")
    a = p.parse_args(rest)
    style()
    try:
        load_methods(a.methods_json, a.fisheval)
        kind = kind or detect_kind(a.file)
        if kind == "toy":
            figures = plot_toy(a.file, a.out)
        else:
            figures = plot_results(a.file, a.out, a.damping)
    except InputProblem as e:
        sys.stderr.write(f"plot_results.py: error: {e}\n")
        return BAD_INPUT_EXIT
    write_manifest(a.out, kind, figures)
    for file, _, _ in figures:
        print(os.path.join(a.out, file))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
