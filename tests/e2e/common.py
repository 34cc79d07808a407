"""Shared helpers of the end-to-end tests (run by CTest with the project environment's Python)."""
import json
import subprocess
import sys

# Where things are, fresh work folders and fixture paths: the helpers every e2e test shares.
from e2e_support import BINARY, FIXTURES, SOURCE, fixture  # noqa: F401
from e2e_support import workdir as work_dir  # noqa: F401


def run(args, expect=0, env=None):
    """Runs fisheval with args; checks the exit status; returns (stdout, stderr)."""
    proc = subprocess.run([BINARY] + args, capture_output=True, text=True, env=env)
    if expect is not None and proc.returncode != expect:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise AssertionError(f"fisheval {' '.join(args)}: exit {proc.returncode}, expected {expect}")
    return proc.stdout, proc.stderr


def registered_methods(needs=None, exclude=(), references=True):
    """The registered methods (`fisheval methods --json`, registry order): with `needs`, those
    whose needs include it ("layer-taps" for the Kronecker and Shampoo families); without the
    exact references when references is False; less `exclude`."""
    out, _ = run(["methods", "--json"])
    return [m["name"] for m in json.loads(out)
            if (needs is None or needs in m["needs"]) and (references or not m["reference"])
            and m["name"] not in exclude]


class Failures:
    """Collects failed checks and reports them all at the end."""

    def __init__(self):
        self.items = []

    def check(self, ok, what):
        if not ok:
            self.items.append(what)

    def close(self):
        if self.items:
            print("\n".join(["FAILED: " + i for i in self.items]))
            sys.exit(1)
        print("all checks passed")
