#include "solvers/gram_solve.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "base/error.h"
#include "solvers/eigh.h"

namespace fisheval::solvers {

const char* status_name(SolveStatus s) {
  switch (s) {
    case SolveStatus::kExact: return "exact";
    case SolveStatus::kPseudoInverse: return "pseudo-inverse";
    case SolveStatus::kNotConverged: return "not-converged";
    case SolveStatus::kLimit: return "limit";
  }
  return "?";
}

std::pair<at::Tensor, int64_t> pinv_apply(const at::Tensor& values, const at::Tensor& vectors, const at::Tensor& rhs,
                                          int power) {
  const double top = values.numel() ? values.abs().max().item<double>() : 0.0;
  const auto keep = values.gt(kPseudoInverseRcond * top).logical_and(values.gt(0));
  const auto inv = torch::where(keep, values.pow(-power), torch::zeros_like(values));
  const auto coef = torch::mv(vectors.t(), rhs) * inv;
  return {torch::mv(vectors, coef), keep.sum().item<int64_t>()};
}

GramSolution solve_damped_gram(const at::Tensor& C, const at::Tensor& weights, double lambda,
                               const at::Tensor& rhs, SingularPolicy policy, const std::string& what) {
  const auto C64 = C.to(torch::kDouble);
  const auto b = rhs.to(torch::kDouble);
  auto A = C64.clone();
  if (lambda != 0) {
    if (weights.defined()) {
      A.diagonal().add_(lambda * weights.to(torch::kDouble));
    } else {
      A.diagonal().add_(lambda);
    }
  }
  GramSolution out;
  const int64_t n = A.size(0);
  if (n == 0) {
    out.x = torch::zeros({0}, b.options());
    return out;
  }
  auto [L, info] = at::linalg_cholesky_ex(A, /*upper=*/false, /*check_errors=*/false);
  if (info.item<int64_t>() == 0) {
    const auto d = L.diagonal();
    const double ratio = (d.max() / d.min()).item<double>();
    if (std::isfinite(ratio) && ratio * ratio < 1.0 / kPseudoInverseRcond) {
      out.x = at::cholesky_solve(b.unsqueeze(1), L).squeeze(1);
      out.rank = n;
      return out;
    }
  }
  // Indefinite or numerically singular: eigen-decomposition and pseudo-inverse.
  auto [values, vectors] = symmetric_eigh(A);
  auto [x, rank] = pinv_apply(values, vectors, b);
  out.x = x;
  out.rank = rank;
  out.min_eigenvalue = values.min().item<double>();
  out.status = SolveStatus::kPseudoInverse;
  if (policy == SingularPolicy::kError) {
    throw SingularSystemError(fmt::format("{} is singular at damping {:g} (rank {} of {}, smallest eigenvalue {:.3g}); "
                                          "use a positive damping, or the pinv policy for the pseudo-inverse (the "
                                          "λ→0 limit)",
                                          what, lambda, rank, n, out.min_eigenvalue));
  }
  return out;
}

}  // namespace fisheval::solvers
