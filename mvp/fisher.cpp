#include "mvp/fisher.h"

#include <torch/torch.h>

namespace fisheval::mvp {

at::Tensor Fisher::mv(const at::Tensor& v) {
  const auto jv = lin_.jvp(v);
  return lin_.vjp(loss_.hessian_vp(lin_.logits(), targets_, jv));
}

double Fisher::quad(const at::Tensor& d) { return quad_of_jvp(lin_.jvp(d).unsqueeze(0))[0].item<double>(); }

at::Tensor Fisher::quad_of_jvp(const at::Tensor& jd) {
  const auto hjd = loss_.hessian_vp(lin_.logits(), targets_, jd);
  return (jd * hjd).reshape({jd.size(0), -1}).sum(1).to(torch::kCPU, torch::kDouble);
}

}  // namespace fisheval::mvp
