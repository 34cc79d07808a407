#include "solvers/cg.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

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

std::vector<CgResult> multi_shift_conjugate_gradient(const std::function<at::Tensor(const at::Tensor&)>& apply,
                                                     const at::Tensor& b, const std::vector<double>& shifts,
                                                     const CgOptions& options) {
  const size_t S = shifts.size();
  std::vector<CgResult> out(S);
  if (S == 0) return out;
  const double base = *std::min_element(shifts.begin(), shifts.end());
  const double b_norm = b.norm().item<double>();
  for (auto& o : out) {
    o.x = torch::zeros_like(b);
    o.history.push_back(1.0);
    o.relative_residual = 1.0;
  }
  if (b_norm == 0) {
    for (auto& o : out) o.converged = true, o.relative_residual = 0;
    return out;
  }
  // Base system (A + σ_min I): r, p, α, β as in conjugate_gradient. Shifted system s with
  // relative shift σ = σ_s − σ_min: residual ζ_s r, direction p_s, and
  //   ζ⁺ = ζ ζ⁻ α⁻ / (α β⁻ (ζ⁻ − ζ) + ζ⁻ α⁻ (1 + σ α)),   α_s = α ζ⁺/ζ,   β_s = β (ζ⁺/ζ)²,
  //   x_s += α_s p_s,   p_s = ζ⁺ r⁺ + β_s p_s,   with ζ = ζ⁻ = 1, α⁻ = 1, β⁻ = 0 at the start.
  auto r = b.clone();
  auto p = r.clone();
  double rr = r.dot(r).item<double>();
  std::vector<at::Tensor> ps(S);
  std::vector<double> zeta(S, 1.0), zeta_prev(S, 1.0), zeta_next(S, 1.0);
  for (size_t s = 0; s < S; ++s) ps[s] = b.clone();
  double alpha_prev = 1.0, beta_prev = 0.0;
  for (int64_t k = 0; k < options.max_iter; ++k) {
    const auto Ap = apply(p) + base * p;
    const double pAp = p.dot(Ap).item<double>();
    if (!(pAp > 0)) break;  // zero curvature along p (singular, or converged to rounding)
    const double alpha = rr / pAp;
    for (size_t s = 0; s < S; ++s) {
      if (out[s].converged) continue;
      const double sigma = shifts[s] - base;
      const double denom = alpha * beta_prev * (zeta_prev[s] - zeta[s]) + zeta_prev[s] * alpha_prev * (1 + sigma * alpha);
      zeta_next[s] = denom != 0 ? zeta[s] * zeta_prev[s] * alpha_prev / denom : 0.0;
      out[s].x.add_(ps[s], alpha * zeta_next[s] / zeta[s]);
    }
    r.sub_(Ap, alpha);
    const double rr_new = r.dot(r).item<double>();
    const double beta = rr_new / rr;
    bool all = true;
    for (size_t s = 0; s < S; ++s) {
      if (out[s].converged) continue;
      out[s].iterations = k + 1;
      out[s].relative_residual = std::abs(zeta_next[s]) * std::sqrt(rr_new) / b_norm;
      out[s].history.push_back(out[s].relative_residual);
      if (out[s].relative_residual <= options.rtol) {
        out[s].converged = true;
        continue;
      }
      all = false;
      const double ratio = zeta_next[s] / zeta[s];
      ps[s] = zeta_next[s] * r + (beta * ratio * ratio) * ps[s];
      zeta_prev[s] = zeta[s];
      zeta[s] = zeta_next[s];
    }
    if (all) break;
    p = r + beta * p;
    rr = rr_new;
    alpha_prev = alpha;
    beta_prev = beta;
  }
  return out;
}

}  // namespace fisheval::solvers
