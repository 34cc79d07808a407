// The per-batch statistics cache: everything the update methods share on one batch,
// computed once on first use and reused by every method and damping value — the gradient
// g, the logit gradients r_n = ∇_{z_n} l_n and s_n = ‖r_n‖², the Gram matrix C = J Jᵀ of
// the per-sample gradients, the sampled-label gradients Ĵ and their Gram matrix, the
// products Jᵀx and Ĵᵀy, and a typed memo for method-specific work (Kronecker factors,
// eigen-decompositions). Scoring a Direction from these is solvers/direction_algebra.h.
// Small float64 objects (N-sized vectors, N×N Gram matrices) live on the CPU, where the
// sample-space solves run; parameter-sized vectors stay on the model's device.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

#include "mvp/fisher.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "solvers/direction.h"
#include "solvers/memo.h"

namespace fisheval::solvers {

// How J_z d is formed for directions given as layer blocks in a basis (the Kronecker and
// Shampoo families): rotate the layer's taps into the basis once, back-rotate each block
// and pair it with the taps, or back-rotate each block and pair it with the block's
// per-sample output-unit Jacobian (formed once per layer, shared by every method and
// damping; where it fits in memory); kAuto picks the cheapest by an operation count.
enum class BlockProducts { kAuto, kRotated, kDirect, kJacobian };

struct BatchStateOptions {
  int64_t mc_samples = 1;     // K: sampled labels per datum (sf, kfac, fim-shampoo, kfe)
  uint64_t seed = 0;          // seeds the label sampling of this batch
  double dedup_cosine = 0;    // > 0: drop near-duplicate per-sample gradients (|cos| above it)
  BlockProducts block_products = BlockProducts::kAuto;
};

class BatchState {
 public:
  BatchState(mvp::Linearisation& lin, const mvp::Loss& loss, at::Tensor targets, BatchStateOptions options);

  mvp::Linearisation& lin() { return lin_; }
  mvp::Fisher& fisher() { return fisher_; }
  const mvp::Loss& loss_fn() const { return loss_; }
  const at::Tensor& targets() const { return targets_; }
  const BatchStateOptions& options() const { return options_; }
  void set_block_products(BlockProducts how) { options_.block_products = how; }
  int64_t num_samples() const { return lin_.num_samples(); }
  int64_t num_params() const { return lin_.layout().size(); }

  const at::Tensor& per_sample_loss();      // l_n [N], float64
  double loss();                            // L = Σ_n l_n
  const at::Tensor& logit_grad();           // r = ∇_z l, shaped like z (working dtype)
  const at::Tensor& logit_grad_norm_sq();   // s_n = ‖r_n‖² [N], float64
  const at::Tensor& grad();                 // g = ∇θ L = Jᵀ1 [P] (working dtype)
  const at::Tensor& gram();                 // C = J Jᵀ [N, N], float64
  const at::Tensor& per_sample_grad_norm(); // ‖∇θ l_n‖ = sqrt(C_nn) [N], float64
  // Samples kept by the near-duplicate filter (all when off), int64 indices.
  const at::Tensor& kept();
  const at::Tensor& sampled_logit_grad();   // r̂ [K, *z]: ∇_z(−log p(ŷ|z)), ŷ ~ p(·|z)
  const at::Tensor& sampled_gram();         // Ĉ = Ĵ Ĵᵀ [KN, KN], float64 (rows k·N + n)
  const at::Tensor& sampled_kept();         // rows of Ĵ kept by the near-duplicate filter

  // Jᵀ x = Σ_n x_n ∇θ l_n for x [N] (float64 or working dtype): one contraction of the
  // stored layer taps (one backward pass without taps).
  at::Tensor jt_times(const at::Tensor& x);
  // Ĵᵀ y for y [KN], likewise.
  at::Tensor sampled_jt_times(const at::Tensor& y);

  const at::Tensor& cross_gram();           // Ĵ Jᵀ [KN, N], float64
  // M[z, n, m] = ⟨∂z_{n,z}/∂θ, ∇θ l_m⟩ from the output-unit gradients and the true-label
  // taps, [Z, N, N], and the same against the sampled-label rows, [Z, N, KN] (working dtype;
  // taps route with affordable output-unit gradients only).
  const at::Tensor& unit_true_gram();
  const at::Tensor& unit_sampled_gram();

  // Layer l's input tokens ā [N, T, cols] with a column of ones appended for the bias
  // (the block convention [W | b], solvers/kronecker.h), memoised.
  const at::Tensor& layer_inputs(size_t layer, bool weight, bool bias);
  // The layer's per-sample output-unit Jacobian in that block layout, memoised:
  //   J[(n, z), :] = vec(Σ_t b_{z,n,t} ā_{n,t}ᵀ) = ∂z_{n,z}/∂[W | b],   [N·Z, rows·cols],
  // from the output-unit taps (lin().unit_grads(), which must exist).
  const at::Tensor& unit_jacobian(size_t layer, bool weight, bool bias);
  bool has_unit_jacobian(size_t layer, bool weight, bool bias) const;
  // Whether the output-unit taps exist and every covered layer's unit_jacobian together has
  // at most kMaxUnitJacobian entries (then the Gram matrices against the output units are
  // products with them).
  bool unit_jacobians_fit() const;
  // Whether every covered layer's block [W | b] has at most kSmallMatrix rows and columns
  // (solvers/one_thread.h): the methods' work is then on small matrices only, which runs
  // faster on one thread.
  bool small_blocks() const;
  static constexpr double kMaxUnitJacobian = 1 << 23;

  // Method-specific per-batch work, computed once per key (type-checked: solvers/memo.h).
  template <class T>
  T& memo(const std::string& key, const std::function<T()>& make) {
    return memo_.get<T>(key, make);
  }
  bool has_memo(const std::string& key) const { return memo_.contains(key); }

 private:
  mvp::Linearisation& lin_;
  const mvp::Loss& loss_;
  at::Tensor targets_;
  BatchStateOptions options_;
  mvp::Fisher fisher_;
  at::Tensor per_sample_loss_, logit_grad_, s_, g_, gram_, norms_, kept_;
  at::Tensor sampled_, sampled_gram_, sampled_kept_, cross_gram_;
  // Taps route: output gradients of the true-label and sampled seeds; J_z Jᵀ and J_z Ĵᵀ.
  const mvp::TapGrads* true_taps();
  const mvp::TapGrads* sampled_taps();
  std::unique_ptr<mvp::TapGrads> true_taps_, sampled_taps_;
  // Where unit_jacobians_fit(): every covered layer's Jacobian, and the per-sample gradient
  // rows of the true-label (S = 1) or sampled (S = K) seeds per layer, [S·N, P_l], from them;
  // the Gram matrices are then sums of their products.
  struct CoveredLayer {
    size_t layer;
    int weight, bias;    // layout indices (−1: not selected)
    int64_t rows, cols;  // its block [W | b]: d_out × (d_in, + 1 with the bias)
  };
  // The layers that own a selected parameter, in layer order.
  std::vector<CoveredLayer> covered_layers() const;
  std::vector<at::Tensor> unit_jacobians();
  const std::vector<at::Tensor>& rows_by_jacobians(bool sampled);
  std::vector<at::Tensor> true_rows_, sampled_rows_;
  at::Tensor unit_true_, unit_sampled_;
  Memo memo_;
};

// Indices of rows kept by the near-duplicate filter on a Gram matrix: rows are visited
// by decreasing norm and a row is kept unless |cos| with an already kept row exceeds
// `threshold` (so of two near-parallel gradients the smaller one is dropped, as in the
// paper's code). Zero rows are dropped too. threshold ≤ 0 keeps every nonzero row.
at::Tensor near_duplicate_filter(const at::Tensor& gram, double threshold);

}  // namespace fisheval::solvers
