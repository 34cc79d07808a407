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
#include "solvers/methods/layer_blocks.h"

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

class ShampooMethod final : public LayerBlockMethod {
 public:
  ShampooMethod(std::string name, Source source, double power, const MethodOptions& options,
                std::string local_fallback = "all")
      : LayerBlockMethod(std::move(name), options, options.factorisation),
        source_(source),
        local_layers_(options.local_layers),
        local_fallback_(std::move(local_fallback)),
        power_(power),
        epsilon_(options.shampoo_epsilon) {
    // Per-batch memos are keyed by what they depend on: the sampling layers too.
    memo_name_ = local_layers_.empty() ? name_ : fmt::format("{}[{}]", name_, fmt::join(local_layers_, ","));
  }

 protected:
  kron::Statistic budget_statistic() const override { return kron::Statistic::kTrue; }
  std::string memo_tag() const override { return fmt::format("{}/{}", memo_name_, factorisation_name(factorisation_)); }

  Factors factors(BatchState& state) override {
    const auto& st = statistics_of(state);
    return {&st.left, &st.right};
  }

  // L^{-p} G R^{-p} = U_L [σ_L^{-p} ∘ (U_Lᵀ G U_R) ∘ σ_R^{-p}ᵀ] U_Rᵀ with the shifts λ + ε σ_max.
  // Thin bases: outside them S_L (S_R) is exactly 0, so there L^{-p} is a = shift_L^{-p}
  // (R^{-p} is b = shift_R^{-p}), dropped when the shift is 0 (the pseudo-inverse). On G's
  // parts (direction.h): d = U_L (σ_L^{-p} ∘ Ĝ ∘ σ_R^{-p}) U_Rᵀ + b·U_L (σ_L^{-p} ∘ G_left)
  //                        + a·(G_right ∘ σ_R^{-p}) U_Rᵀ + ab·G_perp.
  BlockScale scale_block(const Factors& f, size_t i, const at::Tensor& rotated, double damping) const override {
    const auto& L = (*f.out)[i];
    const auto& R = (*f.in)[i];
    const double shift_l = damping + epsilon_ * top_value(L.values);
    const double shift_r = damping + epsilon_ * top_value(R.values);
    const auto [li, lost_l] = inverse_power(L.values, shift_l, power_);
    const auto [ri, lost_r] = inverse_power(R.values, shift_r, power_);
    BlockScale s;
    s.X = rotated * torch::outer(li, ri);
    s.lost = lost_l || lost_r;
    if (L.thin() || R.thin()) {
      const double a = L.thin() && shift_l > 0 ? std::pow(shift_l, -power_) : 0.0;
      const double b = R.thin() && shift_r > 0 ? std::pow(shift_r, -power_) : 0.0;
      s.lost = s.lost || (L.thin() && shift_l <= 0) || (R.thin() && shift_r <= 0);
      s.left_scale = b * li;
      s.right_scale = a * ri;
      s.perp_coef = a * b;
    }
    return s;
  }

  // Each uncovered parameter on its own: the full matrix M or the diagonal D, to the power −2p.
  at::Tensor solve_uncovered(BatchState& state, const kron::BlockPlan& plan, const at::Tensor& g64, double damping,
                             bool& lost) override {
    const auto& st = statistics_of(state);
    const auto& layout = state.lin().layout();
    int64_t offset = 0;
    std::vector<at::Tensor> parts;
    const auto gu = kron::uncovered_of(g64, layout, plan);
    for (size_t j = 0; j < plan.uncovered.size(); ++j) {
      const int64_t m = layout.numel(plan.uncovered[j]);
      const auto gv = gu.narrow(0, offset, m);
      offset += m;
      if (st.full[j].values.defined()) {
        const auto& M = st.full[j];
        const auto [inv, dropped] = inverse_power(M.values, damping + epsilon_ * top_value(M.values), 2 * power_);
        parts.push_back(torch::mv(M.vectors, inv * torch::mv(M.vectors.t(), gv)));
        lost = lost || dropped;
      } else {
        const auto& D = st.diagonal[j];
        const auto [inv, dropped] = inverse_power(D, damping + epsilon_ * top_value(D), 2 * power_);
        parts.push_back(inv * gv);
        lost = lost || dropped;
      }
    }
    return torch::cat(parts);
  }

  std::string singular_message(double damping) const override {
    return fmt::format("{}: a preconditioner factor is zero at damping {:g} with ε = {:g}; use a positive "
                       "damping or ε, or the pseudo-inverse",
                       name_, damping, epsilon_);
  }

 private:
  const ShampooStatistics& statistics_of(BatchState& state) {
    return state.memo<ShampooStatistics>(
        fmt::format("shampoo/{}/{}", source_ == Source::kLocal ? memo_name_ : source_name(source_),
                    factorisation_name(factorisation_)),
        [&] { return statistics(state); });
  }

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

  Source source_;
  std::vector<std::string> local_layers_;  // fishy-classifier: the sampling layers (empty: its default)
  std::string local_fallback_;
  std::string memo_name_;
  double power_;
  double epsilon_;
};

MethodEntry shampoo_family_entry(const char* name, const char* summary, const char* label, const char* colour,
                                 const char* linestyle, const char* marker, Source source, double power,
                                 const char* local_fallback) {
  const unsigned needs = kNeedsGradient | kNeedsLayerTaps | (source != Source::kTrue ? kNeedsSampledGradients : 0u);
  return {{.name = name, .summary = summary, .label = label, .colour = colour, .linestyle = linestyle,
           .marker = marker, .needs = needs},
          [=](const MethodOptions& o) {
            MethodOptions chosen = o;
            // fishy: every layer samples (--local-layers is fishy-classifier's)
            if (std::string(local_fallback) == "all") chosen.local_layers.clear();
            return std::make_unique<ShampooMethod>(name, source, power, chosen, local_fallback);
          }};
}

}  // namespace

MethodEntry shampoo_entry() {
  return shampoo_family_entry("shampoo", "Shampoo: L^{-1/4} G R^{-1/4} from true-label per-sample gradients",
                              "Shampoo", "#e377c2", "-", "h", Source::kTrue, 0.25, "all");
}
MethodEntry fim_shampoo_entry() {
  return shampoo_family_entry("fim-shampoo", "Shampoo with sampled-label statistics and exponent -1/2",
                              "FIM-Shampoo", "#8c564b", "-", "H", Source::kSampled, 0.5, "all");
}
MethodEntry fishy_entry() {
  return shampoo_family_entry("fishy", "Fishy: fim-shampoo with labels sampled locally at every layer", "Fishy",
                              "#7b4173", "-.", "*", Source::kLocal, 0.5, "all");
}
MethodEntry fishy_classifier_entry() {
  return shampoo_family_entry("fishy-classifier",
                              "Fishy sampling only in the chosen local layers (default: the final fully connected "
                              "layers); the layers below inherit those draws, backpropagated",
                              "Fishy classifier", "#a55194", ":", "p", Source::kLocal, 0.5, "classifier");
}

}  // namespace fisheval::solvers
