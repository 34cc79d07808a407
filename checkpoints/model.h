// A model that fisheval can evaluate: a function inputs -> logits whose parameters
// can be read, replaced (e.g. by forward-mode dual tensors) and whose supported
// layers expose their inputs and outputs ("taps") after a forward pass.
//
// Two kinds exist: TorchScript archives made by torch.jit.save (torchscript_model.cpp)
// and the built-in native models written by `fisheval train` (native_model.h).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <memory>
#include <string>
#include <vector>

#include "checkpoints/inputs.h"

namespace fisheval {

enum class LayerKind { kLinear, kConv2d };

// A layer the Kronecker methods and the fast per-sample-gradient path understand.
// Linear: y = x Wᵀ + b over the last axis; Conv2d: the usual 2-D convolution.
struct LayerSpec {
  std::string name;        // qualified module name, e.g. "blocks.0.attn.q.lora_A"
  LayerKind kind = LayerKind::kLinear;
  std::string weight;      // qualified parameter names; bias "" when the layer has none
  std::string bias;
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};  // Conv2d only
  int64_t groups = 1;                                                // Conv2d only
  // Activation applied to the layer's output by the model: identity, relu, gelu,
  // tanh, sigmoid, softmax (used by Fishy's local sampling). "identity" when unknown.
  std::string activation = "identity";
};

// The input and output of one layer in the last forward pass. `output` is still
// attached to the autograd graph so that output gradients can be taken.
struct LayerTap {
  at::Tensor input;
  at::Tensor output;
};

class Model {
 public:
  virtual ~Model() = default;

  // "torchscript" or "native:<model>".
  virtual std::string format() const = 0;

  // All parameters, qualified names in a fixed order. A parameter that several modules
  // share (tied weights: an output layer that reuses the input embedding) is listed once,
  // under the first name it has in the model (as PyTorch's named_parameters() does).
  virtual std::vector<std::string> parameter_names() const = 0;
  // The other names of a shared parameter (empty when it is used once). Setting the
  // parameter sets it under every name, so its gradient sums every use.
  virtual std::vector<std::string> aliases(const std::string& name) const { return {}; }
  virtual at::Tensor parameter(const std::string& name) const = 0;
  // Replace a parameter's tensor for the following forward passes (dual tensors for
  // forward-mode AD, updated values in the trainer). Shape must not change.
  virtual void set_parameter(const std::string& name, const at::Tensor& value) = 0;
  // Whether the checkpoint marks the parameter trainable (requires_grad when saved).
  virtual bool saved_trainable(const std::string& name) const = 0;

  // The logits for one batch of inputs (one tensor, or several named ones).
  virtual at::Tensor forward(const Inputs& inputs) = 0;

  // Supported layers, and their taps from the last forward (same order; undefined
  // tensors when the model has no taps).
  virtual const std::vector<LayerSpec>& layers() const = 0;
  virtual std::vector<LayerTap> taps() const = 0;

  // Moves parameters (and buffers) to a device and floating dtype.
  virtual void to(c10::Device device, c10::ScalarType dtype) = 0;

  // Whether the checkpoint was made with layer taps (false: exported without them, or a
  // model scripted or traced by hand), for true messages when a method needs them.
  virtual bool exported_with_taps() const { return true; }

  // The loss the model was trained with, when the checkpoint records it
  // ("cross-entropy", "squared-error", "binary-cross-entropy"), else "".
  virtual std::string loss_hint() const { return ""; }
};

// The parameters selected for evaluation (θ), in model order. `globs` is a
// comma-separated list of fnmatch patterns on qualified names ("*lora*,head.*"), matched
// against every name of a shared parameter; empty means: the parameters saved with
// requires_grad.
std::vector<std::string> select_parameters(const Model& model, const std::string& globs);

// Marks exactly the selected parameters as requiring gradients (others frozen).
void set_trainable(Model& model, const std::vector<std::string>& selected);

// Total number of scalars in the selected parameters.
int64_t count_parameters(const Model& model, const std::vector<std::string>& selected);

// Throws InputError naming the first selected parameter with a NaN or infinite entry.
void check_finite_parameters(const Model& model, const std::vector<std::string>& selected);

// The selected parameters as JSON, for result files: [{"name": ..., "shape": [...],
// "aliases": [...]}, ...] (aliases only for shared parameters).
std::string describe_parameters(const Model& model, const std::vector<std::string>& selected);

}  // namespace fisheval
