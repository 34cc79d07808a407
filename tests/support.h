// Test support: the fixtures made by tests/fixtures/make_fixtures.py (real PyTorch
// TorchScript checkpoints and HDF5 batches), and independent float64 oracles built
// with plain autograd and plain torch losses — no code from mvp/ or solvers/.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "checkpoints/dataset.h"
#include "checkpoints/model.h"

namespace fisheval::test {

// Agreement expected of float64 computations with their oracle.
inline constexpr double kTol = 1e-10;

// Folder of the fixtures (made by the CTest fixture `make_fixtures`; environment
// FISHEVAL_FIXTURES overrides) and the fisheval binary (FISHEVAL_BINARY overrides).
std::string fixtures_dir();
std::string fixture(const std::string& name);
std::string fisheval_binary();

// The likelihood of a fixture (the oracles below take it, or a bool: true = cross-entropy,
// false = squared error).
enum class LossKind { kSquaredError, kCrossEntropy, kBinaryCrossEntropy };
const char* loss_name(LossKind loss);  // fisheval's name of the loss (mvp::make_loss)

struct Fixture {
  std::unique_ptr<Model> model;
  std::vector<std::string> params;
  Batch batch;
  bool cross_entropy = true;  // loss == kCrossEntropy
  LossKind loss = LossKind::kCrossEntropy;  // from the checkpoint's recorded loss, else the targets' dtype
};
// Loads NAME.pt (float64, saved trainable parameters selected) and the first n samples of NAME.h5.
Fixture load_fixture(const std::string& name, int64_t n, const std::string& globs = "");

// Relative error ‖a − b‖ / max(‖b‖, tiny).
double rel_err(const at::Tensor& a, const at::Tensor& b);

namespace oracle {
// Per-sample loss with torch's own functions: cross_entropy(reduction none,
// ignore_index −100) summed per sample, ½‖z − y‖², or binary_cross_entropy_with_logits
// (reduction none) summed per sample.
at::Tensor per_sample_loss(const at::Tensor& z, const at::Tensor& y, LossKind loss);
// Per-sample gradients ∇θ l_n [N, P]: a forward and a backward per sample.
at::Tensor per_sample_grads(Model& m, const std::vector<std::string>& params, const Batch& b, LossKind loss);
// ∂z_n/∂θ [N, Z, P]: one backward per sample and output unit.
at::Tensor logit_jacobian(Model& m, const std::vector<std::string>& params, const Inputs& x);
// ∂²l_n/∂z_n² [N, Z, Z] by double autograd of the loss.
at::Tensor loss_hessian(const at::Tensor& z, const at::Tensor& y, LossKind loss);
// F = Σ_n J_nᵀ H_n J_n [P, P].
at::Tensor fisher(Model& m, const std::vector<std::string>& params, const Batch& b, LossKind loss);
// g = ∇θ Σ_n l_n [P].
at::Tensor gradient(Model& m, const std::vector<std::string>& params, const Batch& b, LossKind loss);

// The same with a bool: true = cross-entropy, false = squared error.
inline LossKind kind(bool ce) { return ce ? LossKind::kCrossEntropy : LossKind::kSquaredError; }
inline at::Tensor per_sample_loss(const at::Tensor& z, const at::Tensor& y, bool ce) {
  return per_sample_loss(z, y, kind(ce));
}
inline at::Tensor per_sample_grads(Model& m, const std::vector<std::string>& params, const Batch& b, bool ce) {
  return per_sample_grads(m, params, b, kind(ce));
}
inline at::Tensor loss_hessian(const at::Tensor& z, const at::Tensor& y, bool ce) {
  return loss_hessian(z, y, kind(ce));
}
inline at::Tensor fisher(Model& m, const std::vector<std::string>& params, const Batch& b, bool ce) {
  return fisher(m, params, b, kind(ce));
}
inline at::Tensor gradient(Model& m, const std::vector<std::string>& params, const Batch& b, bool ce) {
  return gradient(m, params, b, kind(ce));
}
}  // namespace oracle

}  // namespace fisheval::test
