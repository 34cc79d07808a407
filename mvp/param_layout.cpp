#include "mvp/param_layout.h"

#include <torch/torch.h>

#include "checkpoints/model.h"

namespace fisheval::mvp {

ParamLayout::ParamLayout(const Model& model, std::vector<std::string> names) : names_(std::move(names)) {
  for (const auto& name : names_) {
    const auto p = model.parameter(name);
    shapes_.push_back(p.sizes().vec());
    offsets_.push_back(total_);
    numels_.push_back(p.numel());
    total_ += p.numel();
  }
}

int ParamLayout::index_of(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

at::Tensor ParamLayout::flatten(const std::vector<at::Tensor>& parts, int64_t lead_dims) const {
  std::vector<at::Tensor> flat;
  flat.reserve(parts.size());
  for (const auto& t : parts) {
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().begin() + lead_dims);
    shape.push_back(-1);
    flat.push_back(t.reshape(shape));
  }
  return torch::cat(flat, lead_dims);
}

std::vector<at::Tensor> ParamLayout::split(const at::Tensor& flat) const {
  std::vector<at::Tensor> out;
  out.reserve(names_.size());
  for (size_t i = 0; i < names_.size(); ++i) out.push_back(flat.narrow(0, offsets_[i], numels_[i]).view(shapes_[i]));
  return out;
}

}  // namespace fisheval::mvp
