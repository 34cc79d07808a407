// How a curvature factor M = scale·ZᵀZ (Z [m, d]: the stacked vectors it sums) is
// eigen-decomposed. M has rank at most m, and its nonzero eigenpairs are those of the m×m
// matrix scale·Z Zᵀ (solvers/kronecker.h, factor_eigen): a thin basis [d, r], exact, at
// O(d·m² + m³) instead of O(d³); the rest of R^d has eigenvalue exactly 0.
//   auto  thin when m < d (the cheaper one), else full;
//   full  the d×d eigendecomposition of M;
//   thin  always from the m×m Gram matrix (for tests).
#pragma once
#include "base/enum_table.h"

namespace fisheval::solvers {

enum class Factorisation { kAuto, kFull, kThin };

inline constexpr EnumTable<Factorisation, 3> kFactorisations{
    "factorisation", {{{Factorisation::kAuto, "auto"}, {Factorisation::kFull, "full"}, {Factorisation::kThin, "thin"}}}};

inline const char* factorisation_name(Factorisation f) { return kFactorisations.text(f); }

}  // namespace fisheval::solvers
