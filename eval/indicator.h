// The approximation-quality indicator of Wu et al. (the paper's Eq. 15),
//   γ(d) = sqrt(dᵀ F d) / |dᵀ g|,
// invariant to the scale of d and minimal for the exact natural gradient, and the
// measures reported beside it.
#pragma once
#include <ATen/core/Tensor.h>

namespace fisheval {

struct IndicatorValues {
  double gamma = 0;        // sqrt(dᵀFd)/|dᵀg| (NaN when dᵀg = 0 or dᵀFd is not finite)
  double d_fisher_d = 0;   // dᵀFd
  double d_dot_g = 0;      // dᵀg
  double update_norm = 0;  // ‖d‖
  double cosine = 0;       // cos(d, g)
};

// `d_fisher_d` is dᵀFd computed by the caller (one JVP); negative rounding noise is
// clamped to 0.
IndicatorValues indicator(const at::Tensor& d, const at::Tensor& g, double d_fisher_d);
// The same from the products dᵀg, ‖d‖², ‖g‖ and dᵀFd (directions known by their weights).
IndicatorValues indicator(double d_dot_g, double d_norm_sq, double g_norm, double d_fisher_d);

// Per-batch statistics (docs/DEFINITIONS.md): the gradient-norm imbalance max_n‖v_n‖/min_n‖v_n‖
// of per-sample parameter gradients and of logit gradients.
double imbalance(const at::Tensor& norms);

}  // namespace fisheval
