// The Shampoo family (Gupta et al.; Anil et al.; Peirson et al.'s Fishy), one block per
// tapped layer, the block's gradient as a matrix G = [W | b] (solvers/kronecker.h):
//
//   Ĝ_sn   per-sample gradient matrices Σ_t b_snt ā_ntᵀ, weights w_sn
//   S_L = Σ_{s,n} w_sn Ĝ_sn Ĝ_snᵀ,   S_R = Σ_{s,n} w_sn Ĝ_snᵀ Ĝ_sn
//   L = S_L + (λ + ε σ_max(S_L)) I,  R = S_R + (λ + ε σ_max(S_R)) I     (ε = --shampoo-epsilon,
//                                                                          relative, so λ = 0 stays finite)
//   d = L^{-p} G R^{-p}   (inverse roots by eigen-decomposition in float64)
//
//   shampoo      true-label gradients (w = 1),                                    p = 1/4
//   fim-shampoo  sampled-label gradients, K draws (w = 1/K),                      p = 1/2
//   fishy        gradients sampled locally at every layer (solvers/local_sampling.h), K draws (w = 1/K),
//                p = 1/2; the output layer (the tapped layer whose output is the logits) uses the same
//                draws as fim-shampoo, so on that layer fishy and fim-shampoo agree exactly.
//   fishy-classifier
//                fishy sampling only in the layers of --local-layers (default: the final fully
//                connected ones, the Linear layers after the last Conv2d); every other layer
//                inherits the draws of the nearest sampling layer downstream, backpropagated.
//
// Selected parameters that no tapped layer owns are preconditioned on their own, flattened to
// a vector v with per-sample rows v_sn of the same statistic (fishy: the sampled-label rows,
// local sampling needs a layer):
//   numel ≤ 2048  full matrix: d_v = (M + (λ + ε σ_max(M)) I)^{-2p} g_v,  M = Σ w_sn v_sn v_snᵀ
//   numel > 2048  diagonal:    d_v = g_v / (D + λ + ε max D)^{2p},       D = Σ w_sn v_sn²
// The exponent 2p gives a one-sided preconditioner the same power of the curvature as the
// two-sided L^{-p} · R^{-p} (shampoo: −1/2, full-matrix AdaGrad; fim-shampoo, fishy: −1).
// When λ + ε σ_max is 0 (an all-zero statistic at λ = 0, or ε = 0), zero eigenvalues are
// dropped (pseudo-inverse, status pseudo-inverse).
//
// S_L and S_R have rank at most the N·T vectors per seed set they sum; below their size
// they get thin eigenbases (solvers/factorisation.h), exact: outside the bases the
// statistic is 0 (weights_only).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cmath>

#include "base/error.h"
#include "solvers/kronecker.h"
#include "solvers/direction_algebra.h"
#include "solvers/local_sampling.h"
#include "solvers/methods/families.h"

namespace fisheval::solvers {
namespace {

using kron::Eigen;
using kron::Statistic;

constexpr int64_t kFullMatrixMax = 2048;

enum class Source { kTrue, kSampled, kLocal };

const char* source_name(Source s) {
  switch (s) {
    case Source::kTrue: return "true";
    case Source::kSampled: return "sampled";
    case Source::kLocal: return "local";
  }
  return "?";
}

struct ShampooStatistics {
  std::vector<Eigen> left, right;     // per block: S_L, S_R
  std::vector<Eigen> full;            // per uncovered parameter: M (numel ≤ 2048), else undefined
  std::vector<at::Tensor> diagonal;   // per uncovered parameter: D (numel > 2048), else undefined
};

using kron::inverse_power;
using kron::top_value;

class ShampooMethod final : public UpdateMethod {
 public:
  ShampooMethod(std::string name, Source source, double power, const MethodOptions& options,
                std::string local_fallback = "all")
      : name_(std::move(name)),
        source_(source),
        local_layers_(options.local_layers),
        local_fallback_(std::move(local_fallback)),
        power_(power),
        epsilon_(options.shampoo_epsilon),
        factorisation_(options.factorisation),
        policy_(options.singular),
        budget_(options.budget) {
    if (!(epsilon_ >= 0)) throw InputError(fmt::format("--shampoo-epsilon must be ≥ 0, got {}", epsilon_));
    // Per-batch memos are keyed by what they depend on: the sampling layers too.
    memo_name_ = local_layers_.empty() ? name_ : fmt::format("{}[{}]", name_, fmt::join(local_layers_, ","));
  }

  std::string name() const override { return name_; }
  unsigned needs() const override {
    return kNeedsGradient | kNeedsLayerTaps | (source_ != Source::kTrue ? kNeedsSampledGradients : 0u);
  }

  Direction direction(BatchState& state, double damping) override {
    return materialised(state, weights_only(state, damping));
  }

  // Each block in the factors' eigenbases: d_block = U_L X U_Rᵀ, X = σ_L^{-p} ∘ (U_Lᵀ G U_R) ∘ σ_R^{-p}ᵀ
  // (and, with thin bases, the parts outside them).
  Direction weights_only(BatchState& state, double damping) override {
    if (!(damping >= 0)) throw Error(fmt::format("damping must be ≥ 0, got {}", damping));
    const auto& plan = kron::plan(state, name_);
    kron::check_budget(state, plan, kron::Statistic::kTrue, budget_, name_);
    const auto& layout = state.lin().layout();
    const auto& st = state.memo<ShampooStatistics>(
        fmt::format("shampoo/{}/{}", source_ == Source::kLocal ? memo_name_ : source_name(source_),
                    factorisation_name(factorisation_)),
        [&] { return statistics(state); });
    const auto& g = state.grad();
    const auto& g64 = kron::grad64(state);
    bool dropped = false;
    Direction out;
    // U_Lᵀ G U_R per block, once for every damping.
    const auto& rotated = state.memo<std::vector<at::Tensor>>(
        fmt::format("{}/{}/rotated", memo_name_, factorisation_name(factorisation_)), [&] {
      std::vector<at::Tensor> out;
      for (size_t i = 0; i < plan.blocks.size(); ++i) {
        out.push_back(kron::rotated_gradient(state, plan.blocks[i], st.left[i], st.right[i]));
      }
      return out;
    });
    for (size_t i = 0; i < plan.blocks.size(); ++i) {
      // L^{-p} G R^{-p} = U_L [σ_L^{-p} ∘ (U_Lᵀ G U_R) ∘ σ_R^{-p}ᵀ] U_Rᵀ
      const auto& blk = plan.blocks[i];
      const auto& L = st.left[i];
      const auto& R = st.right[i];
      const double shift_l = damping + epsilon_ * top_value(L.values);
      const double shift_r = damping + epsilon_ * top_value(R.values);
      const auto [li, lost_l] = inverse_power(L.values, shift_l, power_);
      const auto [ri, lost_r] = inverse_power(R.values, shift_r, power_);
      dropped = dropped || lost_l || lost_r;
      if (!L.thin() && !R.thin()) {
        out.blocks.push_back({blk.layer, blk.weight, blk.bias, blk.rows, blk.cols, L.vectors, R.vectors,
                              rotated[i] * torch::outer(li, ri), rotated[i]});
        continue;
      }
      // Thin bases: outside them S_L (S_R) is exactly 0, so there L^{-p} is a = shift_L^{-p}
      // (R^{-p} is b = shift_R^{-p}), dropped when the shift is 0 (the pseudo-inverse). On G's
      // parts (direction.h): d = U_L (σ_L^{-p} ∘ Ĝ ∘ σ_R^{-p}) U_Rᵀ + b·U_L (σ_L^{-p} ∘ G_left)
      //                        + a·(G_right ∘ σ_R^{-p}) U_Rᵀ + ab·G_perp.
      const double a = L.thin() && shift_l > 0 ? std::pow(shift_l, -power_) : 0.0;
      const double b = R.thin() && shift_r > 0 ? std::pow(shift_r, -power_) : 0.0;
      dropped = dropped || (L.thin() && shift_l <= 0) || (R.thin() && shift_r <= 0);
      const auto& split = kron::gradient_split(state, blk, L.vectors, R.vectors);
      BasisBlock block{blk.layer, blk.weight, blk.bias, blk.rows, blk.cols, L.vectors, R.vectors,
                       split->rotated * torch::outer(li, ri), split->rotated};
      block.left_scale = b * li;
      block.right_scale = a * ri;
      block.perp_coef = a * b;
      block.split = split;
      out.blocks.push_back(std::move(block));
    }
    int64_t offset = 0;
    std::vector<at::Tensor> parts;
    const auto gu = kron::uncovered_of(g64, layout, plan);
    for (size_t j = 0; j < plan.uncovered.size(); ++j) {
      const int64_t m = layout.numel(plan.uncovered[j]);
      const auto gv = gu.narrow(0, offset, m);
      offset += m;
      if (st.full[j].values.defined()) {
        const auto& M = st.full[j];
        const auto [inv, lost] = inverse_power(M.values, damping + epsilon_ * top_value(M.values), 2 * power_);
        parts.push_back(torch::mv(M.vectors, inv * torch::mv(M.vectors.t(), gv)));
        dropped = dropped || lost;
      } else {
        const auto& D = st.diagonal[j];
        const auto [inv, lost] = inverse_power(D, damping + epsilon_ * top_value(D), 2 * power_);
        parts.push_back(inv * gv);
        dropped = dropped || lost;
      }
    }
    if (!parts.empty()) {
      auto rest = torch::zeros_like(g64);
      kron::put_uncovered(rest, torch::cat(parts), layout, plan);
      out.remainder = rest.to(g.scalar_type());
    }
    if (dropped && policy_ == SingularPolicy::kError) {
      throw Error(fmt::format("{}: a preconditioner factor is zero at damping {:g} with ε = {:g}; use a positive "
                              "damping or --shampoo-epsilon, or --singular pinv for the pseudo-inverse",
                              name_, damping, epsilon_));
    }
    out.status = dropped ? SolveStatus::kPseudoInverse : SolveStatus::kExact;
    return out;
  }

 private:
  ShampooStatistics statistics(BatchState& state) {
    const auto& plan = kron::plan(state, name_);
    const Statistic statistic = source_ == Source::kTrue ? Statistic::kTrue : Statistic::kSampled;
    const auto& b = source_ == Source::kLocal
                        ? local_output_grads(state, plan, sampling_layers(state, local_layers_, local_fallback_), name_)
                        : kron::output_grads(state, statistic, name_);
    const auto& w = kron::statistic_weights(state, statistic);
    const auto& abar = kron::augmented_inputs(state, name_);
    ShampooStatistics st;
    for (size_t i = 0; i < plan.blocks.size(); ++i) {
      // Thin where the N·T rows per seed set that S_L and S_R sum are fewer than their size.
      const auto& blk = plan.blocks[i];
      const int64_t m = b[i].size(0) * b[i].size(1) * b[i].size(2);
      const auto thin = [&](int64_t dim) {
        return factorisation_ == Factorisation::kThin || (factorisation_ == Factorisation::kAuto && m < dim);
      };
      if (thin(blk.rows) || thin(blk.cols)) {
        const auto [ZL, ZR] = kron::gradient_second_moment_rows(b[i], abar[i], w);
        st.left.push_back(kron::factor_eigen(ZL, thin(blk.rows) ? Factorisation::kThin : Factorisation::kFull));
        st.right.push_back(kron::factor_eigen(ZR, thin(blk.cols) ? Factorisation::kThin : Factorisation::kFull));
        continue;
      }
      const auto [SL, SR] = kron::gradient_second_moments(b[i], abar[i], w);
      st.left.push_back(kron::symmetric_eigen(SL));
      st.right.push_back(kron::symmetric_eigen(SR));
    }
    if (plan.uncovered_size > 0) {
      const auto& rows = kron::uncovered_rows(state, statistic, name_);  // [S, N, U]
      const auto& layout = state.lin().layout();
      int64_t offset = 0;
      for (const int p : plan.uncovered) {
        const int64_t m = layout.numel(p);
        const auto v = rows.narrow(2, offset, m);
        offset += m;
        if (m <= kFullMatrixMax) {
          const auto flat = v.reshape({-1, m});
          const auto ws = w.reshape({-1, 1});
          st.full.push_back(kron::symmetric_eigen(torch::mm((flat * ws).t(), flat)));
          st.diagonal.emplace_back();
        } else {
          st.full.emplace_back();
          st.diagonal.push_back((v.square() * w.unsqueeze(2)).sum(at::IntArrayRef{0, 1}));
        }
      }
    }
    return st;
  }

  std::string name_;
  Source source_;
  std::vector<std::string> local_layers_;  // fishy-classifier: the sampling layers (empty: its default)
  std::string local_fallback_;
  std::string memo_name_;
  double power_;
  double epsilon_;
  Factorisation factorisation_;
  SingularPolicy policy_;
  Budget budget_;
};

}  // namespace

std::unique_ptr<UpdateMethod> make_shampoo(const MethodOptions& o) {
  return std::make_unique<ShampooMethod>("shampoo", Source::kTrue, 0.25, o);
}
std::unique_ptr<UpdateMethod> make_fim_shampoo(const MethodOptions& o) {
  return std::make_unique<ShampooMethod>("fim-shampoo", Source::kSampled, 0.5, o);
}
std::unique_ptr<UpdateMethod> make_fishy(const MethodOptions& o) {
  MethodOptions all = o;
  all.local_layers.clear();  // every layer samples
  return std::make_unique<ShampooMethod>("fishy", Source::kLocal, 0.5, all);
}
std::unique_ptr<UpdateMethod> make_fishy_classifier(const MethodOptions& o) {
  return std::make_unique<ShampooMethod>("fishy-classifier", Source::kLocal, 0.5, o, "classifier");
}

}  // namespace fisheval::solvers
