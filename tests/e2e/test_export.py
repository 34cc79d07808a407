#!/usr/bin/env python3
"""scripts/export_checkpoint.py leaves the caller's model as it was: exporting during
training (the README's ckpt_step1000.pt) must not switch the live model to eval mode, freeze
its parameters or swap its layers. Also: a torch.compile'd model exports as the module it
wraps, and what is exported is the model's current state."""
import copy
import os
import sys
import unittest

import torch
import torch.nn as nn

from common import SOURCE, run, work_dir

sys.path.insert(0, os.path.join(SOURCE, "scripts"))
import export_checkpoint as ex  # noqa: E402


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.1), nn.Tanh(), nn.Linear(6, 3)).double()


def snapshot(model):
    return {"training": [m.training for m in model.modules()],
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "types": [type(m) for m in model.modules()],
            "state": copy.deepcopy(model.state_dict()),
            "hooks": [len(m._forward_hooks) for m in model.modules()]}


class ExportLeavesTheModelAlone(unittest.TestCase):
    def test_training_model_is_untouched(self):
        model = make_model().train()
        before = snapshot(model)
        path = os.path.join(work_dir("export-untouched"), "ckpt.pt")
        ex.export_checkpoint(model, path, trainable="3.*")
        after = snapshot(model)
        self.assertEqual(before["training"], after["training"])
        self.assertEqual(before["requires_grad"], after["requires_grad"])
        self.assertEqual(before["types"], after["types"])
        self.assertEqual(before["hooks"], after["hooks"])
        for k in before["state"]:
            self.assertTrue(torch.equal(before["state"][k], after["state"][k]), k)
        # The export itself is in eval mode with exactly the chosen parameters trainable.
        loaded = torch.jit.load(path)
        self.assertFalse(loaded.training)
        self.assertEqual([n for n, p in loaded.named_parameters() if p.requires_grad], ["3.weight", "3.bias"])

    def test_training_goes_on_after_an_export(self):
        model = make_model().train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 3, (8,))
        ex.export_checkpoint(model, os.path.join(work_dir("export-train"), "ckpt.pt"), trainable="3.*")
        w0 = model[0].weight.detach().clone()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        self.assertFalse(torch.equal(w0, model[0].weight), "the first layer must still train after the export")

    def test_compiled_model_exports_its_module(self):
        model = make_model().eval()
        compiled = torch.compile(model)
        path = os.path.join(work_dir("export-compiled"), "ckpt.pt")
        ex.export_checkpoint(compiled, path, trainable="*")
        x = torch.randn(5, 4, dtype=torch.float64)
        with torch.no_grad():
            self.assertTrue(torch.allclose(torch.jit.load(path)(x), model(x), rtol=0, atol=1e-14))
        out, _ = run(["methods"])  # the binary is there and answers
        self.assertIn("ief", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
