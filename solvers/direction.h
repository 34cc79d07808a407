// A descent direction d (applied as θ ← θ − η d) and the forms it may be given in, so
// that scoring many directions never needs more than the arithmetic requires:
//   * d itself, [P];
//   * sample-space weights (the Gram-form methods): d = Jᵀx + Ĵᵀy;
//   * layer blocks in orthonormal bases (the Kronecker and Shampoo families): on a block's
//     parameters, the matrix [W | b] = U_out X U_inᵀ + c·G (G the gradient's block; U_out,
//     U_in orthonormal columns, thin when a factor's rank is below its size), plus a
//     remainder that is zero on the blocks (the fallback for parameters outside any tapped
//     layer); without bases, X is the block itself.
// When d is defined it is the direction (the other fields may describe it too); otherwise
// d = Jᵀx + Ĵᵀy + Σ_blocks + remainder. solvers/direction_algebra.h computes dᵀg, ‖d‖², J_z d and d
// from any form.
#pragma once
#include <ATen/core/Tensor.h>

#include <limits>
#include <memory>
#include <vector>

#include "solvers/gram_solve.h"

namespace fisheval::solvers {

// The parts of a block's gradient G in thin orthonormal bases U_out [rows, r_out], U_in
// [cols, r_in], with P = U Uᵀ and Q = I − P on each side:
//   G = U_out Ĝ U_inᵀ + U_out·G_left + G_right·U_inᵀ + G_perp,
//   Ĝ = U_outᵀ G U_in,  G_left = U_outᵀ G Q_in,  G_right = Q_out G U_in,  G_perp = Q_out G Q_in,
// four mutually orthogonal matrices (full bases: G_left, G_right, G_perp vanish).
// G_perp is not kept: it is G Q_in − U_out·G_left, from G Q_in, which every method with the
// same input basis shares (solvers/kronecker.h, split_input).
struct GradientSplit {
  at::Tensor rotated, left, right;  // Ĝ [r_out, r_in], G_left [r_out, cols], G_right [rows, r_in]
  at::Tensor GQ;                    // G Q_in [rows, cols] (shared)
  at::Tensor left_row_sq;           // ‖row r of G_left‖² [r_out]
  at::Tensor right_col_sq;          // ‖column r of G_right‖² [r_in]
  double perp_norm_sq = 0;          // ‖G_perp‖² = ‖G Q_in‖² − ‖G_left‖²
};

// One layer block (see solvers/kronecker.h for the block convention [W | b]): the matrix
//   D = U_out X U_inᵀ + U_out·diag(left_scale)·G_left + G_right·diag(right_scale)·U_inᵀ
//       + perp_coef·G_perp,
// the last three only with thin bases (G's parts, split: orthogonal to each other and to
// the first term). Every method scales G's parts outside its bases by a diagonal on the
// basis side (Kronecker: 1/λ everywhere; Shampoo: its inverse powers), so the products
// with them are formed once per basis and reused for every damping.
struct BasisBlock {
  size_t layer = 0;             // index into lin.layers()
  int weight = -1, bias = -1;   // layout indices of the block's parameters (−1: not selected)
  int64_t rows = 0, cols = 0;   // d_out, d_in (+1 with the bias)
  at::Tensor U_out, U_in;       // orthonormal columns [rows, r_out] and [cols, r_in], float64
  at::Tensor X;                 // coefficients [r_out, r_in], float64
  at::Tensor G_rotated;         // U_outᵀ G U_in of the gradient's block (optional; computed when absent)
  at::Tensor left_scale;        // [r_out] float64 (thin bases)
  at::Tensor right_scale;       // [r_in] float64 (thin bases)
  double perp_coef = 0;         // multiple of G_perp
  std::shared_ptr<const GradientSplit> split;  // the gradient's parts in these bases (thin bases)

  bool thin() const { return split != nullptr; }
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
