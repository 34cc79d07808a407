// The empirical-Fisher family in its Gram (Woodbury) form, solved in sample space over
// the samples K kept by the near-duplicate filter (all nonzero rows when it is off):
//   ef        d = J_Kᵀ (C_KK + λI)⁻¹ 1         = (JᵀJ + λI)⁻¹ g
//   ief       d = J_Kᵀ (C_KK + λI)⁻¹ s_K       (the paper's Eq. 8, damping on the Gram matrix)
//   ief-param d = J_Kᵀ (C_KK + λ diag(s_K))⁻¹ s_K = (Jᵀ diag(s)⁻¹ J + λI)⁻¹ g
// with C = JJᵀ and s_n = ‖∇_{z_n} l_n‖². Jᵀx is one weighted backward pass; C is
// shared by all three and all dampings.
#include <torch/torch.h>

#include "solvers/update_method.h"

namespace fisheval::solvers {
namespace {

enum class Target { kOnes, kLogitGradNorms };

class GramMethod final : public UpdateMethod {
 public:
  GramMethod(std::string name, Target target, bool weighted_damping, const MethodOptions& options)
      : name_(std::move(name)), target_(target), weighted_(weighted_damping), policy_(options.singular) {}

  std::string name() const override { return name_; }

 protected:
  Direction formed(BatchState& state, Direction dir) override {
    dir.d = state.jt_times(dir.true_weights);
    return dir;
  }

  Direction solve(BatchState& state, double damping) override {
    const auto& kept = state.kept();
    const auto C = state.gram().index_select(0, kept).index_select(1, kept);
    const auto s = state.logit_grad_norm_sq().index_select(0, kept);
    const auto rhs = target_ == Target::kOnes ? torch::ones_like(s) : s;
    const auto sol = solve_damped_gram(C, weighted_ ? s : at::Tensor(), damping, rhs, policy_,
                                       "the Gram matrix of " + name_);
    auto x = torch::zeros({state.num_samples()}, torch::kDouble);
    x.index_copy_(0, kept, sol.x);
    Direction out;
    out.true_weights = x;
    out.status = sol.status;
    return out;
  }

 private:
  std::string name_;
  Target target_;
  bool weighted_;
  SingularPolicy policy_;
};

}  // namespace

MethodEntry ef_entry() {
  return {{.name = "ef", .summary = "empirical Fisher: Jᵀ(C + λI)⁻¹1 = (JᵀJ + λI)⁻¹g", .label = "EF",
           .colour = "#d62728", .marker = "v", .needs = kNeedsGradient | kNeedsPerSampleGradients},
          [](const MethodOptions& o) { return std::make_unique<GramMethod>("ef", Target::kOnes, false, o); }};
}
MethodEntry ief_entry() {
  return {{.name = "ief", .summary = "improved EF (the paper's Eq. 8): Jᵀ(C + λI)⁻¹s", .label = "iEF",
           .colour = "#1f77b4", .marker = "o", .needs = kNeedsGradient | kNeedsPerSampleGradients},
          [](const MethodOptions& o) { return std::make_unique<GramMethod>("ief", Target::kLogitGradNorms, false, o); }};
}
MethodEntry ief_param_entry() {
  return {{.name = "ief-param", .summary = "iEF damped in parameter space: (Jᵀdiag(s)⁻¹J + λI)⁻¹g",
           .label = "iEF (param. damping)", .colour = "#6baed6", .linestyle = "--", .marker = "D",
           .needs = kNeedsGradient | kNeedsPerSampleGradients},
          [](const MethodOptions& o) {
            return std::make_unique<GramMethod>("ief-param", Target::kLogitGradNorms, true, o);
          }};
}

}  // namespace fisheval::solvers
