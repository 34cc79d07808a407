#!/usr/bin/env python3
"""Config files: every flag of `fisheval eval` can come from an INI file (--config), so a
sweep is a file under version control; flags on the command line win; the effective
configuration is stored in the results (root attribute `config`) and, written back to a
file, reproduces the run."""
import os
import re
import unittest

import h5py

import e2e_support as e2e


class ConfigFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        e2e.require_environment()
        cls.dir = e2e.workdir("config")

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def flags_to_ini(self, args):
        """`--name value` / `--switch` pairs of an eval command line as INI lines."""
        lines, i = [], 1  # args[0] is "eval"
        while i < len(args):
            name = args[i][2:]
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                lines.append(f"{name} = {args[i + 1]}")
                i += 2
            else:
                lines.append(f"{name} = true")
                i += 1
        return "\n".join(lines) + "\n"

    def test_every_flag_from_a_file(self):
        by_flags = os.path.join(self.dir, "flags.h5")
        e2e.run(e2e.series_args(by_flags), check=0)
        by_file = os.path.join(self.dir, "file.h5")
        ini = self.flags_to_ini(e2e.series_args(by_file)).replace("quiet = true", "# a comment\nquiet = true")
        cfg = self.write("sweep.ini", ini)
        p = e2e.run(["eval", "--config", cfg], check=0)
        self.assertEqual(e2e.result_differences(by_file, by_flags), [], p.stderr)

    def test_command_line_wins_and_config_is_stored(self):
        cfg = self.write("base.ini", self.flags_to_ini(e2e.series_args(os.path.join(self.dir, "base.h5"))))
        out = os.path.join(self.dir, "override.h5")
        e2e.run(["eval", "--config", cfg, "--damping", "0.5", "--methods", "ef,ief", "--out", out], check=0)
        with h5py.File(out, "r") as f:
            self.assertEqual(list(f["damping"][()]), [0.5])
            self.assertEqual([m.decode() for m in f["method"][()]], ["ef", "ief"])
            config = f.attrs["config"]
        config = config.decode() if isinstance(config, bytes) else config
        entries = dict(re.match(r"(\S+) = (.*)", line).groups() for line in config.splitlines())
        self.assertEqual(entries["damping"], "0.5")
        self.assertEqual(entries["methods"], "ef,ief")
        self.assertEqual(entries["seed"], "7")                 # from the file
        self.assertEqual(entries["batch-sampling"], "random")  # from the file
        self.assertEqual(entries["cg-rtol"], "1e-06")          # a default, recorded too
        self.assertEqual(entries["out"], out)

    def test_stored_config_reproduces_the_run(self):
        first = os.path.join(self.dir, "first.h5")
        e2e.run(e2e.series_args(first, ["--dedup-cosine", "0.95", "--mc-samples", "2"]), check=0)
        with h5py.File(first, "r") as f:
            config = f.attrs["config"]
        config = config.decode() if isinstance(config, bytes) else config
        again = os.path.join(self.dir, "again.h5")
        cfg = self.write("stored.ini", config.replace(f"out = {first}", f"out = {again}"))
        e2e.run(["eval", "--config", cfg], check=0)
        self.assertEqual(e2e.result_differences(again, first), [])

    def test_checkpoint_list_in_a_file(self):
        ckpts = [os.path.join(e2e.fixture("series"), f"ckpt_step{s}.pt") for s in (0, 50)]
        out = os.path.join(self.dir, "list.h5")
        cfg = self.write("list.ini", "".join(f"checkpoints = {c}\n" for c in ckpts) +
                         f"data = {e2e.fixture('series.h5')}\nbatch-size = 8\nmethods = sgd,ef\ndamping = 0\n"
                         f"out = {out}\nquiet = true\n")
        e2e.run(["eval", "--config", cfg], check=0)
        with h5py.File(out, "r") as f:
            self.assertEqual(list(f["checkpoint"]["step"]), [0, 50])

    def test_bad_config_files(self):
        p = e2e.run(["eval", "--config", self.write("typo.ini", "dampin = 0.1\n")], check=2)
        self.assertIn("dampin", p.stderr)
        p = e2e.run(["eval", "--config", self.write("badvalue.ini", "batch-size = many\n")], check=2)
        self.assertIn("batch-size", p.stderr)
        p = e2e.run(["eval", "--config", os.path.join(self.dir, "missing.ini")], check=2)
        self.assertIn("cannot open config file", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
