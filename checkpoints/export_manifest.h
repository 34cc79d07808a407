// The export manifest: `fisheval.json`, stored in a TorchScript archive's extra files by
// scripts/export_checkpoint.py (torch.jit.save(..., _extra_files=...)). It says what the
// archive's forward expects and returns, so that models traced rather than scripted
// (Hugging Face + PEFT) carry what fisheval needs:
//
//   {"format": "fisheval-torchscript", "version": 1,
//    "loss": "cross-entropy",                       the likelihood the model was trained with
//    "inputs": ["input_ids", "attention_mask"],     forward's arguments, data datasets by name
//    "taps": "outputs",                             "outputs" | "attributes" | "none"
//    "layers": [{"name": "encoder.q.lora_A", "kind": "linear", "weight": "encoder.q.lora_A.weight",
//                "bias": "", "activation": "identity"}, ...],
//    "trainable": ["encoder.q.lora_A.weight", ...], the evaluated parameters by default
//    "readout": "t5-first-token",                   what the logits are (documentation)
//    "dtype": "float32"}                            traced exports: the only dtype they run in
//
// taps "outputs": forward returns (logits, a_1, o_1, ..., a_L, o_L), the input and output of
// each listed layer in the forward pass; "attributes": the layers are submodules carrying
// fisheval_* attributes (checkpoints/torchscript_model.cpp); "none": no layer taps.
#pragma once
#include <string>
#include <vector>

#include "checkpoints/model.h"

namespace fisheval {

struct ExportManifest {
  int version = 0;
  std::string loss;
  std::vector<std::string> inputs;
  std::string taps = "attributes";
  std::vector<LayerSpec> layers;   // taps "outputs" only
  std::vector<std::string> trainable;
  bool has_trainable = false;
  std::string readout;
  std::string dtype;  // "" (any), "float32" or "float64"
};

// Parses the manifest's text; InputError naming `where` for anything malformed.
ExportManifest parse_export_manifest(const std::string& text, const std::string& where);

}  // namespace fisheval
