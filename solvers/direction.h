// A descent direction d (applied as θ ← θ − η d) and the forms it may be given in, so
// that scoring many directions never needs more than the arithmetic requires:
//   * d itself, [P];
//   * sample-space weights (the Gram-form methods): d = Jᵀx + Ĵᵀy;
//   * layer blocks in orthonormal bases (the Kronecker and Shampoo families): on a block's
//     parameters, the matrix [W | b] = U_out X U_inᵀ + c·G (G the gradient's block; U_out,
//     U_in orthonormal columns, thin when a factor's rank is below its size), plus a
//     remainder that is zero on the blocks (the fallback for parameters outside any tapped
//     layer).
// When d is defined it is the direction (the other fields may describe it too); otherwise
// d = Jᵀx + Ĵᵀy + Σ_blocks + remainder. BatchState computes dᵀg, ‖d‖², J_z d and d from any form.
#pragma once
#include <ATen/core/Tensor.h>

#include <limits>
#include <vector>

#include "solvers/gram_solve.h"

namespace fisheval::solvers {

// One layer block (see solvers/kronecker.h for the block convention [W | b]).
struct BasisBlock {
  size_t layer = 0;             // index into lin.layers()
  int weight = -1, bias = -1;   // layout indices of the block's parameters (−1: not selected)
  int64_t rows = 0, cols = 0;   // d_out, d_in (+1 with the bias)
  at::Tensor U_out, U_in;       // orthonormal columns [rows, r_out] and [cols, r_in], float64
  at::Tensor X;                 // coefficients [r_out, r_in], float64
  at::Tensor G_rotated;         // U_outᵀ G U_in of the gradient's block (optional; computed when absent)
  double g_coef = 0;            // c: the multiple of the gradient's block G added (thin bases)
};

struct Direction {
  at::Tensor d;                                // [P], working dtype
  at::Tensor true_weights, sampled_weights;    // [N], [K·N] float64 on the CPU
  std::vector<BasisBlock> blocks;
  at::Tensor remainder;                        // [P], working dtype; zero on the blocks
  SolveStatus status = SolveStatus::kExact;
  int64_t iterations = 0;                                      // iterative solvers
  double residual = std::numeric_limits<double>::quiet_NaN();  // final relative residual
  std::vector<double> residual_history;                        // per iteration (ng-cg)

  bool has_weights() const { return true_weights.defined() || sampled_weights.defined(); }
};

}  // namespace fisheval::solvers
