// Dense objects for small models (tests, toy problems, ng-dense): the full logit
// Jacobian, the per-sample gradient matrix and the Fisher as explicit matrices.
#pragma once
#include <ATen/core/Tensor.h>

#include "mvp/fisher.h"
#include "mvp/linearisation.h"

namespace fisheval::mvp {

// Largest P·N·(outputs per sample) for which dense matrices are built (refused above,
// with a clear message): 2·10⁸ entries.
constexpr double kDenseEntryLimit = 2e8;

// ∂z_n/∂θ as [N, Z, P] (Z = outputs per sample), one per-sample pass per output unit.
at::Tensor dense_logit_jacobian(Linearisation& lin);
// F = Σ_n J_{z_n}ᵀ H_n J_{z_n} as [P, P].
at::Tensor dense_fisher(Fisher& fisher);

}  // namespace fisheval::mvp
