#include "mvp/fisher.h"

#include <torch/torch.h>

namespace fisheval::mvp {

at::Tensor Fisher::mv(const at::Tensor& v) {
  const auto jv = lin_.jvp(v);
  return lin_.vjp(loss_.hessian_vp(lin_.logits(), targets_, jv));
}

double Fisher::quad(const at::Tensor& d) {
  const auto jd = lin_.jvp(d);
  return (jd * loss_.hessian_vp(lin_.logits(), targets_, jd)).sum().item<double>();
}

at::Tensor Fisher::quad_many(const at::Tensor& D) {
  auto out = torch::empty({D.size(0)}, torch::kDouble);
  for (int64_t k = 0; k < D.size(0); ++k) out[k] = quad(D[k]);
  return out;
}

}  // namespace fisheval::mvp
