// The NativeModel base (ordered parameter map, layers with taps) and native
// checkpoints (a pickled dict, see native_model.h).
#include "checkpoints/native_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/atomic_file.h"
#include "checkpoints/archive_check.h"
#include "base/error.h"
#include "checkpoints/models/builtin.h"

namespace fisheval {
namespace {

constexpr const char* kFormatTag = "fisheval-native";
constexpr int64_t kFormatVersion = 1;

// Visits every field of a ModelConfig with its name (the checkpoint's config keys).
template <class Config, class Visit>
void for_each_field(Config& c, Visit&& visit) {
  visit("model", c.model);
  visit("input_shape", c.input_shape);
  visit("num_classes", c.num_classes);
  visit("activation", c.activation);
  visit("widths", c.widths);
  visit("channels", c.channels);
  visit("hidden", c.hidden);
  visit("patch", c.patch);
  visit("dim", c.dim);
  visit("depth", c.depth);
  visit("heads", c.heads);
  visit("mlp_dim", c.mlp_dim);
  visit("lora_rank", c.lora_rank);
  visit("lora_alpha", c.lora_alpha);
  visit("lora_targets", c.lora_targets);
}

struct ToIValue {
  c10::impl::GenericDict& dict;
  void operator()(const char* key, const std::string& v) const { dict.insert(key, v); }
  void operator()(const char* key, int64_t v) const { dict.insert(key, v); }
  void operator()(const char* key, double v) const { dict.insert(key, v); }
  void operator()(const char* key, const std::vector<int64_t>& v) const { dict.insert(key, c10::List<int64_t>(v)); }
};

std::string describe(const c10::IValue& v) { return v.tagKind(); }

struct FromIValue {
  const c10::impl::GenericDict& dict;
  const std::string& path;
  const c10::IValue* find(const char* key) const {
    const auto it = dict.find(key);
    return it == dict.end() ? nullptr : &it->value();
  }
  [[noreturn]] void bad(const char* key, const c10::IValue& v, const char* want) const {
    throw InputError(fmt::format("native checkpoint '{}': config field '{}' should be {}, found {}", path, key, want,
                                 describe(v)));
  }
  void operator()(const char* key, std::string& out) const {
    if (const auto* v = find(key)) {
      if (!v->isString()) bad(key, *v, "a string");
      out = v->toStringRef();
    }
  }
  void operator()(const char* key, int64_t& out) const {
    if (const auto* v = find(key)) {
      if (!v->isInt()) bad(key, *v, "an integer");
      out = v->toInt();
    }
  }
  void operator()(const char* key, double& out) const {
    if (const auto* v = find(key)) {
      if (!v->isDouble() && !v->isInt()) bad(key, *v, "a number");
      out = v->isDouble() ? v->toDouble() : static_cast<double>(v->toInt());
    }
  }
  void operator()(const char* key, std::vector<int64_t>& out) const {
    if (const auto* v = find(key)) {
      if (!v->isIntList()) bad(key, *v, "a list of integers");
      out = v->toIntVector();
    }
  }
};

const c10::IValue& entry(const c10::impl::GenericDict& dict, const std::string& key, const std::string& path) {
  const auto it = dict.find(key);
  if (it == dict.end()) throw InputError(fmt::format("native checkpoint '{}' has no '{}' entry", path, key));
  return it->value();
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("cannot open checkpoint '{}': {}", path, std::strerror(errno)));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool positive(const std::vector<int64_t>& v) {
  return std::all_of(v.begin(), v.end(), [](int64_t x) { return x > 0; });
}

}  // namespace

std::vector<std::string> builtin_model_names() { return {"mlp", "autoencoder", "cnn", "vit", "vit-lora"}; }

void validate_config(const ModelConfig& c) {
  const auto names = builtin_model_names();
  if (std::find(names.begin(), names.end(), c.model) == names.end()) {
    throw InputError(fmt::format("unknown model '{}' (built-in models: {})", c.model, fmt::join(names, ", ")));
  }
  if (c.input_shape.size() != 3 || !positive(c.input_shape)) {
    throw InputError("input_shape must be three positive sizes (channels, height, width)");
  }
  if (c.num_classes < 2) throw InputError("num_classes must be at least 2");
  if (c.activation != "tanh" && c.activation != "relu" && c.activation != "gelu") {
    throw InputError(fmt::format("unknown activation '{}' (tanh, relu, gelu)", c.activation));
  }
  if (c.model == "mlp" && !positive(c.widths)) throw InputError("mlp widths must be positive");
  if (c.model == "autoencoder" && (c.widths.empty() || !positive(c.widths))) {
    throw InputError("autoencoder widths must be at least one positive width");
  }
  if (c.model == "cnn" && (c.channels.empty() || !positive(c.channels) || c.hidden < 1)) {
    throw InputError("cnn needs at least one positive channel count and a positive hidden width");
  }
  if (c.model == "vit" || c.model == "vit-lora") {
    if (c.patch < 1 || c.input_shape[1] % c.patch != 0 || c.input_shape[2] % c.patch != 0) {
      throw InputError(fmt::format("vit: patch size {} must divide the image size {}x{}", c.patch, c.input_shape[1],
                                   c.input_shape[2]));
    }
    if (c.dim < 1 || c.depth < 1 || c.heads < 1 || c.mlp_dim < 1 || c.dim % c.heads != 0) {
      throw InputError(fmt::format("vit: dim ({}) must be a positive multiple of heads ({}); depth and mlp_dim "
                                   "positive",
                                   c.dim, c.heads));
    }
  }
  if (c.model == "vit-lora") {
    if (c.lora_rank < 1 || !(c.lora_alpha > 0)) throw InputError("vit-lora: lora_rank ≥ 1 and lora_alpha > 0 needed");
    if (lora_target_list(c.lora_targets).empty()) throw InputError("vit-lora: lora_targets names no projection");
  }
}

std::string describe_config(const ModelConfig& c) {
  if (c.model == "mlp") {
    return fmt::format("mlp {}-{}-{} ({})", c.input_shape[0] * c.input_shape[1] * c.input_shape[2],
                       fmt::join(c.widths, "-"), c.num_classes, c.activation);
  }
  if (c.model == "autoencoder") {
    const int64_t D = c.input_shape[0] * c.input_shape[1] * c.input_shape[2];
    return fmt::format("autoencoder {}-{}-{} ({}, linear code layer, Bernoulli outputs)", D, fmt::join(c.widths, "-"),
                       D, c.activation);
  }
  if (c.model == "cnn") {
    return fmt::format("cnn conv {} (3x3 stride 2) fc {} ({})", fmt::join(c.channels, "-"), c.hidden, c.activation);
  }
  std::string s = fmt::format("{} patch {} dim {} depth {} heads {} mlp {}", c.model, c.patch, c.dim, c.depth, c.heads,
                              c.mlp_dim);
  if (c.model == "vit-lora") s += fmt::format(" lora r={} alpha={:g} on {}", c.lora_rank, c.lora_alpha, c.lora_targets);
  return s;
}

// ---- NativeModel ----------------------------------------------------------------

NativeModel::NativeModel(ModelConfig config) : config_(std::move(config)) {}
NativeModel::~NativeModel() = default;

at::Tensor NativeModel::parameter(const std::string& name) const { return param(name); }

const at::Tensor& NativeModel::param(const std::string& name) const {
  const auto it = params_.find(name);
  if (it == params_.end()) throw Error(fmt::format("model {} has no parameter '{}'", format(), name));
  return it->second;
}

void NativeModel::set_parameter(const std::string& name, const at::Tensor& value) {
  auto it = params_.find(name);
  if (it == params_.end()) throw Error(fmt::format("model {} has no parameter '{}'", format(), name));
  if (value.sizes() != it->second.sizes()) {
    throw Error(fmt::format("parameter '{}' has shape {}, not {}", name, fmt::join(it->second.sizes(), "x"),
                            fmt::join(value.sizes(), "x")));
  }
  it->second = value;
}

bool NativeModel::saved_trainable(const std::string& name) const { return trainable_.count(name) > 0; }

std::vector<std::string> NativeModel::trainable_names() const {
  std::vector<std::string> out;
  for (const auto& n : names_) {
    if (trainable_.count(n)) out.push_back(n);
  }
  return out;
}

void NativeModel::set_saved_trainable(const std::vector<std::string>& names) {
  trainable_.clear();
  for (const auto& n : names) {
    if (!params_.count(n)) throw InputError(fmt::format("model {} has no parameter '{}'", format(), n));
    trainable_.insert(n);
  }
}

void NativeModel::add_parameter(const std::string& name, const at::Tensor& value, bool trainable) {
  if (params_.count(name)) throw Error(fmt::format("parameter '{}' declared twice", name));
  names_.push_back(name);
  params_[name] = value;
  if (trainable) trainable_.insert(name);
}

size_t NativeModel::add_linear(const std::string& name, int64_t in, int64_t out, bool bias,
                               const std::string& activation, bool trainable, at::Generator& generator) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  add_parameter(name + ".weight", torch::empty({out, in}).uniform_(-bound, bound, generator), trainable);
  if (bias) add_parameter(name + ".bias", torch::empty({out}).uniform_(-bound, bound, generator), trainable);
  LayerSpec spec;
  spec.name = name;
  spec.kind = LayerKind::kLinear;
  spec.weight = name + ".weight";
  spec.bias = bias ? name + ".bias" : "";
  spec.activation = activation;
  layers_.push_back(spec);
  taps_.emplace_back();
  calls_.push_back(0);
  return layers_.size() - 1;
}

size_t NativeModel::add_conv2d(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                               int64_t padding, const std::string& activation, bool trainable,
                               at::Generator& generator) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kernel * kernel));
  add_parameter(name + ".weight", torch::empty({out, in, kernel, kernel}).uniform_(-bound, bound, generator),
                trainable);
  add_parameter(name + ".bias", torch::empty({out}).uniform_(-bound, bound, generator), trainable);
  LayerSpec spec;
  spec.name = name;
  spec.kind = LayerKind::kConv2d;
  spec.weight = name + ".weight";
  spec.bias = name + ".bias";
  spec.stride = {stride, stride};
  spec.padding = {padding, padding};
  spec.dilation = {1, 1};
  spec.groups = 1;
  spec.activation = activation;
  layers_.push_back(spec);
  taps_.emplace_back();
  calls_.push_back(0);
  return layers_.size() - 1;
}

at::Tensor NativeModel::linear(size_t l, const at::Tensor& x) {
  const auto& spec = layers_[l];
  const auto y = torch::nn::functional::linear(x, param(spec.weight), spec.bias.empty() ? at::Tensor() : param(spec.bias));
  taps_[l] = LayerTap{x, y};
  ++calls_[l];
  return y;
}

at::Tensor NativeModel::conv2d(size_t l, const at::Tensor& x) {
  const auto& spec = layers_[l];
  const auto y = torch::conv2d(x, param(spec.weight), param(spec.bias), spec.stride, spec.padding, spec.dilation,
                               spec.groups);
  taps_[l] = LayerTap{x, y};
  ++calls_[l];
  return y;
}

at::Tensor NativeModel::forward(const Inputs& batch) {
  if (!batch.is_single()) {
    throw InputError(fmt::format("model {} takes one input tensor, the data has {}", format(), batch.describe()));
  }
  const auto& inputs = batch.get();
  const auto& shape = config_.input_shape;
  bool ok = inputs.dim() == static_cast<int64_t>(shape.size()) + 1 && inputs.is_floating_point();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = inputs.size(static_cast<int64_t>(i) + 1) == shape[i];
  if (!ok) {
    throw InputError(fmt::format("model {} expects floating inputs [N, {}], got {} of shape [{}]", format(),
                                 fmt::join(shape, ", "), c10::toString(inputs.scalar_type()),
                                 fmt::join(inputs.sizes(), ", ")));
  }
  std::fill(taps_.begin(), taps_.end(), LayerTap{});
  std::fill(calls_.begin(), calls_.end(), 0);
  return forward_impl(inputs);
}

std::vector<LayerTap> NativeModel::taps() const {
  std::vector<LayerTap> out(taps_.size());
  for (size_t l = 0; l < taps_.size(); ++l) {
    if (calls_[l] == 1) out[l] = taps_[l];
  }
  return out;
}

void NativeModel::to(c10::Device device, c10::ScalarType dtype) {
  for (auto& [name, p] : params_) {
    const bool rg = p.requires_grad();
    p = p.detach().to(device, dtype).requires_grad_(rg);
  }
  std::fill(taps_.begin(), taps_.end(), LayerTap{});
}

// ---- checkpoints ------------------------------------------------------------------

std::unique_ptr<NativeModel> make_builtin_model(const ModelConfig& config, uint64_t seed) {
  validate_config(config);
  auto generator = at::detail::createCPUGenerator(seed);
  if (config.model == "mlp") return make_mlp(config, generator);
  if (config.model == "autoencoder") return make_autoencoder(config, generator);
  if (config.model == "cnn") return make_cnn(config, generator);
  return make_vit(config, generator);
}

void save_native_checkpoint(const NativeModel& model, const std::string& path, const NativeCheckpointInfo& info) {
  c10::impl::GenericDict root(c10::StringType::get(), c10::AnyType::get());
  c10::impl::GenericDict config(c10::StringType::get(), c10::AnyType::get());
  for_each_field(model.config(), ToIValue{config});
  c10::impl::GenericDict state(c10::StringType::get(), c10::TensorType::get());
  for (const auto& name : model.parameter_names()) {
    state.insert(name, model.parameter(name).detach().to(torch::kCPU).contiguous().clone());
  }
  c10::List<std::string> trainable;
  for (const auto& name : model.trainable_names()) trainable.push_back(name);
  c10::impl::GenericDict metrics(c10::StringType::get(), c10::FloatType::get());
  for (const auto& [k, v] : info.metrics) metrics.insert(k, v);
  c10::impl::GenericDict notes(c10::StringType::get(), c10::StringType::get());
  for (const auto& [k, v] : info.notes) notes.insert(k, v);

  root.insert("format", std::string(kFormatTag));
  root.insert("version", kFormatVersion);
  root.insert("model", model.config().model);
  root.insert("config", config);
  root.insert("state", state);
  root.insert("trainable", trainable);
  root.insert("loss", info.loss);
  root.insert("step", info.step);
  root.insert("epoch", info.epoch);
  root.insert("metrics", metrics);
  root.insert("notes", notes);

  const auto bytes = torch::pickle_save(root);
  write_file_atomically(path, std::string_view(bytes.data(), bytes.size()));
}

std::unique_ptr<NativeModel> load_native_checkpoint(const std::string& path, NativeCheckpointInfo* info) {
  const auto bytes = read_bytes(path);
  check_checkpoint_archive(path);  // before LibTorch's zip reader and unpickler see it
  c10::IValue root_value;
  try {
    root_value = torch::pickle_load(bytes);
  } catch (const std::exception&) {  // c10::Error, and the type parser's torch::jit::ErrorReport (fuzz_torchscript)
    throw InputError(fmt::format("cannot load checkpoint '{}': neither a TorchScript archive nor a native fisheval "
                                 "checkpoint (export PyTorch models with scripts/export_checkpoint.py)",
                                 path));
  }
  if (!root_value.isGenericDict()) {
    throw InputError(fmt::format("'{}' holds a pickled {}, not a native fisheval checkpoint (a dict)", path,
                                 root_value.tagKind()));
  }
  const auto root = root_value.toGenericDict();
  if (root.find("format") == root.end()) {
    throw InputError(fmt::format("'{}' is a pickled dict without a 'format' entry, not a native fisheval checkpoint "
                                 "(export PyTorch models with scripts/export_checkpoint.py)",
                                 path));
  }
  const auto& tag = entry(root, "format", path);
  if (!tag.isString() || tag.toStringRef() != kFormatTag) {
    throw InputError(fmt::format("'{}' is a pickled dict without format '{}': not a native fisheval checkpoint", path,
                                 kFormatTag));
  }
  const auto& version = entry(root, "version", path);
  if (!version.isInt() || version.toInt() > kFormatVersion) {
    throw InputError(fmt::format("native checkpoint '{}' has a newer format version than this fisheval ({})", path,
                                 kFormatVersion));
  }
  const auto& config_value = entry(root, "config", path);
  if (!config_value.isGenericDict()) throw InputError(fmt::format("native checkpoint '{}': config is not a dict", path));
  ModelConfig config;
  for_each_field(config, FromIValue{config_value.toGenericDict(), path});
  const auto& model_name = entry(root, "model", path);
  if (!model_name.isString() || model_name.toStringRef() != config.model) {
    throw InputError(fmt::format("native checkpoint '{}': 'model' does not match config.model", path));
  }
  std::unique_ptr<NativeModel> model;
  try {
    model = make_builtin_model(config, 0);
  } catch (const InputError& e) {
    throw InputError(fmt::format("native checkpoint '{}': {}", path, e.what()));
  }

  const auto& state_value = entry(root, "state", path);
  if (!state_value.isGenericDict()) throw InputError(fmt::format("native checkpoint '{}': state is not a dict", path));
  const auto state = state_value.toGenericDict();
  if (static_cast<size_t>(state.size()) != model->parameter_names().size()) {
    throw InputError(fmt::format("native checkpoint '{}': state has {} tensors, the {} model has {} parameters", path,
                                 state.size(), config.model, model->parameter_names().size()));
  }
  for (const auto& name : model->parameter_names()) {
    const auto it = state.find(name);
    if (it == state.end() || !it->value().isTensor()) {
      throw InputError(fmt::format("native checkpoint '{}': parameter '{}' is missing from state", path, name));
    }
    const auto t = it->value().toTensor();
    const auto want = model->parameter(name);
    if (t.sizes() != want.sizes() || !t.is_floating_point()) {
      throw InputError(fmt::format("native checkpoint '{}': parameter '{}' has shape [{}], the config needs [{}]",
                                   path, name, fmt::join(t.sizes(), ", "), fmt::join(want.sizes(), ", ")));
    }
    model->set_parameter(name, t.detach());
  }
  const auto& trainable_value = entry(root, "trainable", path);
  if (!trainable_value.isList()) throw InputError(fmt::format("native checkpoint '{}': trainable is not a list", path));
  std::vector<std::string> trainable;
  for (const auto& v : trainable_value.toListRef()) {
    if (!v.isString()) throw InputError(fmt::format("native checkpoint '{}': trainable lists a non-string", path));
    trainable.push_back(v.toStringRef());
  }
  model->set_saved_trainable(trainable);

  if (info) {
    *info = NativeCheckpointInfo{};
    const auto get = [&](const char* key) -> const c10::IValue* {
      const auto it = root.find(key);
      return it == root.end() ? nullptr : &it->value();
    };
    if (const auto* v = get("loss"); v && v->isString()) info->loss = v->toStringRef();
    if (const auto* v = get("step"); v && v->isInt()) info->step = v->toInt();
    if (const auto* v = get("epoch"); v && (v->isDouble() || v->isInt())) {
      info->epoch = v->isDouble() ? v->toDouble() : static_cast<double>(v->toInt());
    }
    if (const auto* v = get("metrics"); v && v->isGenericDict()) {
      for (const auto& kv : v->toGenericDict()) {
        if (kv.key().isString() && kv.value().isDouble()) info->metrics[kv.key().toStringRef()] = kv.value().toDouble();
      }
    }
    if (const auto* v = get("notes"); v && v->isGenericDict()) {
      for (const auto& kv : v->toGenericDict()) {
        if (kv.key().isString() && kv.value().isString()) {
          info->notes[kv.key().toStringRef()] = kv.value().toStringRef();
        }
      }
    }
  }
  return model;
}

std::unique_ptr<Model> load_native_model(const std::string& path) { return load_native_checkpoint(path); }

}  // namespace fisheval
