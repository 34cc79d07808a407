// kfac, shampoo, fim-shampoo, fishy and fishy-classifier as optimisers (eval/optimisers.h).
// Step t on a batch of N samples, g_t the gradient of the mean loss (1/N) Σ_n l_n:
//
//   statistics   per block, the batch's factors of solvers/layer_statistics.h divided by N
//                (kfac: B only; A is a mean already), averaged over steps:
//                S_t = β S_{t−1} + (1 − β) S_batch, S_0 = S_batch          (β = stat_decay)
//   refresh      at t = 0, k, 2k, …: S_t = U diag(σ) Uᵀ (float64)           (k = precond_every)
//   filtered     m_t = β₁ m_{t−1} + (1 − β₁) g_t,  m̂ = m_t / (1 − β₁^{t+1})
//   grafting     Adam's second moment v_t = β₂ v_{t−1} + (1 − β₂) g_t², v̂ = v_t / (1 − β₂^{t+1});
//                its step a = m̂ / (√v̂ + eps)
//   block        D = P(M̂) for the block M̂ of m̂ (layer_precondition: the last refresh's
//                eigenpairs), scaled to the graft's length:  adam ‖a_block‖/‖D‖,
//                sgd ‖M̂‖/‖D‖, none 1
//   update       θ ← θ − η u with u = D on the blocks, the graft's step (a, or m̂) on
//                parameters no tapped layer owns
//
// This is Distributed Shampoo's recipe (preconditioner refreshed every k steps, the
// filtered gradient preconditioned, per-layer grafting onto Adam), with the statistics the
// evaluation scores: per-sample second moments where the Fishy paper feeds Shampoo the
// batch-mean sampled gradient.
#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>

#include "base/error.h"
#include "eval/optimisers.h"
#include "eval/sweep.h"
#include "mvp/linearisation.h"
#include "solvers/layer_statistics.h"

namespace fisheval {
namespace {

class Layerwise final : public Optimiser {
 public:
  explicit Layerwise(const OptimiserOptions& o) : o_(o) {
    if (!(o.stat_decay >= 0 && o.stat_decay < 1)) throw InputError("--stat-decay must be in [0, 1)");
    if (o.precond_every < 1) throw InputError("--precond-every must be at least 1");
    if (!(o.precond_epsilon > 0)) throw InputError("--precond-epsilon must be positive");
    if (o.grafting != "adam" && o.grafting != "sgd" && o.grafting != "none") {
      throw InputError(fmt::format("--grafting '{}' must be adam, sgd or none", o.grafting));
    }
    if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0)) {
      throw InputError("grafting needs β₁, β₂ in [0, 1) and eps > 0");
    }
  }
  std::string name() const override { return o_.name; }

  StepStats step(Model& model, const std::vector<std::string>& params, const Batch& batch, double lr,
                 int64_t step) override {
    StepStats stats;
    at::Tensor u;
    std::vector<at::Tensor> parts;
    {
      CurvatureBatch cb(model, params, batch, {.mc_samples = o_.mc_samples, .seed = batch_seed(o_.seed, step), .dedup_cosine = 0.0}, stats);
      auto& state = cb.state();
      const double N = static_cast<double>(state.num_samples());
      const auto g = solvers::kron::grad64(state) / N;
      auto st = solvers::layer_statistics(state, o_.name, o_.method_options);
      accumulate(st, N);
      if (t_ % o_.precond_every == 0) refresh();
      // Filtered gradient and Adam's second moment, bias-corrected.
      if (!m_.defined()) {
        m_ = torch::zeros_like(g);
        v_ = torch::zeros_like(g);
      }
      m_.mul_(o_.beta1).add_(g, 1 - o_.beta1);
      v_.mul_(o_.beta2).addcmul_(g, g, 1 - o_.beta2);
      const double t1 = static_cast<double>(t_ + 1);
      const auto mhat = m_ / (1 - std::pow(o_.beta1, t1));
      const auto adam = mhat / ((v_ / (1 - std::pow(o_.beta2, t1))).sqrt() + o_.eps);
      u = o_.grafting == "adam" ? adam.clone() : mhat.clone();
      const auto& layout = cb.lin().layout();
      for (size_t i = 0; i < st.plan.blocks.size(); ++i) {
        const auto& blk = st.plan.blocks[i];
        const auto M = solvers::kron::block_of(mhat, layout, blk);
        auto D = solvers::layer_precondition(st.curvature, st.power, left_eig_[i], right_eig_[i], M,
                                             o_.precond_epsilon);
        const double dn = D.norm().item<double>();
        if (o_.grafting != "none" && dn > 0) {
          const double target = (o_.grafting == "adam" ? solvers::kron::block_of(adam, layout, blk) : M).norm().item<double>();
          D = D * (target / dn);
        }
        solvers::kron::put_block(u, D, layout, blk);
      }
      parts = layout.split(u);
      ++t_;
    }
    const double norm = u.norm().item<double>();
    if (!std::isfinite(norm)) throw Error(fmt::format("the {} update is not finite", o_.name));
    apply_update(model, params, parts, lr);
    stats.update_norm = lr * norm;
    stats.damping = o_.precond_epsilon;
    return stats;
  }

 private:
  // S ← β S + (1 − β) S_batch/N per block (kfac's A is a mean: not divided).
  void accumulate(const solvers::LayerStatistics& st, double N) {
    const bool kfac = st.curvature == solvers::LayerCurvature::kKronecker;
    const double beta = left_.empty() ? 0.0 : o_.stat_decay;
    if (left_.empty()) {
      left_.resize(st.left.size());
      right_.resize(st.right.size());
    }
    if (left_.size() != st.left.size()) throw Error("the model's layer blocks changed between steps");
    for (size_t i = 0; i < st.left.size(); ++i) {
      const auto L = st.left[i] / N;
      const auto R = kfac ? st.right[i] : st.right[i] / N;
      left_[i] = left_[i].defined() ? left_[i] * beta + L * (1 - beta) : L;
      right_[i] = right_[i].defined() ? right_[i] * beta + R * (1 - beta) : R;
    }
  }

  void refresh() {
    left_eig_.clear();
    right_eig_.clear();
    for (size_t i = 0; i < left_.size(); ++i) {
      left_eig_.push_back(solvers::kron::symmetric_eigen(left_[i]));
      right_eig_.push_back(solvers::kron::symmetric_eigen(right_[i]));
    }
  }

  OptimiserOptions o_;
  int64_t t_ = 0;
  std::vector<at::Tensor> left_, right_;
  std::vector<solvers::kron::Eigen> left_eig_, right_eig_;
  at::Tensor m_, v_;
};

}  // namespace

std::unique_ptr<Optimiser> make_layerwise_optimiser(const OptimiserOptions& options) {
  return std::make_unique<Layerwise>(options);
}

}  // namespace fisheval
