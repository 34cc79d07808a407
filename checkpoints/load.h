// Loading a model checkpoint of either kind, chosen by the file's content: a zip
// archive with a constants.pkl record is a TorchScript module (torch.jit.save);
// anything else must be a native fisheval checkpoint (a dict pickled by
// torch::pickle_save, itself a zip archive without constants.pkl; native_model.h).
#pragma once
#include <memory>
#include <string>

#include "checkpoints/model.h"

namespace fisheval {

std::unique_ptr<Model> load_model(const std::string& path);

// TorchScript archive; tap convention in scripts/export_checkpoint.py.
std::unique_ptr<Model> load_torchscript_model(const std::string& path);

}  // namespace fisheval
