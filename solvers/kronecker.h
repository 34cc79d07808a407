// Layer-wise curvature statistics shared by the Kronecker (KFAC) and Shampoo families,
// and the exact damped inverse of a Kronecker block in its eigenbasis.
//
// Conventions (the batch loss is a SUM over samples):
//
// * Blocks. Every tapped Linear/Conv2d layer that owns selected parameters is one block,
//   a matrix [rows, cols] = [d_out, d_in (+1)]: the weight (Conv2d: [C_out, C_in·kh·kw])
//   with the bias as the last column, [W | b], when the bias is selected too. A selected
//   bias without its weight is the block [d_out, 1] with input ā = 1. In the flat
//   parameter vector the weight is row-major, so a block's curvature in parameter order
//   is B ⊗ A (torch::kron(B, A)), i.e. A ⊗ B in the column-major notation of the papers.
// * Token form. a [N, T, d_in] are the layer inputs (T = sequence positions, Conv2d: the
//   output pixels with a = unfolded patches), ā = [a; 1] with a selected bias; b [S, N, T,
//   d_out] are the gradients of ⟨u_s, z⟩ with respect to the layer outputs for S seed sets u
//   ("seeds"), each set with a weight w_sn per sample.
// * KFAC-expand (tokens as extra samples, the default):
//       A = (1/(N·T)) Σ_{n,t} ā_nt ā_ntᵀ,      B = Σ_{s,n,t} w_sn b_snt b_sntᵀ
//   KFAC-reduce (MethodOptions::kfac_reduce):
//       ā_n = mean_t ā_nt, b_sn = Σ_t b_snt,  A = (1/N) Σ_n ā_n ā_nᵀ,  B = Σ_{s,n} w_sn b_sn b_snᵀ
//   With the mean in A and the sum in B, A ⊗ B is the exact GGN block for a single datum
//   and for deep linear networks with squared error (any N), and KFAC-reduce is exact for
//   a deep linear network whose shared axis is reduced right before the loss.
// * Per-sample gradient matrices (Shampoo, KFE): Ĝ_sn = Σ_t b_snt ā_ntᵀ [rows, cols].
// * Seeds per statistic:
//       sampled      u = r̂ (state.sampled_logit_grad(), K draws),      w = 1/K
//       exact        u = columns of loss.hessian_sqrt(z, y) (R sets),   w = 1
//       true         u = r = ∇_z l (the true labels),                   w = 1
//       true-over-s  u = r,                                             w_n = 1/s_n (0 where s_n = 0)
// * Selected parameters owned by no tapped layer ("uncovered") fall back to per-sample
//   rows of the same seeds, ∇θ⟨u_sn, z_n⟩ restricted to their entries (lin.per_sample),
//   from which each method builds its documented fallback (a diagonal for the KFAC family,
//   a small full matrix or a diagonal for the Shampoo family).
//
// All statistics are float64 on the model's device; everything that does not depend on
// the damping is memoised in the BatchState (keys "kron/…").
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "solvers/batch_state.h"
#include "solvers/budget.h"
#include "solvers/factorisation.h"

namespace fisheval::solvers::kron {

struct LayerBlock {
  size_t layer = 0;  // index into lin.layers()
  int weight = -1;   // layout index of the layer's weight, or -1 when not selected
  int bias = -1;     // layout index of its bias, or -1
  int64_t rows = 0;  // d_out
  int64_t cols = 0;  // d_in (+1 with a selected bias); 1 for a bias alone
};

struct BlockPlan {
  std::vector<LayerBlock> blocks;
  std::vector<int> uncovered;  // layout indices of selected parameters owned by no tapped layer
  int64_t uncovered_size = 0;  // their total number of entries
};



// The blocks of a batch. Throws InputError naming the untapped parameters when no
// selected parameter belongs to a tapped layer (a checkpoint without taps): `method`
// names the method that asked.
BlockPlan plan_blocks(const mvp::Linearisation& lin, const std::string& method);

// A block of flat [..., P] as [..., rows, cols] ([W | b]), and the inverse scatter into flat [P].
at::Tensor block_of(const at::Tensor& flat, const mvp::ParamLayout& layout, const LayerBlock& block);
void put_block(at::Tensor& flat, const at::Tensor& matrix, const mvp::ParamLayout& layout, const LayerBlock& block);
// The uncovered entries of flat [..., P] as [..., U], and back.
at::Tensor uncovered_of(const at::Tensor& flat, const mvp::ParamLayout& layout, const BlockPlan& plan);
void put_uncovered(at::Tensor& flat, const at::Tensor& values, const mvp::ParamLayout& layout, const BlockPlan& plan);

// ā [N, T, cols], float64: the layer input (when the weight is selected) and a column of
// ones (when the bias is).
at::Tensor augmented_inputs(const mvp::Linearisation& lin, const LayerBlock& block);
// A factor as the vectors it sums: M = scale·ZᵀZ for Z [m, d].
struct FactorRows {
  at::Tensor Z;
  double scale = 1.0;
};
// A's rows from ā [N, T, cols] (expand: the N·T tokens, scale 1/(N·T); reduce: the N
// token means, scale 1/N), and A itself.
FactorRows input_factor_rows(const at::Tensor& abar, bool reduce);
at::Tensor input_factor(const at::Tensor& abar, bool reduce);
// B's rows √w_sn·b_snt (expand) or √w_sn·Σ_t b_snt (reduce) from b [S, N, T, rows] and
// weights [S, N] ≥ 0 (undefined: all 1), scale 1; and B itself.
FactorRows output_factor_rows(const at::Tensor& b, const at::Tensor& weights, bool reduce);
at::Tensor output_factor(const at::Tensor& b, const at::Tensor& weights, bool reduce);
// Ĝ_sn = Σ_t b_snt ā_ntᵀ for seed set s: [N, rows, cols].
at::Tensor per_sample_matrices(const at::Tensor& b_s, const at::Tensor& abar);
// Shampoo's statistics S_L = Σ_{s,n} w_sn Ĝ_sn Ĝ_snᵀ [rows, rows] and S_R = Σ w_sn Ĝ_snᵀ Ĝ_sn
// [cols, cols] for b [S, N, T, rows], ā [N, T, cols], w [S, N]. With few tokens they come
// from the token kernels (Ĝᵀ Ĝ = Āᵀ (B Bᵀ) Ā per sample, N·T·cols² instead of N·rows·cols²).
std::pair<at::Tensor, at::Tensor> gradient_second_moments(const at::Tensor& b, const at::Tensor& abar,
                                                          const at::Tensor& w);
// The same statistics as the vectors they sum (S_L = Z_Lᵀ Z_L, S_R = Z_Rᵀ Z_R), N·T rows per
// seed set: with the token kernels K_n = Ā_n Ā_nᵀ = Q Λ Qᵀ [T, T], S_L = Σ w B_nᵀ K_n B_n
// has the rows √w_sn Λ^{1/2} Qᵀ B_sn, and S_R likewise with B_sn B_snᵀ and Ā_n.
std::pair<FactorRows, FactorRows> gradient_second_moment_rows(const at::Tensor& b, const at::Tensor& abar,
                                                              const at::Tensor& w);
// KFE's eigenvalues E = Σ_{s,n} w_sn (U_Bᵀ Ĝ_sn U_A)² (elementwise), rotating the tokens first.
at::Tensor rotated_second_moment(const at::Tensor& b, const at::Tensor& abar, const at::Tensor& w,
                                 const at::Tensor& UB, const at::Tensor& UA);

// Eigen-decomposition of a symmetric PSD matrix in float64: M = U diag(σ) Uᵀ with σ
// ascending and clamped at 0 (rounding can make them slightly negative). A thin one has
// orthonormal columns U [dim, r], r < dim, and M is exactly 0 on their complement.
struct Eigen {
  at::Tensor values, vectors;
  int64_t dim = 0;
  bool thin() const { return vectors.size(1) < dim; }
};
Eigen symmetric_eigen(const at::Tensor& M);
// The eigenpairs of M = scale·ZᵀZ (solvers/factorisation.h): full, or thin from the m×m
// matrix K = scale·Z Zᵀ — K v = σ v gives M u = σ u for u = √scale·Zᵀv/√σ — keeping
// σ > 1e-12·max σ (the rest is the exact zero eigenspace up to rounding).
Eigen factor_eigen(const FactorRows& rows, Factorisation how);

// X = U_B [(U_Bᵀ G U_A) / (D + λ)] U_Aᵀ for D [rows, cols] ≥ 0: the damped inverse of
// a block diagonal in the basis U_B ⊗ U_A applied to G. At λ = 0 the pseudo-inverse:
// entries with D ≤ 1e-12·max D are dropped; `.second` says whether any was.
std::pair<at::Tensor, bool> eigenbasis_solve(const at::Tensor& UB, const at::Tensor& UA, const at::Tensor& D,
                                             const at::Tensor& G, double lambda);
// The same in two steps, so that a damping sweep rotates G once: rotate() gives
// U_Bᵀ G U_A; eigenbasis_apply() divides by D + λ and rotates back, in `dtype` (the working
// dtype: float32 runs do the back-rotation in float32).
at::Tensor rotate(const at::Tensor& UB, const at::Tensor& UA, const at::Tensor& G);
// X = rotated / (D + λ) with the λ = 0 pseudo-inverse rule (the coefficients in the basis).
std::pair<at::Tensor, bool> eigenbasis_scale(const at::Tensor& D, const at::Tensor& rotated, double lambda);
std::pair<at::Tensor, bool> eigenbasis_apply(const at::Tensor& UB, const at::Tensor& UA, const at::Tensor& D,
                                             const at::Tensor& rotated, double lambda, at::ScalarType dtype);
// (σ + shift)^{−power} for eigenvalues σ ≥ 0 (the Shampoo family's inverse roots), with the
// pseudo-inverse where the shifted spectrum vanishes (shift ≤ 0: entries ≤ 1e-12·max dropped,
// set to 0); `.second` says whether any was. top_value: the largest eigenvalue (0 for none).
std::pair<at::Tensor, bool> inverse_power(const at::Tensor& values, double shift, double power);
double top_value(const at::Tensor& values);
// (A ⊗ B + λI)⁻¹ applied to G: D = σ_B σ_Aᵀ in the basis of the factors' eigenvectors.
std::pair<at::Tensor, bool> kronecker_solve(const Eigen& A, const Eigen& B, const at::Tensor& G, double lambda);
// d_i = g_i / (D_i + λ), pseudo-inverse (D_i ≤ 1e-12·max D dropped) at λ = 0.
std::pair<at::Tensor, bool> diagonal_solve(const at::Tensor& D, const at::Tensor& g, double lambda);

// G's parts against an input basis alone: G U_in and G Q_in = G − (G U_in) U_inᵀ, with
// ‖G Q_in‖², shared by every method whose input basis it is (kfac, ekfac and iekfac share A's).
struct InputSplit {
  at::Tensor GU, GQ;
  double gq_norm_sq = 0;
};
std::shared_ptr<const InputSplit> split_input(const at::Tensor& U_in, const at::Tensor& G);
// G's parts in the bases U_out, U_in (direction.h, GradientSplit), from its input split:
//   Ĝ = U_outᵀ (G U_in),  G_left = U_outᵀ (G Q_in),  G_right = G U_in − U_out Ĝ,
//   ‖G_perp‖² = ‖G Q_in‖² − ‖G_left‖² (Q_out G Q_in and U_out·G_left are orthogonal parts of G Q_in).
std::shared_ptr<const GradientSplit> split_gradient(const at::Tensor& U_out, const InputSplit& in);
// The same, memoised per batch for the gradient's block of `block` (keyed by the bases).
const std::shared_ptr<const GradientSplit>& gradient_split(BatchState& state, const LayerBlock& block,
                                                           const at::Tensor& U_out, const at::Tensor& U_in);
// The gradient in float64 (memoised: a float32 run converts it once per batch).
const at::Tensor& grad64(BatchState& state);
// U_outᵀ G U_in of the gradient's block: its split's Ĝ when a basis is thin (the split is
// needed then anyway), else one rotation.
at::Tensor rotated_gradient(BatchState& state, const LayerBlock& block, const Eigen& out, const Eigen& in);

// Statistics of the output gradients, by the seeds they come from.
enum class Statistic { kSampled, kExact, kTrue, kTrueOverS };

// Refuses (InputError) a layer-structured method whose factors would not fit the budget:
// two factors per block (rows² + cols² float64 entries, with their eigenvectors and a
// working copy), and for the exact statistic its R backward passes (R = the output units of
// the loss's Hessian square root: C per token for cross-entropy) and their R·N·T·d_out
// output gradients.
void check_budget(BatchState& state, const BlockPlan& plan, Statistic statistic, const Budget& budget,
                  const std::string& method);
const char* statistic_name(Statistic statistic);

// Seeds u [S, *z] (working dtype) and weights w [S, N] (float64, model device).
struct Seeds {
  at::Tensor u, weights;
};
Seeds seeds_of(BatchState& state, Statistic statistic);

// Memoised per batch.
const BlockPlan& plan(BatchState& state, const std::string& method);
// ā per block.
const std::vector<at::Tensor>& augmented_inputs(BatchState& state, const std::string& method);
// b [S, N, T, rows] per block, float64, for the statistic's seeds.
const std::vector<at::Tensor>& output_grads(BatchState& state, Statistic statistic, const std::string& method);
// A per block, eigen-decomposed (thin or full by `how`).
const std::vector<Eigen>& input_factors(BatchState& state, bool reduce, Factorisation how, const std::string& method);
// Per-sample rows of the uncovered parameters for the statistic's seeds, [S, N, U] float64
// (U = plan.uncovered_size; empty when U = 0).
const at::Tensor& uncovered_rows(BatchState& state, Statistic statistic, const std::string& method);
// The weights [S, N] of the statistic (memoised with its seeds).
const at::Tensor& statistic_weights(BatchState& state, Statistic statistic);

}  // namespace fisheval::solvers::kron
