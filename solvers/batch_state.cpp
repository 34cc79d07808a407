#include "solvers/batch_state.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "solvers/kronecker.h"
#include "solvers/one_thread.h"

namespace fisheval::solvers {

namespace {

// Σ_l A_l B_lᵀ over the covered layers.
at::Tensor sum_of_products(const std::vector<at::Tensor>& A, const std::vector<at::Tensor>& B) {
  auto out = torch::zeros({A.front().size(0), B.front().size(0)}, A.front().options());
  for (size_t l = 0; l < A.size(); ++l) out.addmm_(A[l], B[l].t());
  return out;
}

}  // namespace

BatchState::BatchState(mvp::Linearisation& lin, const mvp::Loss& loss, at::Tensor targets, BatchStateOptions options)
    : lin_(lin), loss_(loss), targets_(std::move(targets)), options_(options), fisher_(lin, loss, targets_) {}

const at::Tensor& BatchState::per_sample_loss() {
  if (!per_sample_loss_.defined()) per_sample_loss_ = loss_.per_sample(lin_.logits(), targets_).to(torch::kCPU, torch::kDouble);
  return per_sample_loss_;
}

double BatchState::loss() { return per_sample_loss().sum().item<double>(); }

const at::Tensor& BatchState::logit_grad() {
  if (!logit_grad_.defined()) logit_grad_ = loss_.logit_grad(lin_.logits(), targets_);
  return logit_grad_;
}

const at::Tensor& BatchState::logit_grad_norm_sq() {
  if (!s_.defined()) {
    const auto r = logit_grad().to(torch::kCPU, torch::kDouble);
    s_ = r.reshape({r.size(0), -1}).square().sum(1);
  }
  return s_;
}

const at::Tensor& BatchState::grad() {
  // g = Σ_n J_nᵀ r_n. Once the output-unit taps exist (they cover θ): where the layers'
  // Jacobians fit, the sum of the per-sample rows of each layer's block [W | b]; else a
  // contraction of the true-label taps (their combination); without them, one VJP.
  if (!g_.defined()) {
    if (unit_jacobians_fit()) {
      g_ = torch::zeros({lin_.layout().size()}, lin_.logits().options());
      const auto& rows = rows_by_jacobians(false);
      const auto layers = covered_layers();
      for (size_t i = 0; i < layers.size(); ++i) {
        const auto& c = layers[i];
        kron::put_block(g_, rows[i].sum(0).view({c.rows, c.cols}), lin_.layout(),
                        kron::LayerBlock{c.layer, c.weight, c.bias, c.rows, c.cols});
      }
    } else {
      g_ = lin_.has_unit_grads() ? jt_times(torch::ones({num_samples()}, torch::kDouble)) : lin_.vjp(logit_grad());
    }
  }
  return g_;
}

const mvp::TapGrads* BatchState::true_taps() {
  if (lin_.per_sample_engine() != mvp::PerSampleEngine::kTaps) return nullptr;
  if (!true_taps_) true_taps_ = std::make_unique<mvp::TapGrads>(lin_.tap_grads(logit_grad()));
  return true_taps_.get();
}

const mvp::TapGrads* BatchState::sampled_taps() {
  if (lin_.per_sample_engine() != mvp::PerSampleEngine::kTaps) return nullptr;
  if (!sampled_taps_) sampled_taps_ = std::make_unique<mvp::TapGrads>(lin_.tap_grads(sampled_logit_grad()));
  return sampled_taps_.get();
}

const at::Tensor& BatchState::gram() {
  if (!gram_.defined()) {
    if (unit_jacobians_fit()) {
      gram_ = sum_of_products(rows_by_jacobians(false), rows_by_jacobians(false)).to(torch::kCPU, torch::kDouble);
    } else {
      const auto* t = true_taps();
      gram_ = (t ? lin_.gram(*t, *t) : lin_.gram(logit_grad(), logit_grad())).to(torch::kCPU, torch::kDouble);
    }
  }
  return gram_;
}

const at::Tensor& BatchState::per_sample_grad_norm() {
  if (!norms_.defined()) norms_ = gram().diagonal().clamp_min(0).sqrt();
  return norms_;
}

const at::Tensor& BatchState::kept() {
  if (!kept_.defined()) kept_ = near_duplicate_filter(gram(), options_.dedup_cosine);
  return kept_;
}

const at::Tensor& BatchState::sampled_logit_grad() {
  if (!sampled_.defined()) {
    sampled_ = loss_.sampled_logit_grad(lin_.logits(), targets_, options_.mc_samples, options_.seed);
  }
  return sampled_;
}

const at::Tensor& BatchState::sampled_gram() {
  if (!sampled_gram_.defined()) {
    if (unit_jacobians_fit()) {
      sampled_gram_ = sum_of_products(rows_by_jacobians(true), rows_by_jacobians(true)).to(torch::kCPU, torch::kDouble);
    } else {
      const auto* t = sampled_taps();
      const auto& u = sampled_logit_grad();
      sampled_gram_ = (t ? lin_.gram(*t, *t) : lin_.gram(u, u)).to(torch::kCPU, torch::kDouble);
    }
  }
  return sampled_gram_;
}

const at::Tensor& BatchState::sampled_kept() {
  if (!sampled_kept_.defined()) sampled_kept_ = near_duplicate_filter(sampled_gram(), options_.dedup_cosine);
  return sampled_kept_;
}

at::Tensor BatchState::jt_times(const at::Tensor& x) {
  if (const auto* t = true_taps()) return lin_.combine(*t, x);
  const auto& r = logit_grad();
  std::vector<int64_t> shape(r.dim(), 1);
  shape[0] = r.size(0);
  return lin_.vjp(r * x.to(r.options()).view(shape));
}

at::Tensor BatchState::sampled_jt_times(const at::Tensor& y) {
  if (const auto* t = sampled_taps()) return lin_.combine(*t, y);
  const auto& u = sampled_logit_grad();
  std::vector<int64_t> shape(u.dim(), 1);
  shape[0] = u.size(0);
  shape[1] = u.size(1);
  return lin_.vjp((u * y.to(u.options()).view(shape)).sum(0));
}

const at::Tensor& BatchState::cross_gram() {
  if (!cross_gram_.defined()) {
    if (unit_jacobians_fit()) {
      cross_gram_ = sum_of_products(rows_by_jacobians(true), rows_by_jacobians(false)).to(torch::kCPU, torch::kDouble);
    } else {
      const auto* s = sampled_taps();
      const auto* t = true_taps();
      cross_gram_ =
          (s ? lin_.gram(*s, *t) : lin_.gram(sampled_logit_grad(), logit_grad())).to(torch::kCPU, torch::kDouble);
    }
  }
  return cross_gram_;
}

const at::Tensor& BatchState::layer_inputs(size_t layer, bool weight, bool bias) {
  return memo<at::Tensor>(fmt::format("layer-input-with-ones/{}/{}/{}", layer, weight, bias), [&] {
    std::vector<at::Tensor> parts;
    const auto out = lin_.layer_output_tokens(layer);
    if (weight) parts.push_back(lin_.layer_input_tokens(layer));
    if (bias) parts.push_back(torch::ones({out.size(0), out.size(1), 1}, out.options()));
    return torch::cat(parts, -1);  // [N, T, cols]
  });
}

namespace {
std::string unit_jacobian_key(size_t layer, bool weight, bool bias) {
  return fmt::format("unit-jacobian/{}/{}/{}", layer, weight, bias);
}
}  // namespace

bool BatchState::has_unit_jacobian(size_t layer, bool weight, bool bias) const {
  return has_memo(unit_jacobian_key(layer, weight, bias));
}

const at::Tensor& BatchState::unit_jacobian(size_t layer, bool weight, bool bias) {
  return memo<at::Tensor>(unit_jacobian_key(layer, weight, bias), [&] {
    const auto& units = lin_.unit_grads().per_layer[layer];  // b [Z, N, T, rows]
    const auto& abar = layer_inputs(layer, weight, bias);    // ā [N, T, cols]
    const int64_t Z = units.size(0), N = units.size(1), T = units.size(2), rows = units.size(3);
    // Σ_t b_{z,n,t} ā_{n,t}ᵀ for every (n, z) at once: [N, Z·rows, T] × [N, T, cols].
    const auto b = units.permute({1, 0, 3, 2}).reshape({N, Z * rows, T});
    return torch::bmm(b, abar).reshape({N * Z, rows * abar.size(2)});
  });
}

std::vector<BatchState::CoveredLayer> BatchState::covered_layers() const {
  std::vector<CoveredLayer> out;
  for (size_t l = 0; l < lin_.layers().size(); ++l) {
    const int w = lin_.weight_index(l), b = lin_.bias_index(l);
    if (w < 0 && b < 0) continue;
    const int64_t rows = w >= 0 ? lin_.layout().shape(w)[0] : lin_.layout().numel(b);
    out.push_back({l, w, b, rows, (w >= 0 ? lin_.layout().numel(w) / rows : 0) + (b >= 0 ? 1 : 0)});
  }
  return out;
}

bool BatchState::small_blocks() const {
  const auto layers = covered_layers();
  for (const auto& c : layers) {
    if (c.rows > kSmallMatrix || c.cols > kSmallMatrix) return false;
  }
  return !layers.empty();
}

bool BatchState::unit_jacobians_fit() const {
  if (!lin_.has_unit_grads()) return false;
  const int64_t N = num_samples(), Z = lin_.logits().numel() / N;
  double entries = 0;  // Σ_l rows·cols
  for (const auto& c : covered_layers()) entries += double(c.rows) * double(c.cols);
  return entries > 0 && entries * N * Z <= kMaxUnitJacobian;
}

const std::vector<at::Tensor>& BatchState::rows_by_jacobians(bool sampled) {
  auto& rows = sampled ? sampled_rows_ : true_rows_;
  if (rows.empty()) {
    // G_l[(s, n), :] = Σ_z u_{s,n,z} J_l[(n, z), :], the per-sample gradient rows of the
    // seeds u [S, N, Z] (true labels: r, S = 1; sampled: r̂, S = K) in the block layout.
    const int64_t N = num_samples(), Z = lin_.logits().numel() / N;
    const auto& u = sampled ? sampled_logit_grad() : logit_grad();
    const int64_t S = sampled ? u.size(0) : 1;
    const auto seeds = u.to(lin_.logits().options()).reshape({S, N, Z}).permute({1, 0, 2});  // [N, S, Z]
    for (const auto& J : unit_jacobians()) {  // [N·Z, P_l]
      rows.push_back(torch::bmm(seeds, J.view({N, Z, J.size(1)})).permute({1, 0, 2}).reshape({S * N, J.size(1)}));
    }
  }
  return rows;
}

std::vector<at::Tensor> BatchState::unit_jacobians() {
  std::vector<at::Tensor> out;
  for (const auto& c : covered_layers()) out.push_back(unit_jacobian(c.layer, c.weight >= 0, c.bias >= 0));
  return out;
}

// M = J_z Jᵀ and J_z Ĵᵀ: products of the layers' output-unit Jacobians when they fit (they
// are shared with the block products of solvers/direction_algebra.cpp), else contractions
// of the taps (mvp::Linearisation::gram).
const at::Tensor& BatchState::unit_true_gram() {
  if (!unit_true_.defined()) {
    const int64_t N = num_samples(), Z = lin_.logits().numel() / N;
    unit_true_ = unit_jacobians_fit() ? sum_of_products(unit_jacobians(), rows_by_jacobians(false))
                                            .view({N, Z, N}).permute({1, 0, 2}).contiguous()
                                      : lin_.gram(lin_.unit_grads(), *true_taps()).reshape({Z, N, N});
  }
  return unit_true_;
}

const at::Tensor& BatchState::unit_sampled_gram() {
  if (!unit_sampled_.defined()) {
    const int64_t N = num_samples(), Z = lin_.logits().numel() / N;
    unit_sampled_ = unit_jacobians_fit() ? sum_of_products(unit_jacobians(), rows_by_jacobians(true))
                                               .view({N, Z, -1}).permute({1, 0, 2}).contiguous()
                                         : lin_.gram(lin_.unit_grads(), *sampled_taps()).reshape({Z, N, -1});
  }
  return unit_sampled_;
}

at::Tensor near_duplicate_filter(const at::Tensor& gram, double threshold) {
  const auto C = gram.to(torch::kDouble).cpu();
  const int64_t n = C.size(0);
  const auto norms = C.diagonal().clamp_min(0).sqrt();
  const auto order = std::get<1>(norms.sort(/*stable=*/true, 0, /*descending=*/true));
  const auto* ord = order.data_ptr<int64_t>();
  const auto acc = C.accessor<double, 2>();
  const auto nrm = norms.accessor<double, 1>();
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = ord[i];
    if (!(nrm[a] > 0)) continue;
    bool duplicate = false;
    if (threshold > 0) {
      for (const int64_t b : kept) {
        if (std::abs(acc[a][b]) / (nrm[a] * nrm[b]) > threshold) {
          duplicate = true;
          break;
        }
      }
    }
    if (!duplicate) kept.push_back(a);
  }
  std::sort(kept.begin(), kept.end());
  return torch::tensor(kept, torch::kLong);
}

}  // namespace fisheval::solvers
