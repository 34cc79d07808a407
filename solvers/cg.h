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

}  // namespace fisheval::solvers
