#!/usr/bin/env python3
"""Whether two fisheval result files hold the same results, bit for bit.

    .venv/bin/python scripts/same_results.py A.h5 B.h5

Compares every dataset (floating-point ones exactly, NaN equal to NaN) and every root
attribute, except what differs between any two runs: wall-clock timings (datasets whose
name contains "seconds"), and the attributes that record when, where and by what the file
was made (command line, build, versions, BLAS, threads, devices, the `out =` line of the
configuration).
Prints each difference; exit status 0 when there is none, 1 when there is, 2 for a file
that cannot be read. Used to show that a change of the code left a fixed run's numbers
exactly as they were (run the old and the new binary on the same command)."""
import sys

import h5py
import numpy as np

# Attributes of the run rather than of its results: when, how and on what it was made.
RUN_ATTRIBUTES = ("created", "command_line", "fisheval_version", "build", "hostname", "wall_seconds", "git", "blas",
                  "lapack", "cuda_", "omp_wait_policy", "threads", "torch_version")


def config_lines(text):
    return [line for line in str(text).splitlines() if not line.startswith("out =")]


def differences(path_a, path_b):
    out = []
    with h5py.File(path_a, "r") as a, h5py.File(path_b, "r") as b:
        names_a, names_b = [], []
        a.visit(names_a.append)
        b.visit(names_b.append)
        for name in sorted(set(names_a) ^ set(names_b)):
            out.append(f"only in {'A' if name in a else 'B'}: {name}")
        for name in sorted(set(names_a) & set(names_b)):
            x, y = a[name], b[name]
            if not isinstance(x, h5py.Dataset) or "seconds" in name.split("/")[-1]:
                continue
            u, v = x[()], y[()]
            if isinstance(u, np.ndarray) and u.dtype.kind == "f":
                same = u.shape == v.shape and u.dtype == v.dtype and np.array_equal(u, v, equal_nan=True)
            else:
                same = np.array_equal(np.asarray(u), np.asarray(v))
            if not same:
                out.append(f"dataset {name} differs")
        for key in sorted(set(a.attrs) | set(b.attrs)):
            if any(k in key for k in RUN_ATTRIBUTES):
                continue
            if key not in a.attrs or key not in b.attrs:
                out.append(f"attribute {key} only in {'A' if key in a.attrs else 'B'}")
            elif key == "config":
                if config_lines(a.attrs[key]) != config_lines(b.attrs[key]):
                    out.append("attribute config differs")
            elif str(a.attrs[key]) != str(b.attrs[key]):
                out.append(f"attribute {key} differs")
    return out


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    try:
        diffs = differences(argv[1], argv[2])
    except OSError as e:
        sys.stderr.write(f"same_results: {e}\n")
        return 2
    for d in diffs:
        print(d)
    print("same results" if not diffs else f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
