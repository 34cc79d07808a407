"""Shared helpers of the end-to-end tests: where things are (set by CTest), running the
real fisheval binary, and comparing result files value by value with h5py."""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

FIXTURES = os.environ.get("FISHEVAL_FIXTURES", "")
BINARY = os.environ.get("FISHEVAL_BINARY", "")
SOURCE = os.environ.get("FISHEVAL_SOURCE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WORK_ROOT = os.environ.get("FISHEVAL_WORK", "/tmp/fisheval-e2e")

# Root attributes that describe how a file was made rather than what it holds.
RUN_METADATA = {"command_line", "config", "shard", "merged_from", "device", "torch_version", "fisheval_version",
                "cuda_compiled", "cuda_runtime", "cuda_devices", "blas", "lapack", "threads", "omp_wait_policy",
                "memory_budget_gib", "max_output_units",
                "dtype_resolved", "data_description"}


def require_environment():
    if not (FIXTURES and BINARY and os.path.exists(BINARY) and os.path.isdir(FIXTURES)):
        sys.exit("set FISHEVAL_FIXTURES and FISHEVAL_BINARY (CTest does) and make the fixtures first")


def workdir(name):
    """A fresh folder for one test."""
    path = os.path.join(WORK_ROOT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def fixture(name):
    return os.path.join(FIXTURES, name)


def run(args, cwd=None, env=None, timeout=600, check=None):
    """Runs `fisheval ARGS`; returns the CompletedProcess (text output). `check`: the exit
    code expected, asserted with the output shown on a mismatch."""
    full_env = dict(os.environ)
    full_env.pop("SLURM_ARRAY_TASK_ID", None)
    full_env.pop("SLURM_ARRAY_TASK_COUNT", None)
    full_env.update(env or {})
    p = subprocess.run([BINARY] + list(args), cwd=cwd, env=full_env, capture_output=True, text=True,
                       timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError(f"fisheval {' '.join(args)}: exit {p.returncode}, expected {check}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def read_all(path):
    """Every dataset of a result file as numpy arrays (strings decoded) and its root attributes."""
    data, attrs = {}, {}
    with h5py.File(path, "r") as f:
        for name, ds in f.items():
            v = ds[()]
            if ds.dtype.kind == "O":
                v = np.array([x.decode() if isinstance(x, bytes) else x for x in v.ravel()], dtype=object)
            data[name] = v
        for k, v in f.attrs.items():
            attrs[k] = v.decode() if isinstance(v, bytes) else v
    return data, attrs


def same_array(a, b):
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if a.dtype.names:  # compound (the checkpoint axis)
        return a.shape == b.shape and all(
            [(x.decode() if isinstance(x, bytes) else x) for x in a[n]] ==
            [(x.decode() if isinstance(x, bytes) else x) for x in b[n]] for n in a.dtype.names)
    return a.shape == b.shape and np.array_equal(a, b)


def result_differences(path_a, path_b, skip_prefixes=("seconds",)):
    """Differences between two result files: every dataset (values bit for bit, NaN equal
    to NaN, same order) except those whose name starts with a skip prefix (timings), and
    every root attribute except RUN_METADATA. An empty list means identical."""
    da, aa = read_all(path_a)
    db, ab = read_all(path_b)
    diffs = []
    if set(da) != set(db):
        diffs.append(f"datasets differ: {sorted(set(da) ^ set(db))}")
    for name in sorted(set(da) & set(db)):
        if name.startswith(tuple(skip_prefixes)):
            continue
        if not same_array(da[name], db[name]):
            diffs.append(f"dataset {name} differs")
    for k in sorted((set(aa) | set(ab)) - RUN_METADATA):
        if k not in aa or k not in ab:
            diffs.append(f"attribute {k} only in one file")
        elif not np.array_equal(np.asarray(aa[k]), np.asarray(ab[k])):
            diffs.append(f"attribute {k} differs: {aa[k]!r} vs {ab[k]!r}")
    return diffs


def series_args(out, extra=()):
    """A small sweep over the fixture series (3 checkpoints of one MLP) that computes every
    kind of measure, including ng-cg's residual histories and the per-sample statistics."""
    return ["eval", "--series", fixture("series"), "--data", fixture("series.h5"), "--batch-size", "8",
            "--num-batches", "5", "--batch-sampling", "random", "--seed", "7",
            "--methods", "sgd,ef,ief,sf,ng-cg,ng-dense", "--damping", "0,1e-4,1e-2,1", "--cg-max-iter", "30",
            "--quiet", "--out", out] + list(extra)
