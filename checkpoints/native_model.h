// Native fisheval checkpoints: the built-in models (MLP, CNN, ViT with LoRA) saved by
// `fisheval train` as a pickled dict {"format", "config", "state", "trainable", ...}
// that Python's torch.load can read too.
#pragma once
#include <memory>
#include <string>

#include "checkpoints/model.h"

namespace fisheval {

std::unique_ptr<Model> load_native_model(const std::string& path);

}  // namespace fisheval
