#!/usr/bin/env python3
"""`fisheval report` end to end: real result files made by the real `fisheval eval` on the
fixture series, the report made from them, and every claim checked from the outside:
figure files are valid PNGs of a laptop-friendly size and referenced by the page; the
page uses no network and renders in headless Chromium; every number of the tables equals
what h5py reads from the result file, recomputed here with numpy (mean, std with ddof 1
over done, finite batches; best damping = smallest mean, ties to the smaller λ)."""
import html
import html.parser
import json
import os
import shutil
import subprocess
import sys
import unittest

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_support as rs  # noqa: E402

rs.require_environment()
W = rs.work_dir("report")
SERIES = os.path.join(rs.FIXTURES, "series")
DATA = os.path.join(rs.FIXTURES, "series.h5")
FULL = os.path.join(W, "full.h5")          # every method incl. ng-cg and ng-dense, λ = 0 on the axis
RELATIVE = os.path.join(W, "relative.h5")  # relative damping, no natural-gradient reference
SHARD = os.path.join(W, "shard.h5")        # shard 1 of 2: half of the units not done
RESULTS_FIGURES = {"quality_over_training.png", "damping_robustness.png", "ng_relative.png", "cg_convergence.png"}


def make_results():
    common = ["eval", "--series", SERIES, "--data", DATA, "--batch-size", "12", "--num-batches", "3",
              "--batch-sampling", "random", "--seed", "3", "--quiet", "--overwrite"]
    rs.run(common + ["--methods", "sgd,ef,ief,sf,ng-cg,ng-dense", "--damping", "1e-2,0,1e-4,1", "--cg-max-iter",
                     "40", "--out", FULL])
    rs.run(common + ["--methods", "sgd,ef,ief", "--damping", "1e-6,1e-3,1", "--damping-mode", "relative",
                     "--out", RELATIVE])
    p = rs.run(common + ["--methods", "sgd,ef,ief,ng-dense", "--damping", "0,1e-3", "--shard", "1/2",
                         "--out", SHARD], check=False)
    assert p.returncode == 0, p.stderr
    return SHARD.replace(".h5", ".shard-1-of-2.h5")


class PageParser(html.parser.HTMLParser):
    """Collects <img src>, the quality/stage/timing table cells with their data attributes, and
    anything that would reach the network."""

    def __init__(self):
        super().__init__()
        self.images, self.external, self.scripts = [], [], 0
        self.quality = {}  # (selection, method, step) → (attrs, text)
        self.stages = {}   # step → [(attrs, text)]
        self.timing = {}   # method → attrs
        self._table = None
        self._selection = None
        self._row = None
        self._cell = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            v = a.get(key, "")
            if v.startswith(("http:", "https:", "//")):
                self.external.append(v)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.external.append(a.get("href", ""))
        elif tag == "table":
            self._table = a.get("class")
            self._selection = a.get("data-selection")
        elif tag == "tr":
            self._row = a
            if self._table == "timing" and "data-method" in a:
                self.timing[a["data-method"]] = a
        elif tag == "td":
            self._cell = a
            self._text = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            if self._table == "quality" and "data-step" in self._cell:
                key = (self._selection, self._row["data-method"], int(self._cell["data-step"]))
                self.quality[key] = (self._cell, self._text)
            elif self._table == "stages" and "data-mean" in self._cell:
                self.stages.setdefault(int(self._row["data-step"]), []).append((self._cell, self._text))
            self._cell = None
        elif tag == "table":
            self._table = None


def oracle(path):
    """The report's tables recomputed from the HDF5 file with h5py + numpy."""
    with h5py.File(path, "r") as f:
        rel = f["gamma_rel_sgd"][()]
        seconds = f["seconds"][()]
        done = f["done"][()].astype(bool)
        dampings = f["damping"][()]
        methods = [m.decode() if isinstance(m, bytes) else m for m in f["method"][()]]
        steps = [int(s) for s in f["checkpoint"][()]["step"]]
        batch = {k: f[k][()] for k in ("loss", "grad_norm", "grad_norm_imbalance", "logit_grad_norm_imbalance")}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    C, B, M, D = rel.shape

    def stats(values):
        v = np.asarray([x for x in values if np.isfinite(x)])
        if v.size == 0:
            return None
        return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)

    cell = {(c, m, j): stats([rel[c, b, m, j] for b in range(B) if done[c, b]])
            for c in range(C) for m in range(M) for j in range(D)}
    best = {}
    for c in range(C):
        for m in range(M):
            choice = None  # None: no finished batch
            for j in sorted(range(D), key=lambda k: (dampings[k], k)):
                s = cell[(c, m, j)]
                if s is not None and (choice is None or s[0] < cell[(c, m, choice)][0]):
                    choice = j
            best[(c, m)] = choice
    stage = {(name, c): stats([batch[name][c, b] for b in range(B) if done[c, b]])
             for name in batch for c in range(C)}
    timing = {}
    for m, name in enumerate(methods):
        js = [0] if name == "sgd" else list(range(D))  # sgd is undamped: one direction per unit
        vals = [seconds[c, b, m, j] for c in range(C) for b in range(B) for j in js if done[c, b]]
        vals = [v for v in vals if np.isfinite(v)]
        timing[name] = (float(np.sum(vals)), len(vals))
    return dict(C=C, B=B, M=M, D=D, done=done, dampings=dampings, methods=methods, steps=steps, cell=cell,
                best=best, stage=stage, timing=timing, attrs=attrs)


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shard = make_results()
        cls.reports = {}
        for name, path, extra in (("full", FULL, []), ("relative", RELATIVE, ["--damping", "1e-3", "--no-toy"]),
                                  ("shard", cls.shard, ["--no-toy"])):
            out = os.path.join(W, "report-" + name)
            shutil.rmtree(out, ignore_errors=True)
            p = rs.run(["report", path, "--out", out] + extra)
            cls.reports[name] = (path, out, p)

    def load(self, name):
        path, out, _ = self.reports[name]
        with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
            page = f.read()
        parser = PageParser()
        parser.feed(page)
        with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
            data = json.load(f)
        return path, out, page, parser, data

    # -- figures ---------------------------------------------------------------------------
    def check_figures(self, name, expected):
        path, out, page, parser, data = self.load(name)
        files = {f["file"] for f in data["figures"]}
        self.assertEqual(files, expected)
        self.assertEqual(set(parser.images), expected, "every figure is on the page, and nothing else")
        for file in expected:
            png = os.path.join(out, file)
            self.assertTrue(os.path.isfile(png), png)
            w, h = rs.png_size(png)
            self.assertTrue(700 <= w <= 1600 and 350 <= h <= 1300, f"{file}: {w}x{h} does not fit a laptop screen")
            self.assertGreater(os.path.getsize(png), 15000, f"{file} is suspiciously small")
            img = rs.read_png(png)
            self.assertEqual(img.shape[:2], (h, w))
            self.assertGreater(float(img[..., :3].std()), 0.05, f"{file} is nearly blank")
        self.assertEqual(parser.external, [], "the page must not reach the network")
        self.assertEqual(parser.scripts, 0)

    def test_full_report_has_every_figure(self):
        self.check_figures("full", RESULTS_FIGURES | {"toy.png"})

    def test_figures_follow_the_data(self):
        # No natural-gradient reference and no ng-cg: no γ/γ_NG and no CG figures.
        self.check_figures("relative", {"quality_over_training.png", "damping_robustness.png"})
        self.check_figures("shard", {"quality_over_training.png", "damping_robustness.png", "ng_relative.png"})

    def test_the_script_alone_makes_the_same_figures(self):
        out = os.path.join(W, "script-alone")
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.run([sys.executable, rs.PLOT_SCRIPT, FULL, "--out", out], capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual({f for f in os.listdir(out) if f.endswith(".png")}, RESULTS_FIGURES)
        for f in RESULTS_FIGURES:
            self.assertEqual(rs.png_size(os.path.join(out, f)),
                             rs.png_size(os.path.join(self.reports["full"][1], f)))

    # -- numbers ----------------------------------------------------------------------------
    def check_tables(self, name, chosen=None):
        path, out, page, parser, data = self.load(name)
        o = oracle(path)
        C, M = o["C"], o["M"]
        smallest = int(np.argmin(o["dampings"]))
        self.assertEqual(data["smallest_damping"], o["dampings"][smallest])
        self.assertEqual(data["units_done"], int(o["done"].sum()))
        rows = {(q["method"], q["checkpoint"]): q for q in data["quality"]}
        self.assertEqual(len(rows), C * M)
        selections = {"smallest": lambda c, m: smallest, "best": lambda c, m: o["best"][(c, m)]}
        if chosen is not None:
            j_chosen = int(np.argmin(np.abs(o["dampings"] - chosen)))
            selections["chosen"] = lambda c, m: j_chosen
        checked = 0
        for c in range(C):
            for m, method in enumerate(o["methods"]):
                q = rows[(method, c)]
                self.assertEqual(q["step"], o["steps"][c])
                for sel, pick in selections.items():
                    j = pick(c, m)
                    at = q["at_" + sel]
                    got = at["gamma_rel_sgd"]
                    cell, text = parser.quality[(sel, method, o["steps"][c])]
                    checked += 1
                    if j is None:  # no finished batch at this checkpoint
                        self.assertEqual((at["damping_index"], got["count"], got["mean"]), (-1, 0, None))
                        self.assertEqual(text, "—")
                        continue
                    self.assertEqual(at["damping_index"], j, (method, c, sel))
                    expect = o["cell"][(c, m, j)]
                    if expect is None:
                        self.assertEqual((got["count"], got["mean"]), (0, None))
                        continue
                    self.assertEqual(got["count"], expect[2])
                    self.assertAlmostEqual(got["mean"], expect[0], delta=1e-12 * abs(expect[0]))
                    self.assertAlmostEqual(got["std"], expect[1], delta=1e-12 * max(abs(expect[0]), 1e-300))
                    # The page shows the same numbers (data attributes exact, text rounded to 4 digits).
                    self.assertEqual(float(cell["data-mean"]), got["mean"])
                    self.assertEqual(float(cell["data-damping"]), o["dampings"][j])
                    self.assertTrue(text.startswith(f"{expect[0]:.4g} ± "), (text, expect))
        self.assertEqual(checked, C * M * len(selections))
        if chosen is None:
            self.assertNotIn("chosen", {k[0] for k in parser.quality})
        # Checkpoint table.
        for c, s in enumerate(data["stages"]):
            self.assertEqual(s["batches_done"], int(o["done"][c].sum()))
            cells = parser.stages[o["steps"][c]]
            for k, name_ in enumerate(("loss", "grad_norm", "grad_norm_imbalance", "logit_grad_norm_imbalance")):
                expect = o["stage"][(name_, c)]
                if expect is None:
                    self.assertEqual(s[name_]["count"], 0)
                    continue
                self.assertAlmostEqual(s[name_]["mean"], expect[0], delta=1e-12 * abs(expect[0]))
                self.assertAlmostEqual(s[name_]["std"], expect[1], delta=1e-12 * abs(expect[0]))
                self.assertEqual(float(cells[k][0]["data-mean"]), s[name_]["mean"])
        # Timing per method from `seconds`.
        for t in data["timing"]:
            total, count = o["timing"][t["method"]]
            self.assertEqual(t["directions"], count)
            self.assertAlmostEqual(t["total_seconds"], total, delta=1e-9 * max(total, 1e-9))
            self.assertEqual(float(parser.timing[t["method"]]["data-total"]), t["total_seconds"])
        # Run metadata: straight from the root attributes.
        run = data["run"]
        self.assertEqual(run["command line"], o["attrs"]["command_line"])
        self.assertEqual(run["fisheval version"], o["attrs"]["fisheval_version"])
        self.assertEqual(run["device"], o["attrs"]["device"])
        self.assertEqual(run["seed"], o["attrs"]["seed"])
        self.assertTrue(run["dtype"].startswith(o["attrs"]["dtype"]))
        self.assertIn(o["attrs"]["command_line"], html.unescape(page))
        with open(os.path.join(out, "quality.csv"), encoding="utf-8") as f:
            lines = f.read().strip().splitlines()
        self.assertEqual(lines[0], "method,step,selection,damping,mean,std,batches")
        self.assertEqual(len(lines) - 1, C * M * len(selections))

    def test_tables_equal_the_result_file(self):
        self.check_tables("full")

    def test_tables_with_a_chosen_damping_and_relative_mode(self):
        self.check_tables("relative", chosen=1e-3)
        _, _, page, _, data = self.load("relative")
        self.assertEqual(data["chosen_damping"], 1e-3)
        self.assertIn("relative", page)

    def test_tables_of_a_partial_shard_use_done_units_only(self):
        path = self.reports["shard"][0]
        with h5py.File(path, "r") as f:
            done = f["done"][()]
        self.assertTrue(0 < done.sum() < done.size, "the shard fixture must be partial")
        self.check_tables("shard")
        _, _, page, _, _ = self.load("shard")
        self.assertIn("not done", page)

    # -- the page in a browser ---------------------------------------------------------------
    def test_page_renders_in_headless_chromium(self):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.assertIsNotNone(chromium, "chromium is needed (scripts/setup.sh installs Debian's chromium)")
        _, out, _, _, _ = self.load("full")
        profile = os.path.join(W, "chromium-profile")
        shutil.rmtree(profile, ignore_errors=True)
        shot = os.path.join(W, "screenshot.png")
        if os.path.exists(shot):
            os.remove(shot)
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1280,1800",
               f"--screenshot={shot}", "file://" + os.path.abspath(os.path.join(out, "index.html"))]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.assertTrue(os.path.isfile(shot), f"no screenshot (exit {p.returncode}):\n{p.stderr[-3000:]}")
        img = rs.read_png(shot)[..., :3]
        self.assertEqual(img.shape[:2], (1800, 1280))
        non_white = (img < 0.9).any(axis=2).mean()
        self.assertGreater(non_white, 0.03, "the screenshot is blank")
        # The figures were drawn (not broken images): the first figure's iEF blue (#1f77b4)
        # covers many pixels near the top of the page, above the tables' small colour swatches.
        blue = np.array([0x1f, 0x77, 0xb4]) / 255.0
        top = img[:1100]
        near = (np.abs(top - blue) < 0.08).all(axis=2).sum()
        self.assertGreater(near, 300, "the figures did not render in the page")


class ReportErrors(unittest.TestCase):
    """Bad input: a clear message, exit 2 (or 1 for a missing Python), and nothing written."""

    def refused(self, args, env=None, code=2, words=()):
        out = os.path.join(W, "refused")
        shutil.rmtree(out, ignore_errors=True)
        p = rs.run(["report"] + args + ["--out", out], env=env, check=False)
        self.assertEqual(p.returncode, code, p.stderr)
        for w in words:
            self.assertIn(w, p.stderr)
        self.assertFalse(os.path.exists(out), "nothing may be written on refusal")
        return p

    def test_missing_file(self):
        self.refused([os.path.join(W, "no-such.h5")], words=["no-such.h5"])

    def test_not_a_result_file(self):
        self.refused([DATA], words=["series.h5"])

    def test_damping_not_on_the_axis(self):
        if not os.path.exists(FULL):
            make_results()
        self.refused([FULL, "--damping", "0.5"], words=["0.5", "damping axis"])

    def test_python_missing(self):
        if not os.path.exists(FULL):
            make_results()
        self.refused([FULL], env={"FISHEVAL_PYTHON": "/nonexistent/python3"}, code=1,
                     words=["/nonexistent/python3", "FISHEVAL_PYTHON", "matplotlib"])

    def test_script_missing(self):
        if not os.path.exists(FULL):
            make_results()
        self.refused([FULL], env={"FISHEVAL_SCRIPTS_DIR": "/nonexistent"}, code=1,
                     words=["/nonexistent/plot_results.py", "FISHEVAL_SCRIPTS_DIR"])

    def test_python_without_matplotlib(self):
        # A real interpreter that lacks the plotting modules, when this machine has one.
        candidates = [shutil.which("python3"), "/usr/local/bin/python3"]
        bare = None
        for c in candidates:
            if c and os.path.realpath(c) != os.path.realpath(sys.executable) and os.path.exists(c):
                p = subprocess.run([c, "-c", "import matplotlib, h5py"], capture_output=True)
                if p.returncode != 0:
                    bare = c
                    break
        if bare is None:
            self.skipTest("no Python without matplotlib/h5py on this machine")
        if not os.path.exists(FULL):
            make_results()
        p = self.refused([FULL], env={"FISHEVAL_PYTHON": bare}, code=1, words=["apt-get install"])
        self.assertIn("missing Python module", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
