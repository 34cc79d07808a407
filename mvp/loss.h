// The loss's own curvature, apart from the network's Jacobian (kfac-jax's split):
// per-sample loss l_n = −log p(y_n | z_n), its logit gradient, its Hessian H_n with
// respect to the logits (products and a square root S, S Sᵀ = H_n) and sampling of
// labels ŷ ~ p(·|z_n).
//
// Shapes: logits z are [N, C] or [N, T, C] (class axis last) for cross-entropy with
// int64 targets [N] or [N, T] (−100 = ignored token); any [N, ...] for squared error
// with floating targets of the same shape, and for binary cross-entropy with floating
// targets in [0, 1] of the same shape (one Bernoulli per output unit). Every function returns zeros at ignored
// tokens. l_n sums over the tokens / outputs of sample n.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "base/enum_table.h"

namespace fisheval::mvp {

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;

  // Throws InputError with a clear message when targets do not fit the logits.
  virtual void check(const at::Tensor& z, const at::Tensor& y) const = 0;

  // l_n, [N].
  virtual at::Tensor per_sample(const at::Tensor& z, const at::Tensor& y) const = 0;
  // ∇_z l_n, shaped like z.
  virtual at::Tensor logit_grad(const at::Tensor& z, const at::Tensor& y) const = 0;
  // H_n v_n for v shaped like z (H is block-diagonal over samples and tokens).
  virtual at::Tensor hessian_vp(const at::Tensor& z, const at::Tensor& y, const at::Tensor& v) const = 0;
  // Columns of S with S Sᵀ = H per token: [R, *z.shape] where R is the number of
  // columns (C for cross-entropy, the output size for squared error and binary
  // cross-entropy).
  virtual at::Tensor hessian_sqrt(const at::Tensor& z, const at::Tensor& y) const = 0;
  // K sampled logit gradients ∇_z(−log p(ŷ|z)), ŷ ~ p(·|z), drawn on the CPU from a
  // generator seeded with `seed` (so results do not depend on the device): [K, *z.shape].
  virtual at::Tensor sampled_logit_grad(const at::Tensor& z, const at::Tensor& y, int64_t K,
                                        uint64_t seed) const = 0;
  // Target probability per sample, the geometric mean over its target tokens
  // (p(y_n|x_n) for classification) or over its output units (binary cross-entropy:
  // p(y|z) = σ^y (1 − σ)^(1 − y) per unit); NaN for squared error. [N].
  virtual at::Tensor target_prob(const at::Tensor& z, const at::Tensor& y) const = 0;
};

// "cross-entropy" (softmax, categorical likelihood), "squared-error" (½‖y − z‖², unit Gaussian)
// or "binary-cross-entropy" (logistic, a Bernoulli per output unit: softplus(z) − y z).
enum class LossKind { kCrossEntropy, kSquaredError, kBinaryCrossEntropy };
inline constexpr EnumTable<LossKind, 3> kLosses{"loss",
                                                {{{LossKind::kCrossEntropy, "cross-entropy"},
                                                  {LossKind::kSquaredError, "squared-error"},
                                                  {LossKind::kBinaryCrossEntropy, "binary-cross-entropy"}}}};
std::unique_ptr<Loss> make_loss(const std::string& name);  // InputError for a name not in kLosses

// "auto" resolves from the checkpoint's hint, else from the targets' dtype (integer →
// cross-entropy, floating → squared-error; binary-cross-entropy only by name or hint).
std::string resolve_loss_name(const std::string& requested, const std::string& hint, const at::Tensor& targets);

}  // namespace fisheval::mvp
