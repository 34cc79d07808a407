// Per-sample gradients of Linear and Conv2d layers from their taps: the layer input a
// and the gradient b of some scalar ⟨u_n, z_n⟩ with respect to the layer output.
// Both are brought to "token" form a [N, T, d_in], b [N, T, d_out] (T = 1 for a
// plain Linear, the sequence positions for sequences, the output pixels for Conv2d with
// a = unfolded input patches), where the per-sample weight gradient is
//   ∇W ⟨u_n, z_n⟩ = Σ_t b_nt a_ntᵀ        and the bias gradient Σ_t b_nt.
#pragma once
#include <ATen/core/Tensor.h>

#include "checkpoints/model.h"

namespace fisheval::mvp {

// a [N, T, d_in] in token form (Conv2d: unfolded patches).
at::Tensor tokens_of_input(const LayerSpec& layer, const at::Tensor& weight, const at::Tensor& input);
// b [N, T, d_out] in token form.
at::Tensor tokens_of_output(const LayerSpec& layer, const at::Tensor& output_grad);

// The inverse of tokens_of_output: b [N, T, d_out] back to the output's shape `sizes`.
at::Tensor output_of_tokens(const LayerSpec& layer, const at::Tensor& tokens, at::IntArrayRef sizes);

// Per-sample weight gradients [N, *weight.shape] and bias gradients [N, d_out].
at::Tensor per_sample_weight_grad(const at::Tensor& a, const at::Tensor& b, at::IntArrayRef weight_shape);
at::Tensor per_sample_bias_grad(const at::Tensor& b);

// Gram contribution of the weight, [N, M]: Σ_{t,u} (a_nt·a'_mu)(b_nt·b'_mu), without forming
// per-sample gradients when that is cheaper (decided by a flop count).
at::Tensor weight_gram(const at::Tensor& a, const at::Tensor& b, const at::Tensor& a2, const at::Tensor& b2);
// The same for S and R seed sets of one layer at once, b [S, N, T, d_out] and c [R, N, T,
// d_out] with the same inputs a [N, T, d_in]: [S·N, R·N], block (s, r) = weight_gram(a, b[s],
// a, c[r]). The kernel form in one product per factor, a aᵀ shared by every pair of sets
// (one product instead of one per pair: the indicator's J_z Jᵀ pairs C = 10 output units
// with the true-label set), or, where per-sample gradients are cheaper, those of every set
// at once; pair by pair where neither would fit.
at::Tensor weight_gram_sets(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c);

}  // namespace fisheval::mvp
