// Damped Gram systems in sample space, always in float64:
//   (C + λ D) x = b,   D = I or diag(w)
// by Cholesky; when the matrix is indefinite or numerically singular (Cholesky fails
// or its pivots span more than 1e12 in condition), by an eigen-decomposition and the
// pseudo-inverse (eigenvalues below 1e-12·σ_max dropped). For the Woodbury forms
// Jᵀ(C + λD)⁻¹b this pseudo-inverse is the λ → 0⁺ limit, so it is the right answer, not
// a guess; it is still reported (status kPseudoInverse) and, with
// SingularPolicy::kError, refused with a clear message (SingularSystemError).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "base/enum_table.h"
#include "base/error.h"

namespace fisheval::solvers {

enum class SolveStatus : int8_t {
  kExact = 0,          // direct solve (Cholesky) or closed form
  kPseudoInverse = 1,  // rank-deficient system, eigen-decomposition pseudo-inverse used
  kNotConverged = 2,   // iterative solve stopped at its iteration cap above tolerance
  kLimit = 3,          // λ = 0 taken as the limit λ → 0⁺ of the direction (see the method)
};
const char* status_name(SolveStatus s);

// Eigenvalues at or below kPseudoInverseRcond · σ_max count as zero in every pseudo-inverse
// (Gram solves, Kronecker factors, Shampoo roots).
inline constexpr double kPseudoInverseRcond = 1e-12;

enum class SingularPolicy { kPseudoInverse, kError };
inline constexpr EnumTable<SingularPolicy, 2> kSingularPolicies{
    "singular policy", {{{SingularPolicy::kPseudoInverse, "pinv"}, {SingularPolicy::kError, "error"}}}};
inline SingularPolicy parse_singular_policy(const std::string& name) { return kSingularPolicies.parse(name); }

struct GramSolution {
  at::Tensor x;  // float64
  SolveStatus status = SolveStatus::kExact;
  int64_t rank = 0;
  double min_eigenvalue = 0;  // of C + λD, when the eigen-decomposition was used
};

// `weights` undefined means D = I. `what` names the system in error messages.
GramSolution solve_damped_gram(const at::Tensor& C, const at::Tensor& weights, double lambda,
                               const at::Tensor& rhs, SingularPolicy policy, const std::string& what);

// Pseudo-inverse applied to rhs: Σ_{σ_i > cutoff} u_i u_iᵀ rhs / σ_i, from an
// eigen-decomposition (values, vectors) of a symmetric PSD matrix; returns the rank too.
std::pair<at::Tensor, int64_t> pinv_apply(const at::Tensor& values, const at::Tensor& vectors, const at::Tensor& rhs,
                                          int power = 1);

}  // namespace fisheval::solvers
