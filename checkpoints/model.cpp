#include "checkpoints/model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>
#include <torch/torch.h>

#include "base/error.h"

namespace fisheval {
namespace {

std::vector<std::string> split_globs(const std::string& globs) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= globs.size()) {
    size_t end = globs.find(',', start);
    if (end == std::string::npos) end = globs.size();
    std::string item = globs.substr(start, end - start);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

}  // namespace

std::vector<std::string> select_parameters(const Model& model, const std::string& globs) {
  std::vector<std::string> selected;
  const auto patterns = split_globs(globs);
  for (const auto& name : model.parameter_names()) {
    bool keep = false;
    if (patterns.empty()) {
      keep = model.saved_trainable(name);
    } else {
      auto names = model.aliases(name);
      names.push_back(name);
      for (const auto& pattern : patterns) {
        for (const auto& n : names) keep = keep || fnmatch(pattern.c_str(), n.c_str(), 0) == 0;
      }
    }
    if (keep) selected.push_back(name);
  }
  if (selected.empty()) {
    throw InputError(patterns.empty()
                         ? "the checkpoint has no trainable parameters (none saved with "
                           "requires_grad); choose some with --params GLOB"
                         : fmt::format("--params '{}' matches no parameter of the model", globs));
  }
  return selected;
}

void set_trainable(Model& model, const std::vector<std::string>& selected) {
  for (const auto& name : model.parameter_names()) {
    const bool on = std::find(selected.begin(), selected.end(), name) != selected.end();
    auto p = model.parameter(name);
    if (p.requires_grad() != on) p.requires_grad_(on);
  }
}

int64_t count_parameters(const Model& model, const std::vector<std::string>& selected) {
  int64_t total = 0;
  for (const auto& name : selected) total += model.parameter(name).numel();
  return total;
}

void check_finite_parameters(const Model& model, const std::vector<std::string>& selected) {
  for (const auto& name : selected) {
    const auto p = model.parameter(name);
    if (!torch::isfinite(p.detach()).all().item<bool>()) {
      throw InputError(fmt::format("parameter '{}' contains NaN or infinite values", name));
    }
  }
}

std::string describe_parameters(const Model& model, const std::vector<std::string>& selected) {
  // Names are module paths and attribute names (identifiers and dots): no JSON escaping needed.
  std::vector<std::string> items;
  for (const auto& name : selected) {
    const auto aliases = model.aliases(name);
    std::string item = fmt::format("{{\"name\": \"{}\", \"shape\": [{}]", name,
                                   fmt::join(model.parameter(name).sizes(), ", "));
    if (!aliases.empty()) item += fmt::format(", \"aliases\": [\"{}\"]", fmt::join(aliases, "\", \""));
    items.push_back(item + "}");
  }
  return "[" + fmt::format("{}", fmt::join(items, ", ")) + "]";
}

}  // namespace fisheval
