#include "checkpoints/inputs.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "base/error.h"

namespace fisheval {

Inputs::Inputs(at::Tensor single) {
  if (single.defined()) {
    names_ = {kSingle};
    values_ = {std::move(single)};
  }
}

Inputs::Inputs(std::vector<std::string> names, std::vector<at::Tensor> values)
    : names_(std::move(names)), values_(std::move(values)) {
  if (names_.size() != values_.size() || names_.empty()) throw Error("internal: inputs need one name per tensor");
  for (size_t i = 0; i < values_.size(); ++i) {
    if (values_[i].dim() < 1 || values_[i].size(0) != values_[0].size(0)) {
      throw InputError(fmt::format("inputs must share their first dimension (the samples): {}", describe()));
    }
  }
}

const at::Tensor& Inputs::get(const std::string& name) const {
  if (values_.empty()) throw Error("internal: no inputs");
  if (name.empty()) return values_[0];
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return values_[i];
  }
  throw InputError(fmt::format("no input named '{}' (inputs: {})", name, fmt::join(names_, ", ")));
}

int64_t Inputs::batch_size() const { return values_.empty() ? 0 : values_[0].size(0); }

int64_t Inputs::size(int64_t dim) const {
  if (dim != 0) throw Error("internal: Inputs::size is the batch size, dim 0 only");
  return batch_size();
}

Inputs Inputs::narrow(int64_t dim, int64_t start, int64_t length) const {
  if (dim != 0) throw Error("internal: inputs are narrowed along the samples (dim 0)");
  std::vector<at::Tensor> out;
  for (const auto& v : values_) out.push_back(v.narrow(0, start, length));
  return {names_, std::move(out)};
}

Inputs Inputs::index_select(int64_t dim, const at::Tensor& index) const {
  if (dim != 0) throw Error("internal: inputs are indexed along the samples (dim 0)");
  std::vector<at::Tensor> out;
  for (const auto& v : values_) out.push_back(v.index_select(0, index.to(v.device())));
  return {names_, std::move(out)};
}

Inputs Inputs::to(c10::Device device, c10::ScalarType float_dtype) const {
  std::vector<at::Tensor> out;
  for (const auto& v : values_) out.push_back(v.is_floating_point() ? v.to(device, float_dtype) : v.to(device));
  return values_.empty() ? Inputs() : Inputs(names_, std::move(out));
}

Inputs Inputs::to(c10::Device device) const {
  std::vector<at::Tensor> out;
  for (const auto& v : values_) out.push_back(v.to(device));
  return values_.empty() ? Inputs() : Inputs(names_, std::move(out));
}

std::string Inputs::describe() const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < values_.size(); ++i) {
    parts.push_back(fmt::format("{} of shape {} ({})", names_[i], fmt::join(values_[i].sizes(), "x"),
                                c10::toString(values_[i].scalar_type())));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace fisheval
