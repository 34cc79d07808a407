// TorchScript checkpoints.
//
// Tap convention (applied by scripts/export_checkpoint.py): a supported layer is a
// submodule with the attributes
//   fisheval_kind: str            "linear" or "conv2d"
//   fisheval_activation: str      activation applied to its output by the model
//   fisheval_input, fisheval_output: Tensor   set by its forward on every call
//   fisheval_calls: int           incremented by its forward (taps are valid only
//                                 when a layer ran exactly once in a forward pass)
//   fisheval_stride, fisheval_padding, fisheval_dilation: List[int], fisheval_groups: int
//                                 (conv2d only)
// and parameters `weight` and optional `bias`. The root module may carry
// fisheval_loss: str ("cross-entropy" or "squared-error").
//
// Forward-mode AD through TorchScript needs the graph executor's optimisation off
// (libtorch-notes.md), so loading a TorchScript model switches it off for the process.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <map>

#include "checkpoints/archive_check.h"
#include "checkpoints/error.h"
#include "checkpoints/load.h"

namespace fisheval {
namespace {

std::pair<std::string, std::string> split_last(const std::string& qualified) {
  const auto dot = qualified.rfind('.');
  if (dot == std::string::npos) return {"", qualified};
  return {qualified.substr(0, dot), qualified.substr(dot + 1)};
}

torch::jit::Module submodule(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module m = root;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('.', start);
    if (end == std::string::npos) end = path.size();
    m = m.attr(path.substr(start, end - start)).toModule();
    start = end + 1;
  }
  return m;
}

std::vector<int64_t> int_list(const torch::jit::Module& m, const std::string& name,
                              std::vector<int64_t> fallback) {
  if (!m.hasattr(name)) return fallback;
  return m.attr(name).toIntVector();
}

class TorchScriptModel final : public Model {
 public:
  TorchScriptModel(torch::jit::Module module, std::string path)
      : module_(std::move(module)), path_(std::move(path)) {
    module_.eval();
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) check_storage(p.name, p.value);
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) check_storage(b.name, b.value);
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
      names_.push_back(p.name);
      saved_trainable_[p.name] = p.value.requires_grad();
    }
    for (const auto& sub : module_.named_modules()) {
      if (!sub.value.hasattr("fisheval_kind")) continue;
      LayerSpec spec;
      spec.name = sub.name;
      const auto kind = sub.value.attr("fisheval_kind").toStringRef();
      if (kind == "linear") {
        spec.kind = LayerKind::kLinear;
      } else if (kind == "conv2d") {
        spec.kind = LayerKind::kConv2d;
        spec.stride = int_list(sub.value, "fisheval_stride", {1, 1});
        spec.padding = int_list(sub.value, "fisheval_padding", {0, 0});
        spec.dilation = int_list(sub.value, "fisheval_dilation", {1, 1});
        if (sub.value.hasattr("fisheval_groups")) spec.groups = sub.value.attr("fisheval_groups").toInt();
      } else {
        continue;  // unknown kinds are ignored: the layer simply has no taps
      }
      const std::string prefix = sub.name.empty() ? "" : sub.name + ".";
      spec.weight = prefix + "weight";
      if (sub.value.hasattr("bias") && sub.value.attr("bias").isTensor()) spec.bias = prefix + "bias";
      if (sub.value.hasattr("fisheval_activation")) {
        spec.activation = sub.value.attr("fisheval_activation").toStringRef();
      }
      layers_.push_back(spec);
      layer_modules_.push_back(sub.value);
    }
    if (module_.hasattr("fisheval_loss")) loss_hint_ = module_.attr("fisheval_loss").toStringRef();
  }

  std::string format() const override { return "torchscript"; }
  std::vector<std::string> parameter_names() const override { return names_; }

  at::Tensor parameter(const std::string& name) const override {
    const auto [owner, leaf] = split_last(name);
    return submodule(module_, owner).attr(leaf).toTensor();
  }

  void set_parameter(const std::string& name, const at::Tensor& value) override {
    const auto [owner, leaf] = split_last(name);
    auto m = submodule(module_, owner);
    m.setattr(leaf, value);
  }

  bool saved_trainable(const std::string& name) const override {
    const auto it = saved_trainable_.find(name);
    return it != saved_trainable_.end() && it->second;
  }

  at::Tensor forward(const at::Tensor& inputs) override {
    for (auto& m : layer_modules_) {
      if (m.hasattr("fisheval_calls")) m.setattr("fisheval_calls", 0);
    }
    c10::IValue out;
    try {
      out = module_.forward({inputs});
    } catch (const std::exception& e) {  // c10::Error, or the interpreter's JITException
      throw InputError(fmt::format("{}: the model's forward failed on inputs of shape {} ({}): {}", path_,
                                   fmt::join(inputs.sizes(), "x"), c10::toString(inputs.scalar_type()),
                                   reason(e.what())));
    }
    if (!out.isTensor()) {
      throw InputError(fmt::format("{}: forward(inputs) must return one logits tensor, got {}",
                                   path_, out.tagKind()));
    }
    return out.toTensor();
  }

  const std::vector<LayerSpec>& layers() const override { return layers_; }

  std::vector<LayerTap> taps() const override {
    std::vector<LayerTap> out;
    for (const auto& m : layer_modules_) {
      LayerTap tap;
      const bool once = !m.hasattr("fisheval_calls") || m.attr("fisheval_calls").toInt() == 1;
      if (once && m.hasattr("fisheval_input") && m.hasattr("fisheval_output")) {
        tap.input = m.attr("fisheval_input").toTensor();
        tap.output = m.attr("fisheval_output").toTensor();
        if (tap.output.numel() == 0) tap = LayerTap{};
      }
      out.push_back(tap);
    }
    return out;
  }

  void to(c10::Device device, c10::ScalarType dtype) override {
    // Only floating-point parameters and buffers change dtype.
    for (const auto& p : module_.named_parameters(true)) {
      if (p.value.is_floating_point()) {
        const bool rg = p.value.requires_grad();
        set_parameter(p.name, p.value.detach().to(device, dtype).requires_grad_(rg));
      }
    }
    for (const auto& b : module_.named_buffers(true)) {
      const auto [owner, leaf] = split_last(b.name);
      auto m = submodule(module_, owner);
      m.setattr(leaf, b.value.is_floating_point() ? b.value.to(device, dtype) : b.value.to(device));
    }
  }

  std::string loss_hint() const override { return loss_hint_; }

 private:
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  // A malformed archive can give a tensor sizes and strides its storage does not hold (or
  // no storage at all); reading it would touch memory that is not there. Needed bytes:
  // (offset + 1 + Σ_i (size_i − 1)·stride_i) · itemsize for a non-empty tensor.
  void check_storage(const std::string& name, const at::Tensor& t) const {
    if (!t.defined() || t.numel() == 0) return;
    bool ok = t.has_storage() && t.storage().data() != nullptr && t.storage_offset() >= 0;
    if (ok) {
      uint64_t last = static_cast<uint64_t>(t.storage_offset());
      for (int64_t d = 0; d < t.dim(); ++d) {
        if (t.stride(d) < 0) ok = false;
        last += static_cast<uint64_t>(t.size(d) - 1) * static_cast<uint64_t>(std::max<int64_t>(t.stride(d), 0));
      }
      ok = ok && (last + 1) * t.element_size() <= t.storage().nbytes();
    }
    if (!ok) {
      throw InputError(fmt::format("TorchScript checkpoint '{}': tensor '{}' of shape {} has missing or truncated "
                                   "data (a damaged archive)",
                                   path_, name, fmt::join(t.sizes(), "x")));
    }
  }

  // The cause in an error from the TorchScript interpreter: its last "...Error: why" line
  // (the rest is a traceback), else the first line.
  static std::string reason(const std::string& s) {
    std::string found;
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find('\n', start);
      if (end == std::string::npos) end = s.size();
      const auto line = s.substr(start, end - start);
      if (line.find("Error: ") != std::string::npos) found = line;
      start = end + 1;
    }
    return found.empty() ? first_line(s) : found;
  }

  torch::jit::Module module_;
  std::string path_;
  std::vector<std::string> names_;
  std::map<std::string, bool> saved_trainable_;
  std::vector<LayerSpec> layers_;
  std::vector<torch::jit::Module> layer_modules_;
  std::string loss_hint_;
};

}  // namespace

std::unique_ptr<Model> load_torchscript_model(const std::string& path) {
  torch::jit::setGraphExecutorOptimize(false);
  // LibTorch reports a malformed archive with c10::Error, and from its TorchScript parser
  // and unpickler with other std::exception types (torch::jit::ErrorReport,
  // std::runtime_error): all of them are bad input here.
  const auto refuse = [&](const std::string& what) {
    return InputError(fmt::format("cannot load TorchScript checkpoint '{}': {}", path, what.substr(0, what.find('\n'))));
  };
  check_checkpoint_archive(path);  // before LibTorch's zip reader and unpickler see it
  torch::jit::Module module;
  try {
    // Without the debug files (code/*.debug_pkl, the source ranges of error messages):
    // LibTorch 2.15 reads their structure unchecked, and a damaged one made the parser's
    // error report read a wild pointer (SIGSEGV, found by fuzz_torchscript).
    module = torch::jit::load(path, torch::kCPU, /*load_debug_files=*/false);
  } catch (const std::exception& e) {
    throw refuse(e.what());
  }
  if (!module.find_method("forward")) {
    throw InputError(fmt::format("TorchScript checkpoint '{}' has no forward method", path));
  }
  try {  // reads the tap attributes, whose types a malformed archive may get wrong
    return std::make_unique<TorchScriptModel>(std::move(module), path);
  } catch (const c10::Error& e) {
    throw refuse(e.what());
  }
}

}  // namespace fisheval
