// Shared by test_kronecker.cpp and test_shampoo.cpp: one batch of a fixture with
// fisheval's state beside it, and oracle helpers (indices of a layer's [W | b] block in
// θ, sampled-label per-sample gradients from the oracle's logit Jacobian, dense
// symmetric matrix powers by torch's eigh).
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "solvers/batch_state.h"
#include "solvers/update_method.h"
#include "support.h"

namespace fisheval::test {

struct KronBatch {
  Fixture f;
  std::unique_ptr<mvp::Loss> loss;
  std::unique_ptr<mvp::Linearisation> lin;
  std::unique_ptr<solvers::BatchState> state;

  KronBatch(const std::string& name, int64_t n, int64_t mc_samples = 1, uint64_t seed = 42,
            const std::string& globs = "") {
    f = load_fixture(name, n, globs);
    loss = mvp::make_loss(loss_name(f.loss));
    lin = std::make_unique<mvp::Linearisation>(*f.model, f.params, f.batch.inputs);
    state = std::make_unique<solvers::BatchState>(*lin, *loss, f.batch.targets,
                                                  solvers::BatchStateOptions{.mc_samples = mc_samples, .seed = seed, .dedup_cosine = 0.0});
  }

  solvers::Direction direction(const std::string& method, double lambda, solvers::MethodOptions options = {}) {
    return solvers::make_method(method, options)->direction(*state, lambda);
  }
};

// The registered methods (solvers::list_methods(), registry order) whose needs include every
// flag of `all_of` and none of `none_of`, less `except`: a test that takes its methods from
// here picks up a newly registered method of the family.
inline std::vector<std::string> registered_methods(unsigned all_of, unsigned none_of = 0,
                                                   const std::vector<std::string>& except = {}) {
  std::vector<std::string> out;
  for (const auto& m : solvers::list_methods()) {
    if ((m.needs & all_of) != all_of || (m.needs & none_of) != 0) continue;
    if (std::find(except.begin(), except.end(), m.name) != except.end()) continue;
    out.push_back(m.name);
  }
  return out;
}

// Offset of each selected parameter in θ (the selection order), from the model alone.
inline std::vector<int64_t> param_offsets(Model& m, const std::vector<std::string>& params) {
  std::vector<int64_t> out;
  int64_t at = 0;
  for (const auto& p : params) {
    out.push_back(at);
    at += m.parameter(p).numel();
  }
  return out;
}

inline int64_t param_position(const std::vector<std::string>& params, const std::string& name) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i] == name) return static_cast<int64_t>(i);
  }
  return -1;
}

// Indices in θ of layer `spec`'s block [W | b] flattened row-major (bias the last column),
// with the selected parts only.
inline at::Tensor block_indices(Model& m, const std::vector<std::string>& params, const LayerSpec& spec) {
  const auto offsets = param_offsets(m, params);
  const int64_t wi = param_position(params, spec.weight);
  const int64_t bi = spec.bias.empty() ? -1 : param_position(params, spec.bias);
  const int64_t rows = wi >= 0 ? m.parameter(spec.weight).size(0) : m.parameter(spec.bias).numel();
  const int64_t wcols = wi >= 0 ? m.parameter(spec.weight).numel() / rows : 0;
  std::vector<int64_t> idx;
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t i = 0; i < wcols; ++i) idx.push_back(offsets[wi] + o * wcols + i);
    if (bi >= 0) idx.push_back(offsets[bi] + o);
  }
  return torch::tensor(idx, torch::kLong);
}

inline at::Tensor sub_matrix(const at::Tensor& M, const at::Tensor& idx) {
  return M.index_select(0, idx).index_select(1, idx);
}

// Ĵ_kn = J_{z_n}ᵀ r̂_kn from the oracle's logit Jacobian and given seeds [K, *z]: [K, N, P].
inline at::Tensor seeded_rows(Fixture& f, const at::Tensor& seeds) {
  const auto Jz = oracle::logit_jacobian(*f.model, f.params, f.batch.inputs);  // [N, Z, P]
  const int64_t K = seeds.size(0), N = Jz.size(0);
  return torch::einsum("nzp,knz->knp", {Jz, seeds.to(torch::kDouble).reshape({K, N, -1})});
}

// ∇_z l_n by autograd of torch's own loss: [N, *z].
inline at::Tensor oracle_logit_grad(Fixture& f) {
  at::Tensor z;
  {
    torch::NoGradGuard ng;
    z = f.model->forward(f.batch.inputs);
  }
  auto zg = z.clone().requires_grad_(true);
  return torch::autograd::grad({oracle::per_sample_loss(zg, f.batch.targets, f.loss).sum()}, {zg})[0];
}

// M^{-p} for symmetric PSD M (+ shift I) by torch's eigh.
inline at::Tensor dense_inverse_power(const at::Tensor& M, double shift, double p) {
  const auto [values, vectors] = at::linalg_eigh(0.5 * (M + M.t()), "L");
  return torch::mm(vectors * (values + shift).pow(-p).unsqueeze(0), vectors.t());
}

inline double largest_eigenvalue(const at::Tensor& M) {
  return std::get<0>(at::linalg_eigh(0.5 * (M + M.t()), "L")).max().item<double>();
}

}  // namespace fisheval::test
