"""Shared helpers of the end-to-end tests (run by CTest with /usr/bin/python3)."""
import os
import shutil
import subprocess
import sys

FIXTURES = os.environ.get("FISHEVAL_FIXTURES", "fixtures")
BINARY = os.environ.get("FISHEVAL_BINARY", "fisheval")
SOURCE = os.environ.get("FISHEVAL_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
WORK_ROOT = os.environ.get("FISHEVAL_WORK", "/tmp/fisheval-e2e")


def work_dir(name):
    """A fresh folder for one test."""
    path = os.path.join(WORK_ROOT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def fixture(name):
    return os.path.join(FIXTURES, name)


def run(args, expect=0, env=None):
    """Runs fisheval with args; checks the exit status; returns (stdout, stderr)."""
    proc = subprocess.run([BINARY] + args, capture_output=True, text=True, env=env)
    if expect is not None and proc.returncode != expect:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise AssertionError(f"fisheval {' '.join(args)}: exit {proc.returncode}, expected {expect}")
    return proc.stdout, proc.stderr


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
