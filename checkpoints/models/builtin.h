// The architectures of the built-in models (one file each), behind make_builtin_model
// (checkpoints/native_model.h). Internal to checkpoints/.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "checkpoints/native_model.h"

namespace fisheval {

std::unique_ptr<NativeModel> make_mlp(const ModelConfig& config, at::Generator& generator);
std::unique_ptr<NativeModel> make_autoencoder(const ModelConfig& config, at::Generator& generator);
std::unique_ptr<NativeModel> make_cnn(const ModelConfig& config, at::Generator& generator);
// "vit" (all parameters trainable) and "vit-lora" (adapters and head trainable).
std::unique_ptr<NativeModel> make_vit(const ModelConfig& config, at::Generator& generator);

// "q,v" → {"q", "v"}; throws InputError for names other than q, k, v, o.
std::vector<std::string> lora_target_list(const std::string& targets);

// The hidden activation by name: tanh, relu, gelu (exact erf form, as nn.GELU()).
at::Tensor activate(const std::string& name, const at::Tensor& x);

}  // namespace fisheval
