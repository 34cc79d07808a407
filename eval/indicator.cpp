#include "eval/indicator.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace fisheval {

IndicatorValues indicator(const at::Tensor& d, const at::Tensor& g, double d_fisher_d) {
  const auto d64 = d.to(torch::kDouble), g64 = g.to(torch::kDouble);
  const double dn = d64.norm().item<double>();
  return indicator(d64.dot(g64).item<double>(), dn * dn, g64.norm().item<double>(), d_fisher_d);
}

IndicatorValues indicator(double d_dot_g, double d_norm_sq, double g_norm, double d_fisher_d) {
  IndicatorValues v;
  v.d_fisher_d = d_fisher_d;
  v.d_dot_g = d_dot_g;
  v.update_norm = std::sqrt(std::max(d_norm_sq, 0.0));
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  v.cosine = v.update_norm > 0 && g_norm > 0 ? v.d_dot_g / (v.update_norm * g_norm) : nan;
  const double quad = std::isfinite(d_fisher_d) ? std::max(d_fisher_d, 0.0) : nan;
  v.gamma = std::abs(v.d_dot_g) > 0 ? std::sqrt(quad) / std::abs(v.d_dot_g) : nan;
  return v;
}

double imbalance(const at::Tensor& norms) {
  const auto n = norms.to(torch::kDouble);
  const double lo = n.min().item<double>(), hi = n.max().item<double>();
  return lo > 0 ? hi / lo : std::numeric_limits<double>::infinity();
}

}  // namespace fisheval
