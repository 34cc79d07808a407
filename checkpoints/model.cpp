#include "checkpoints/model.h"

#include <fmt/format.h>
#include <fnmatch.h>
#include <torch/torch.h>

#include "checkpoints/error.h"

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
      for (const auto& pattern : patterns) {
        if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) keep = true;
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

}  // namespace fisheval
