// TorchScript checkpoints, scripted or traced (scripts/export_checkpoint.py).
//
// Layer taps come in one of two conventions, named by the export manifest
// (checkpoints/export_manifest.h; archives without one use the first):
//
// * attributes (scripted modules): a supported layer is a submodule with the attributes
//     fisheval_kind: str            "linear" or "conv2d"
//     fisheval_activation: str      activation applied to its output by the model
//     fisheval_input, fisheval_output: Tensor   set by its forward on every call
//     fisheval_calls: int           incremented by its forward (taps are valid only
//                                   when a layer ran exactly once in a forward pass)
//     fisheval_stride, fisheval_padding, fisheval_dilation: List[int], fisheval_groups: int
//                                   (conv2d only)
//   and parameters `weight` and optional `bias`. The root module may carry
//   fisheval_loss: str ("cross-entropy", "squared-error" or "binary-cross-entropy").
// * outputs (traced modules, e.g. Hugging Face + PEFT): forward returns the tuple
//   (logits, a_1, o_1, ..., a_L, o_L) of the manifest's L layers' inputs and outputs.
// A plain torch.jit.script / torch.jit.trace archive (no manifest, no tap attributes) gets
// the attributes convention at load time (add_taps_to_plain_layers).
//
// Inputs: one tensor "inputs" is passed positionally; several named inputs by name, each
// checked against forward's arguments.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <map>
#include <optional>

#include "base/text.h"
#include "checkpoints/archive_check.h"
#include "base/error.h"
#include "checkpoints/export_manifest.h"
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
  TorchScriptModel(torch::jit::Module module, std::string path, ExportManifest manifest)
      : module_(std::move(module)), path_(std::move(path)), manifest_(std::move(manifest)) {
    module_.eval();
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) check_storage(p.name, p.value);
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) check_storage(b.name, b.value);
    // A parameter several modules share (tied weights) is one TensorImpl under several
    // names: one entry of θ under its first name; setting it sets every name.
    std::map<const c10::TensorImpl*, std::string> first_name;
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) {
      const auto [it, fresh] = first_name.emplace(p.value.unsafeGetTensorImpl(), p.name);
      if (!fresh) {
        aliases_[it->second].push_back(p.name);
        continue;
      }
      names_.push_back(p.name);
      saved_trainable_[p.name] = p.value.requires_grad();
    }
    if (manifest_.has_trainable) {  // the manifest's list wins over the saved flags (a trace may not keep them)
      for (auto& [name, on] : saved_trainable_) {
        on = std::find(manifest_.trainable.begin(), manifest_.trainable.end(), name) != manifest_.trainable.end();
      }
    }
    read_forward_arguments();
    if (manifest_.taps == "outputs") {
      layers_ = manifest_.layers;
      for (const auto& l : layers_) {
        for (const auto& name : {l.weight, l.bias}) {
          if (!name.empty() && !has_parameter(name)) {
            throw InputError(fmt::format("{}: export manifest layer '{}' names '{}', which is no parameter of the model",
                                         path_, l.name, name));
          }
        }
      }
    }
    // A plain torch.jit.script or torch.jit.trace of a model (no export manifest, no tap
    // attributes) gets the taps the exporter would have added.
    if (manifest_.version == 0 && !has_tap_attributes()) add_taps_to_plain_layers();
    for (const auto& sub : module_.named_modules()) {
      if (manifest_.taps != "attributes") break;
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
    if (!manifest_.loss.empty()) loss_hint_ = manifest_.loss;
  }

  std::string format() const override { return "torchscript"; }
  std::vector<std::string> parameter_names() const override { return names_; }

  at::Tensor parameter(const std::string& name) const override {
    const auto [owner, leaf] = split_last(name);
    return submodule(module_, owner).attr(leaf).toTensor();
  }

  std::vector<std::string> aliases(const std::string& name) const override {
    const auto it = aliases_.find(name);
    return it == aliases_.end() ? std::vector<std::string>{} : it->second;
  }

  void set_parameter(const std::string& name, const at::Tensor& value) override {
    set_attribute(name, value);
    for (const auto& alias : aliases(name)) set_attribute(alias, value);
  }

  bool saved_trainable(const std::string& name) const override {
    const auto it = saved_trainable_.find(name);
    return it != saved_trainable_.end() && it->second;
  }

  at::Tensor forward(const Inputs& inputs) override {
    for (auto& m : layer_modules_) {
      if (m.hasattr("fisheval_calls")) m.setattr("fisheval_calls", 0);
    }
    output_taps_.clear();
    c10::IValue out;
    try {
      out = call_forward(inputs);
    } catch (const InputError&) {
      throw;
    } catch (const std::exception& e) {  // c10::Error, or the interpreter's JITException
      throw InputError(fmt::format("{}: the model's forward failed on its inputs ({}): {}", path_, inputs.describe(),
                                   reason(e.what())));
    }
    if (manifest_.taps == "outputs") {
      const size_t expected = 1 + 2 * layers_.size();
      if (!out.isTuple() || out.toTupleRef().elements().size() != expected) {
        throw InputError(fmt::format("{}: forward must return (logits, then the input and output of each of the {} "
                                     "tapped layers), {} tensors; got {}",
                                     path_, layers_.size(), expected,
                                     out.isTuple() ? std::to_string(out.toTupleRef().elements().size()) + " values"
                                                   : std::string(out.tagKind())));
      }
      const auto& items = out.toTupleRef().elements();
      for (size_t l = 0; l < layers_.size(); ++l) {
        output_taps_.push_back(LayerTap{items[1 + 2 * l].toTensor(), items[2 + 2 * l].toTensor()});
      }
      return items[0].toTensor();
    }
    if (!out.isTensor()) {
      throw InputError(fmt::format("{}: forward must return one logits tensor, got {}", path_, out.tagKind()));
    }
    return out.toTensor();
  }

  const std::vector<LayerSpec>& layers() const override { return layers_; }

  std::vector<LayerTap> taps() const override {
    if (manifest_.taps == "outputs") return output_taps_.empty() ? std::vector<LayerTap>(layers_.size()) : output_taps_;
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
    const std::string wanted = dtype == at::kDouble ? "float64" : dtype == at::kFloat ? "float32" : "other";
    if (!manifest_.dtype.empty() && manifest_.dtype != wanted) {
      throw InputError(fmt::format("{} was traced in {} and runs in that dtype only (the trace keeps casts to it): "
                                   "evaluate it with --dtype {}, or export it in {} (peft_series.py --dtype, or the "
                                   "model's dtype when calling export_checkpoint)",
                                   path_, manifest_.dtype, manifest_.dtype, wanted));
    }
    // Only floating-point parameters and buffers change dtype; a shared parameter is
    // converted once and set under all its names (it stays one parameter).
    for (const auto& name : names_) {
      const auto p = parameter(name);
      if (p.is_floating_point()) set_parameter(name, p.detach().to(device, dtype).requires_grad_(p.requires_grad()));
    }
    for (const auto& b : module_.named_buffers(true)) {
      const auto [owner, leaf] = split_last(b.name);
      auto m = submodule(module_, owner);
      m.setattr(leaf, b.value.is_floating_point() ? b.value.to(device, dtype) : b.value.to(device));
    }
  }

  std::string loss_hint() const override { return loss_hint_; }
  bool exported_with_taps() const override {
    return manifest_.version > 0 ? manifest_.taps != "none" : !layers_.empty();
  }

 private:
  bool has_tap_attributes() const {
    for (const auto& sub : module_.named_modules()) {
      if (sub.value.hasattr("fisheval_kind")) return true;
    }
    return false;
  }

  // The layer kind of a plain PyTorch module that can be tapped, from its TorchScript class
  // (torch.nn.modules.linear.Linear, torch.nn.modules.conv.Conv2d with zero padding given
  // as numbers), or "" for any other.
  static std::string plain_layer_kind(const torch::jit::Module& m) {
    const auto cls = plain_class_name(m);
    if (cls == "torch.nn.modules.linear.Linear") return "linear";
    return cls == "torch.nn.modules.conv.Conv2d" && conv_geometry(m) ? "conv2d" : "";
  }

  struct ConvGeometry {
    std::vector<int64_t> stride, padding, dilation;
    int64_t groups = 1;
  };

  // A Conv2d's stride, padding, dilation and groups: class constants of a scripted module
  // (with padding_mode "zeros" and numeric padding), or, in a traced one, which keeps none
  // of them, the constant arguments of the one convolution of its forward graph, whose
  // input is the forward's own (so no padding operation comes first).
  static std::optional<ConvGeometry> conv_geometry(const torch::jit::Module& m) {
    if (const auto mode = attribute_or_constant(m, "padding_mode")) {
      if (!mode->isString() || mode->toStringRef() != "zeros") return std::nullopt;
      const auto stride = attribute_or_constant(m, "stride"), padding = attribute_or_constant(m, "padding"),
                 dilation = attribute_or_constant(m, "dilation"), groups = attribute_or_constant(m, "groups");
      if (!stride || !padding || !dilation || !groups || !groups->isInt()) return std::nullopt;
      const auto s = int_pair(*stride), p = int_pair(*padding), d = int_pair(*dilation);
      if (!s || !p || !d) return std::nullopt;
      return ConvGeometry{*s, *p, *d, groups->toInt()};
    }
    const auto method = m.find_method("forward");
    auto* fn = method ? dynamic_cast<torch::jit::GraphFunction*>(&method->function()) : nullptr;
    if (!fn) return std::nullopt;
    const auto graph = fn->graph();
    const torch::jit::Node* conv = nullptr;
    for (const auto* node : graph->nodes()) {
      const auto kind = node->kind().toQualString();
      if (std::string(kind) == "aten::_convolution" || std::string(kind) == "aten::conv2d") {
        if (conv) return std::nullopt;  // more than one
        conv = node;
      }
    }
    if (!conv || graph->inputs().size() != 2 || conv->input(0) != graph->inputs()[1]) return std::nullopt;
    const bool full = std::string(conv->kind().toQualString()) == "aten::_convolution";
    if (conv->inputs().size() < (full ? 9u : 7u)) return std::nullopt;
    // A constant argument; a traced list of constants is a prim::ListConstruct of them.
    const auto constant = [&](size_t i) -> std::optional<c10::IValue> {
      auto* v = conv->input(i);
      if (v->node()->kind() != c10::prim::ListConstruct) return torch::jit::toIValue(v);
      std::vector<int64_t> ints;
      for (auto* e : v->node()->inputs()) {
        const auto iv = torch::jit::toIValue(e);
        if (!iv || !iv->isInt()) return std::nullopt;
        ints.push_back(iv->toInt());
      }
      return c10::IValue(ints);
    };
    const auto s = constant(3), p = constant(4), d = constant(5), g = constant(full ? 8 : 6);
    if (!s || !p || !d || !g || !g->isInt()) return std::nullopt;
    if (full) {  // transposed = false
      const auto t = constant(6);
      if (!t || !t->isBool() || t->toBool()) return std::nullopt;
    }
    const auto ss = int_pair(*s), pp = int_pair(*p), dd = int_pair(*d);
    if (!ss || !pp || !dd) return std::nullopt;
    return ConvGeometry{*ss, *pp, *dd, g->toInt()};
  }

  // The class's qualified name without "__torch__." and TorchScript's "___torch_mangle_N." parts.
  static std::string plain_class_name(const torch::jit::Module& m) {
    const auto& type = m.type();
    if (!type || !type->name()) return "";
    std::string name = type->name()->qualifiedName(), out;
    size_t start = 0;
    while (start <= name.size()) {
      size_t end = name.find('.', start);
      if (end == std::string::npos) end = name.size();
      const auto part = name.substr(start, end - start);
      if (part != "__torch__" && part.rfind("___torch_mangle_", 0) != 0) out += (out.empty() ? "" : ".") + part;
      start = end + 1;
    }
    return out;
  }

  // A scripted module keeps nn.Conv2d's stride, padding, ... as class constants; a traced one as attributes.
  static std::optional<c10::IValue> attribute_or_constant(const torch::jit::Module& m, const std::string& name) {
    if (m.hasattr(name)) return m.attr(name);
    if (m.type()->hasConstant(name)) return m.type()->getConstant(name);
    return std::nullopt;
  }

  static std::optional<std::vector<int64_t>> int_pair(const c10::IValue& v) {
    std::vector<int64_t> out;
    if (v.isIntList()) {
      out = v.toIntVector();
    } else if (v.isTuple()) {
      for (const auto& e : v.toTupleRef().elements()) {
        if (!e.isInt()) return std::nullopt;
        out.push_back(e.toInt());
      }
    }
    if (out.size() != 2) return std::nullopt;
    return out;
  }

  // The activation module right after `name` in an nn.Sequential parent (as the exporter
  // finds it), else "identity". Only Fishy's local sampling reads it.
  std::string following_activation(const std::string& name) const {
    const auto [owner, leaf] = split_last(name);
    const auto parent = submodule(module_, owner);
    if (plain_class_name(parent) != "torch.nn.modules.container.Sequential") return "identity";
    bool next = false;
    for (const auto& child : parent.named_children()) {
      if (next) {
        static const std::map<std::string, std::string> kActivations{
            {"torch.nn.modules.activation.ReLU", "relu"},       {"torch.nn.modules.activation.Tanh", "tanh"},
            {"torch.nn.modules.activation.Sigmoid", "sigmoid"}, {"torch.nn.modules.activation.GELU", "gelu"},
            {"torch.nn.modules.activation.Softmax", "softmax"}, {"torch.nn.modules.linear.Identity", "identity"}};
        const auto it = kActivations.find(plain_class_name(child.value));
        return it == kActivations.end() ? "identity" : it->second;
      }
      next = child.name == leaf;
    }
    return "identity";
  }

  // The exporter's taps (scripts/export_checkpoint.py, TappedLinear / TappedConv2d) added
  // to the loaded module: each plain Linear and zero-padded Conv2d submodule gets the tap
  // attributes, and its compiled forward(self, x) -> y ends with
  //     self.fisheval_input = x;  self.fisheval_output = y;  self.fisheval_calls += 1
  // (the forward graph is extended before it ever runs). Submodules of one TorchScript
  // class share one forward: a class is extended once, and only when every instance of it
  // can be tapped (else its instances would lack the attributes the graph sets).
  void add_taps_to_plain_layers() {
    std::map<const c10::ClassType*, std::vector<std::pair<std::string, torch::jit::Module>>> by_class;
    std::map<const c10::ClassType*, bool> tappable;
    for (const auto& sub : module_.named_modules()) {
      const auto* cls = sub.value.type().get();
      by_class[cls].emplace_back(sub.name, sub.value);
      bool ok = !plain_layer_kind(sub.value).empty() && forward_maps_tensor(sub.value);
      for (const char* name : {"fisheval_activation", "fisheval_calls", "fisheval_input", "fisheval_output",
                               "fisheval_stride", "fisheval_padding", "fisheval_dilation", "fisheval_groups"}) {
        ok = ok && !sub.value.hasattr(name);  // names of its own: left as it is
      }
      const auto it = tappable.find(cls);
      tappable[cls] = ok && (it == tappable.end() || it->second);
    }
    for (auto& [cls, instances] : by_class) {
      if (!tappable[cls]) continue;
      for (auto& [name, m] : instances) {
        const auto kind = plain_layer_kind(m);
        m.register_attribute("fisheval_kind", c10::StringType::get(), kind);
        m.register_attribute("fisheval_activation", c10::StringType::get(), following_activation(name));
        m.register_attribute("fisheval_calls", c10::IntType::get(), int64_t{0});
        m.register_attribute("fisheval_input", c10::TensorType::get(), at::zeros({0}));
        m.register_attribute("fisheval_output", c10::TensorType::get(), at::zeros({0}));
        if (kind == "conv2d") {
          const auto c = *conv_geometry(m);
          m.register_attribute("fisheval_stride", c10::ListType::ofInts(), c10::List<int64_t>(c.stride));
          m.register_attribute("fisheval_padding", c10::ListType::ofInts(), c10::List<int64_t>(c.padding));
          m.register_attribute("fisheval_dilation", c10::ListType::ofInts(), c10::List<int64_t>(c.dilation));
          m.register_attribute("fisheval_groups", c10::IntType::get(), c.groups);
        }
      }
      auto graph = torch::jit::toGraphFunction(instances.front().second.get_method("forward").function()).graph();
      torch::jit::WithInsertPoint at_return(graph->return_node());
      auto* self = graph->inputs()[0];
      graph->insertNode(graph->createSetAttr(self, "fisheval_input", graph->inputs()[1]));
      graph->insertNode(graph->createSetAttr(self, "fisheval_output", graph->outputs()[0]));
      auto* calls = graph->insertGetAttr(self, "fisheval_calls");
      auto* one = graph->insertConstant(int64_t{1});
      graph->insertNode(graph->createSetAttr(self, "fisheval_calls", graph->insert(c10::aten::add, {calls, one})));
    }
  }

  // forward(self, x: Tensor) -> Tensor, as compiled.
  static bool forward_maps_tensor(const torch::jit::Module& m) {
    const auto method = m.find_method("forward");
    if (!method) return false;
    auto* fn = dynamic_cast<torch::jit::GraphFunction*>(&method->function());
    if (!fn) return false;
    const auto graph = fn->graph();
    return graph->inputs().size() == 2 && graph->outputs().size() == 1 &&
           graph->inputs()[1]->type()->kind() == c10::TypeKind::TensorType &&
           graph->outputs()[0]->type()->kind() == c10::TypeKind::TensorType;
  }

  bool has_parameter(const std::string& name) const {
    if (std::find(names_.begin(), names_.end(), name) != names_.end()) return true;
    for (const auto& [first, others] : aliases_) {
      if (std::find(others.begin(), others.end(), name) != others.end()) return true;
    }
    return false;
  }

  // forward's arguments after self: their names, and which have no default.
  void read_forward_arguments() {
    const auto& schema = module_.get_method("forward").function().getSchema();
    for (size_t i = 1; i < schema.arguments().size(); ++i) {
      const auto& arg = schema.arguments()[i];
      forward_args_.push_back(arg.name());
      if (!arg.default_value()) required_args_.push_back(arg.name());
    }
  }

  // One unnamed input goes first, positionally; named inputs go by name, each an argument
  // of forward, every argument without a default given.
  c10::IValue call_forward(const Inputs& inputs) {
    if (inputs.is_single()) return module_.forward({inputs.get()});
    torch::jit::Kwargs kwargs;
    for (size_t i = 0; i < inputs.count(); ++i) {
      const auto& name = inputs.names()[i];
      if (std::find(forward_args_.begin(), forward_args_.end(), name) == forward_args_.end()) {
        throw InputError(fmt::format("{}: the data's input '{}' is no argument of the model's forward({})", path_, name,
                                     fmt::join(forward_args_, ", ")));
      }
      kwargs.emplace(name, inputs.values()[i]);
    }
    for (const auto& name : required_args_) {
      if (!kwargs.count(name)) {
        throw InputError(fmt::format("{}: the model's forward({}) needs '{}', which the data does not have (its "
                                     "inputs: {})",
                                     path_, fmt::join(forward_args_, ", "), name, fmt::join(inputs.names(), ", ")));
      }
    }
    return module_.get_method("forward")(std::vector<c10::IValue>{}, kwargs);
  }

  void set_attribute(const std::string& name, const at::Tensor& value) {
    const auto [owner, leaf] = split_last(name);
    auto m = submodule(module_, owner);
    m.setattr(leaf, value);
  }

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
  std::map<std::string, std::vector<std::string>> aliases_;  // first name -> the other names
  std::vector<LayerSpec> layers_;
  std::vector<torch::jit::Module> layer_modules_;
  std::string loss_hint_;
  ExportManifest manifest_;
  std::vector<std::string> forward_args_, required_args_;
  std::vector<LayerTap> output_taps_;  // taps "outputs": from the last forward
};

// Process-wide LibTorch settings that make a TorchScript model differentiable the ways
// fisheval needs (forward mode, and the second-order "double backward" JVPs):
// * the graph executor's optimisation off: with it, forward-mode tangents set on
//   parameter attributes did not reach the output;
// * attention by PyTorch's math kernel: the fused scaled-dot-product-attention kernels
//   (flash, memory-efficient, cuDNN) have neither forward-mode nor second derivatives
//   ("derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not
//   implemented"); the math kernel computes the same function with ordinary operations.
void configure_for_autodiff() {
  torch::jit::setGraphExecutorOptimize(false);
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(false);
  ctx.setSDPUseMemEfficient(false);
  ctx.setSDPUseCuDNN(false);
  ctx.setSDPUseFA3(false);
  ctx.setSDPUseFA4(false);
  ctx.setSDPUseMath(true);
}

}  // namespace

std::unique_ptr<Model> load_torchscript_model(const std::string& path) {
  configure_for_autodiff();
  // LibTorch reports a malformed archive with c10::Error, and from its TorchScript parser
  // and unpickler with other std::exception types (torch::jit::ErrorReport,
  // std::runtime_error): all of them are bad input here.
  const auto refuse = [&](const std::string& what) {
    return InputError(fmt::format("cannot load TorchScript checkpoint '{}': {}", path, what.substr(0, what.find('\n'))));
  };
  check_checkpoint_archive(path);  // before LibTorch's zip reader and unpickler see it
  torch::jit::Module module;
  torch::jit::ExtraFilesMap extra{{"fisheval.json", ""}};
  try {
    // Without the debug files (code/*.debug_pkl, the source ranges of error messages):
    // LibTorch 2.15 reads their structure unchecked, and a damaged one made the parser's
    // error report read a wild pointer (SIGSEGV, found by fuzz_torchscript).
    module = torch::jit::load(path, torch::kCPU, extra, /*load_debug_files=*/false);
  } catch (const std::exception& e) {
    throw refuse(e.what());
  }
  if (!module.find_method("forward")) {
    throw InputError(fmt::format("TorchScript checkpoint '{}' has no forward method", path));
  }
  ExportManifest manifest;
  if (!extra["fisheval.json"].empty()) manifest = parse_export_manifest(extra["fisheval.json"], path);
  try {  // reads the tap attributes, whose types a malformed archive may get wrong
    return std::make_unique<TorchScriptModel>(std::move(module), path, std::move(manifest));
  } catch (const c10::Error& e) {
    throw refuse(e.what());
  }
}

}  // namespace fisheval
