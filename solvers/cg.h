// Linear conjugate gradients for a symmetric positive semi-definite operator A:
// solves A x = b from x₀ = 0, stopping when ‖b − A x‖ ≤ rtol·‖b‖ or after max_iter
// iterations (the paper's Algorithm 5 is the fixed-iteration, λ = 0 case with A = F).
// From x₀ = 0 on a consistent singular system it converges to the minimum-norm solution.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace fisheval::solvers {

struct CgOptions {
  int64_t max_iter = 100;
  double rtol = 1e-6;
};

struct CgResult {
  at::Tensor x;
  int64_t iterations = 0;
  double relative_residual = 0;       // ‖b − A x‖ / ‖b‖ (recursively updated residual)
  std::vector<double> history;        // relative residual after each iteration (first: 1)
  bool converged = false;
};

CgResult conjugate_gradient(const std::function<at::Tensor(const at::Tensor&)>& apply, const at::Tensor& b,
                            const CgOptions& options);

// (A + σ_i I) x_i = b for every shift σ_i ≥ 0 from one Krylov sequence (multi-shift CG,
// Jegerlehner 1996): the residuals of all shifted systems are collinear with the base
// system's (the smallest shift), so one product with A per iteration serves every shift.
// Each system stops on its own tolerance (its residual ‖b − (A + σ_i I) x_i‖ = |ζ_i| ‖r‖
// is known without a product); the loop ends when all have converged or at max_iter.
// Results in the order of `shifts`, each as conjugate_gradient would report it.
std::vector<CgResult> multi_shift_conjugate_gradient(const std::function<at::Tensor(const at::Tensor&)>& apply,
                                                     const at::Tensor& b, const std::vector<double>& shifts,
                                                     const CgOptions& options);

}  // namespace fisheval::solvers
