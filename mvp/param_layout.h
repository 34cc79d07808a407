// θ as one flat vector: the selected parameters concatenated in model order.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace fisheval {
class Model;
}

namespace fisheval::mvp {

class ParamLayout {
 public:
  ParamLayout() = default;
  ParamLayout(const Model& model, std::vector<std::string> names);

  const std::vector<std::string>& names() const { return names_; }
  size_t count() const { return names_.size(); }
  int64_t size() const { return total_; }  // P
  int64_t offset(size_t i) const { return offsets_[i]; }
  int64_t numel(size_t i) const { return numels_[i]; }
  const std::vector<int64_t>& shape(size_t i) const { return shapes_[i]; }
  int index_of(const std::string& name) const;  // -1 when not selected

  // Concatenates per-parameter tensors (each with optional leading batch axes
  // `lead`, e.g. [N, *shape]) into [*lead, P].
  at::Tensor flatten(const std::vector<at::Tensor>& parts, int64_t lead_dims = 0) const;
  // Views of a flat [P] vector with the parameters' shapes.
  std::vector<at::Tensor> split(const at::Tensor& flat) const;

 private:
  std::vector<std::string> names_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<int64_t> offsets_, numels_;
  int64_t total_ = 0;
};

}  // namespace fisheval::mvp
