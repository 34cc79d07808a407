#include "solvers/cg.h"

#include <torch/torch.h>

namespace fisheval::solvers {

CgResult conjugate_gradient(const std::function<at::Tensor(const at::Tensor&)>& apply, const at::Tensor& b,
                            const CgOptions& options) {
  CgResult out;
  out.x = torch::zeros_like(b);
  const double b_norm = b.norm().item<double>();
  out.history.push_back(1.0);
  if (b_norm == 0) {
    out.converged = true;
    out.relative_residual = 0;
    return out;
  }
  auto r = b.clone();
  auto p = r.clone();
  double rr = r.dot(r).item<double>();
  for (int64_t k = 0; k < options.max_iter; ++k) {
    const auto Ap = apply(p);
    const double pAp = p.dot(Ap).item<double>();
    if (!(pAp > 0)) break;  // zero curvature along p (singular, or converged to rounding)
    const double alpha = rr / pAp;
    out.x.add_(p, alpha);
    r.sub_(Ap, alpha);
    const double rr_new = r.dot(r).item<double>();
    out.iterations = k + 1;
    out.relative_residual = std::sqrt(rr_new) / b_norm;
    out.history.push_back(out.relative_residual);
    if (out.relative_residual <= options.rtol) {
      out.converged = true;
      break;
    }
    p = r + (rr_new / rr) * p;
    rr = rr_new;
  }
  if (out.iterations == 0) out.relative_residual = 1.0;
  return out;
}

}  // namespace fisheval::solvers
