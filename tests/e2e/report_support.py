"""Shared helpers of the report end-to-end tests: the environment CTest sets, running the
real fisheval binary, and PNG checks. Not a test itself (CTest runs test_*.py only)."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

BINARY = os.environ.get("FISHEVAL_BINARY", "")
FIXTURES = os.environ.get("FISHEVAL_FIXTURES", "")
SOURCE = os.environ.get("FISHEVAL_SOURCE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORK = os.environ.get("FISHEVAL_WORK") or tempfile.mkdtemp(prefix="fisheval-e2e-")
PLOT_SCRIPT = os.path.join(SOURCE, "scripts", "plot_results.py")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def require_environment():
    missing = [n for n, v in (("FISHEVAL_BINARY", BINARY), ("FISHEVAL_FIXTURES", FIXTURES)) if not v]
    if missing:
        sys.exit(f"set {', '.join(missing)} (CTest does)")


def work_dir(name):
    """A fresh folder for one test (what an earlier run left there is removed: a stale result
    file of an older binary must not stand in for this run's)."""
    path = os.path.join(WORK, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def run(args, env=None, check=True, timeout=900):
    """Runs the real fisheval binary; returns the CompletedProcess (text)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run([BINARY] + list(args), capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"fisheval {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def png_size(path):
    """(width, height) from a PNG's IHDR chunk; raises AssertionError if it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise AssertionError(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


def read_png(path):
    """Decodes the whole PNG (a truncated or corrupt file fails here): float array [H, W, C] in [0, 1]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    return mpimg.imread(path)
