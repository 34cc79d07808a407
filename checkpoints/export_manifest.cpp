#include "checkpoints/export_manifest.h"

#include <fmt/format.h>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <sstream>

#include "base/error.h"

namespace fisheval {
namespace {

namespace pt = boost::property_tree;

std::vector<std::string> strings(const pt::ptree& tree, const std::string& key) {
  std::vector<std::string> out;
  if (const auto node = tree.get_child_optional(key)) {
    for (const auto& item : *node) out.push_back(item.second.get_value<std::string>());
  }
  return out;
}

std::vector<int64_t> ints(const pt::ptree& tree, const std::string& key, std::vector<int64_t> fallback) {
  const auto node = tree.get_child_optional(key);
  if (!node) return fallback;
  std::vector<int64_t> out;
  for (const auto& item : *node) out.push_back(item.second.get_value<int64_t>());
  return out;
}

}  // namespace

ExportManifest parse_export_manifest(const std::string& text, const std::string& where) {
  ExportManifest m;
  try {
    pt::ptree tree;
    std::istringstream in(text);
    pt::read_json(in, tree);
    if (tree.get<std::string>("format", "") != "fisheval-torchscript") {
      throw InputError(fmt::format("{}: fisheval.json is not a fisheval export manifest", where));
    }
    m.version = tree.get<int>("version");
    if (m.version != 1) {
      throw InputError(fmt::format("{}: export manifest version {} is not supported (this fisheval reads version 1)",
                                   where, m.version));
    }
    m.loss = tree.get<std::string>("loss", "");
    m.inputs = strings(tree, "inputs");
    m.taps = tree.get<std::string>("taps", "attributes");
    if (m.taps != "outputs" && m.taps != "attributes" && m.taps != "none") {
      throw InputError(fmt::format("{}: export manifest taps '{}' (outputs, attributes or none)", where, m.taps));
    }
    if (const auto layers = tree.get_child_optional("layers")) {
      for (const auto& item : *layers) {
        const auto& l = item.second;
        LayerSpec spec;
        spec.name = l.get<std::string>("name");
        const auto kind = l.get<std::string>("kind");
        if (kind == "linear") {
          spec.kind = LayerKind::kLinear;
        } else if (kind == "conv2d") {
          spec.kind = LayerKind::kConv2d;
          spec.stride = ints(l, "stride", {1, 1});
          spec.padding = ints(l, "padding", {0, 0});
          spec.dilation = ints(l, "dilation", {1, 1});
          spec.groups = l.get<int64_t>("groups", 1);
          if (spec.stride.size() != 2 || spec.padding.size() != 2 || spec.dilation.size() != 2 || spec.groups < 1) {
            throw InputError(fmt::format("{}: layer '{}' has malformed convolution settings", where, spec.name));
          }
        } else {
          throw InputError(fmt::format("{}: layer '{}' has unknown kind '{}' (linear, conv2d)", where, spec.name, kind));
        }
        spec.weight = l.get<std::string>("weight");
        spec.bias = l.get<std::string>("bias", "");
        spec.activation = l.get<std::string>("activation", "identity");
        m.layers.push_back(spec);
      }
    }
    m.has_trainable = static_cast<bool>(tree.get_child_optional("trainable"));
    m.trainable = strings(tree, "trainable");
    m.readout = tree.get<std::string>("readout", "");
    m.dtype = tree.get<std::string>("dtype", "");
    if (!m.dtype.empty() && m.dtype != "float32" && m.dtype != "float64") {
      throw InputError(fmt::format("{}: export manifest dtype '{}' (float32 or float64)", where, m.dtype));
    }
  } catch (const pt::ptree_error& e) {
    throw InputError(fmt::format("{}: malformed export manifest fisheval.json: {}", where, e.what()));
  }
  return m;
}

}  // namespace fisheval
