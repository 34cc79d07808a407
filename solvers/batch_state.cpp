#include "solvers/batch_state.h"

#include <torch/torch.h>

namespace fisheval::solvers {

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
  // g = Σ_n J_nᵀ r_n: once the output-unit taps exist (they cover θ), the true-label taps
  // are their combination and g = Jᵀ1 is a contraction with the layer inputs; else one VJP.
  if (!g_.defined()) {
    g_ = lin_.has_unit_grads() ? jt_times(torch::ones({num_samples()}, torch::kDouble)) : lin_.vjp(logit_grad());
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
    const auto* t = true_taps();
    gram_ = (t ? lin_.gram(*t, *t) : lin_.gram(logit_grad(), logit_grad())).to(torch::kCPU, torch::kDouble);
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
    const auto* t = sampled_taps();
    const auto& u = sampled_logit_grad();
    sampled_gram_ = (t ? lin_.gram(*t, *t) : lin_.gram(u, u)).to(torch::kCPU, torch::kDouble);
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
    const auto* s = sampled_taps();
    const auto* t = true_taps();
    cross_gram_ = (s ? lin_.gram(*s, *t) : lin_.gram(sampled_logit_grad(), logit_grad())).to(torch::kCPU, torch::kDouble);
  }
  return cross_gram_;
}

const at::Tensor& BatchState::unit_true_gram() {
  if (!unit_true_.defined()) {
    const int64_t N = num_samples(), Z = lin_.logits().numel() / N;
    unit_true_ = lin_.gram(lin_.unit_grads(), *true_taps()).reshape({Z, N, N});
  }
  return unit_true_;
}

const at::Tensor& BatchState::unit_sampled_gram() {
  if (!unit_sampled_.defined()) {
    const int64_t N = num_samples(), Z = lin_.logits().numel() / N;
    unit_sampled_ = lin_.gram(lin_.unit_grads(), *sampled_taps()).reshape({Z, N, -1});
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
