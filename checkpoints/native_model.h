// Native fisheval checkpoints and the built-in models (MLP, deep autoencoder, CNN, ViT,
// ViT with LoRA).
//
// A built-in model is written in a functional style: its parameters live in an ordered
// map (name → tensor, model order = declaration order) and forward() reads them by name
// on every call, so set_parameter (dual tensors for forward-mode AD, the trainer's
// updates) just swaps a tensor. Every Linear/Conv2d is a LayerSpec with the activation
// the model applies to its output, and forward() records its taps — the layer's input
// and its pre-activation output, still on the autograd graph — exactly as the
// TorchScript tap convention does (checkpoints/torchscript_model.cpp).
//
// A native checkpoint is a pickled dict written with torch::pickle_save, which
// Python's torch.load reads:
//   format    "fisheval-native"        version  1
//   model     "mlp" | "autoencoder" | "cnn" | "vit" | "vit-lora"
//   config    dict of the ModelConfig fields (ints, floats, strings, int lists)
//   state     dict name → tensor (CPU), every parameter in model order
//   trainable list of the parameter names marked trainable (--params default)
//   loss      "cross-entropy" ("binary-cross-entropy" for the autoencoder)
//   step (int), epoch (float), metrics (dict str → float), notes (dict str → str)
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "checkpoints/model.h"

namespace fisheval {

// The architecture of a built-in model. Every field is saved in the checkpoint.
struct ModelConfig {
  std::string model = "mlp";                   // mlp | autoencoder | cnn | vit | vit-lora
  std::vector<int64_t> input_shape{1, 28, 28};  // one input: channels, height, width
  int64_t num_classes = 10;
  std::string activation = "relu";             // mlp / cnn hidden activation: tanh | relu | gelu
  std::vector<int64_t> widths{128, 64};         // mlp, autoencoder: hidden widths
  std::vector<int64_t> channels{16, 32};        // cnn: 3×3 convolutions, stride 2, padding 1
  int64_t hidden = 64;                          // cnn: width of the fully connected hidden layer
  int64_t patch = 7;                            // vit: square patch size (28×28 → 16 tokens)
  int64_t dim = 64;                             // vit: token width
  int64_t depth = 2;                            // vit: transformer blocks
  int64_t heads = 4;                            // vit: attention heads
  int64_t mlp_dim = 128;                        // vit: hidden width of each block's MLP
  int64_t lora_rank = 4;                        // vit-lora: rank r of the adapters
  double lora_alpha = 4.0;                      // vit-lora: adapter output scaled by alpha / r
  std::string lora_targets = "q,v";             // vit-lora: attention projections with adapters (q,k,v,o)
};

// The autoencoder's hidden widths by preset: "paper" [1000, 500×8, 250, 30, 250, 500×8,
// 1000] (the Fishy paper's network, 6.3 M parameters on 28×28 inputs), "small" [256,
// 128×2, 64, 16, 64, 128×2, 256] (0.5 M); empty for another name.
std::vector<int64_t> autoencoder_widths(const std::string& preset);

// Checks the fields of a config (known model, positive sizes, …); throws InputError.
void validate_config(const ModelConfig& config);
std::vector<std::string> builtin_model_names();
std::string describe_config(const ModelConfig& config);  // one line, for logs

class NativeModel : public Model {
 public:
  explicit NativeModel(ModelConfig config);
  ~NativeModel() override;

  std::string format() const override { return "native:" + config_.model; }
  std::vector<std::string> parameter_names() const override { return names_; }
  at::Tensor parameter(const std::string& name) const override;
  void set_parameter(const std::string& name, const at::Tensor& value) override;
  bool saved_trainable(const std::string& name) const override;
  at::Tensor forward(const Inputs& inputs) override;
  const std::vector<LayerSpec>& layers() const override { return layers_; }
  std::vector<LayerTap> taps() const override;
  void to(c10::Device device, c10::ScalarType dtype) override;
  // The autoencoder's logits are Bernoulli outputs; every other built-in model classifies.
  std::string loss_hint() const override {
    return config_.model == "autoencoder" ? "binary-cross-entropy" : "cross-entropy";
  }

  const ModelConfig& config() const { return config_; }
  // The names saved as trainable (the default parameter selection).
  std::vector<std::string> trainable_names() const;
  void set_saved_trainable(const std::vector<std::string>& names);

 protected:
  // Declares a parameter; declaration order is model order.
  void add_parameter(const std::string& name, const at::Tensor& value, bool trainable);
  // Declares Linear layer `name` (parameters name.weight [out, in], name.bias [out]) or
  // Conv2d layer (name.weight [out, in, k, k]), both initialised as PyTorch does:
  // U(−1/√fan_in, 1/√fan_in) from `generator`. Returns the layer index.
  size_t add_linear(const std::string& name, int64_t in, int64_t out, bool bias, const std::string& activation,
                    bool trainable, at::Generator& generator);
  size_t add_conv2d(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                    int64_t padding, const std::string& activation, bool trainable, at::Generator& generator);
  // y = x Wᵀ + b over the last axis / the 2-D convolution, recording the tap (x, y).
  at::Tensor linear(size_t layer, const at::Tensor& x);
  at::Tensor conv2d(size_t layer, const at::Tensor& x);
  const at::Tensor& param(const std::string& name) const;

  // The architecture: inputs [N, *input_shape] → logits [N, num_classes].
  virtual at::Tensor forward_impl(const at::Tensor& x) = 0;

 private:
  ModelConfig config_;
  std::vector<std::string> names_;
  std::map<std::string, at::Tensor> params_;
  std::set<std::string> trainable_;
  std::vector<LayerSpec> layers_;
  std::vector<LayerTap> taps_;
  std::vector<int> calls_;  // per layer, calls in the current forward (taps valid when 1)
};

// A freshly initialised built-in model (parameters float32 on the CPU), its default
// trainable parameters marked: all of them, except for vit-lora (the adapters and the head).
std::unique_ptr<NativeModel> make_builtin_model(const ModelConfig& config, uint64_t seed);

// What a native checkpoint records besides the model.
struct NativeCheckpointInfo {
  std::string loss = "cross-entropy";
  int64_t step = 0;
  double epoch = 0;
  std::map<std::string, double> metrics;     // train_loss, test_accuracy, …
  std::map<std::string, std::string> notes;  // optimizer, lr, data, …
};

// Writes the checkpoint atomically (temporary file, then rename).
void save_native_checkpoint(const NativeModel& model, const std::string& path, const NativeCheckpointInfo& info);
// Reads one; InputError for a file that is not a native checkpoint or does not fit its
// model (missing or misshapen parameters). `info` (optional) receives the metadata.
std::unique_ptr<NativeModel> load_native_checkpoint(const std::string& path, NativeCheckpointInfo* info = nullptr);
std::unique_ptr<Model> load_native_model(const std::string& path);

}  // namespace fisheval
