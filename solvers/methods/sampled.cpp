// sf, the sampled Fisher F̂ = ĴᵀĴ/K with K sampled labels per datum (Ĵ stacks
// ∇θ(−log p(ŷ_nk|z_n)), ŷ_nk ~ p(·|z_n)), by Woodbury in sample space:
//   λ > 0:  d = (ĴᵀĴ/K + λI)⁻¹ g = (1/λ) [g − Ĵᵀ (ĴĴᵀ + KλI)⁻¹ Ĵ g]
//   λ = 0:  the λ → 0⁺ limit of the direction: the part of g outside the span of the
//           sampled gradients, g − Ĵᵀ(ĴĴᵀ)⁺Ĵg (status "limit"), when P exceeds the rank
//           of ĴĴᵀ; otherwise (F̂ invertible) K Ĵᵀ(ĴĴᵀ)⁺²Ĵg = F̂⁻¹g.
// Ĵg is one JVP; Ĵᵀy one backward pass. The direction is given as sample-space weights
// (d = Jᵀx + Ĵᵀy, g = Jᵀ1), so that its indicator needs no pass through the network.
#include <torch/torch.h>

#include "solvers/direction_algebra.h"
#include "solvers/eigh.h"
#include "solvers/update_method.h"

namespace fisheval::solvers {
namespace {

struct SampledEigen {
  at::Tensor values, vectors;
};

class Sf final : public UpdateMethod {
 public:
  explicit Sf(const MethodOptions& options) : policy_(options.singular) {}
  std::string name() const override { return "sf"; }

 protected:
  Direction solve(BatchState& state, double damping) override {
    const auto& kept = state.sampled_kept();
    const auto C = state.sampled_gram().index_select(0, kept).index_select(1, kept);
    const auto Jg = sampled_times_grad(state).index_select(0, kept);
    const int64_t rows = state.sampled_gram().size(0);
    const double K = static_cast<double>(state.options().mc_samples);
    const auto scatter = [&](const at::Tensor& y) {
      auto full = torch::zeros({rows}, torch::kDouble);
      return full.index_copy_(0, kept, y);
    };
    Direction out;
    if (damping > 0) {
      const auto sol = solve_damped_gram(C, at::Tensor(), K * damping, Jg, policy_, "the sampled Gram matrix of sf");
      const auto y = scatter(sol.x);
      out.true_weights = torch::full({state.num_samples()}, 1.0 / damping, torch::kDouble);  // g = Jᵀ1
      out.sampled_weights = -y / damping;
      out.status = sol.status;
      return out;
    }
    const auto& eig = state.memo<SampledEigen>("sf/eigh", [&] {
      auto [values, vectors] = symmetric_eigh(C);
      return SampledEigen{values, vectors};
    });
    const auto [y, rank] = pinv_apply(eig.values, eig.vectors, Jg);
    if (state.num_params() > rank) {
      const auto full = scatter(y);
      out.true_weights = torch::ones({state.num_samples()}, torch::kDouble);
      out.sampled_weights = -full;
      out.status = SolveStatus::kLimit;
    } else {
      const auto [y2, rank2] = pinv_apply(eig.values, eig.vectors, Jg, /*power=*/2);
      out.sampled_weights = K * scatter(y2);
      out.status = rank2 < C.size(0) ? SolveStatus::kPseudoInverse : SolveStatus::kExact;
    }
    return out;
  }

 private:
  SingularPolicy policy_;
};

}  // namespace

MethodEntry sf_entry() {
  return {{.name = "sf", .summary = "sampled Fisher: (ĴᵀĴ/K + λI)⁻¹g, K sampled labels per datum", .label = "SF",
           .colour = "#2ca02c", .marker = "s", .needs = kNeedsGradient | kNeedsSampledGradients},
          [](const MethodOptions& o) { return std::make_unique<Sf>(o); }};
}

}  // namespace fisheval::solvers
