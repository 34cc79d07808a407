// The empirical-Fisher family in its Gram (Woodbury) form, solved in sample space over
// the samples K kept by the near-duplicate filter (all nonzero rows when it is off):
//   ef        d = J_Kᵀ (C_KK + λI)⁻¹ 1         = (JᵀJ + λI)⁻¹ g
//   ief       d = J_Kᵀ (C_KK + λI)⁻¹ s_K       (the paper's Eq. 8, damping on the Gram matrix)
//   ief-param d = J_Kᵀ (C_KK + λ diag(s_K))⁻¹ s_K = (Jᵀ diag(s)⁻¹ J + λI)⁻¹ g
// with C = JJᵀ and s_n = ‖∇_{z_n} l_n‖². Jᵀx is one weighted backward pass; C is
// shared by all three and all dampings.
#include <torch/torch.h>

#include "solvers/methods/families.h"

namespace fisheval::solvers {
namespace {

enum class Target { kOnes, kLogitGradNorms };

class GramMethod final : public UpdateMethod {
 public:
  GramMethod(std::string name, Target target, bool weighted_damping, const MethodOptions& options)
      : name_(std::move(name)), target_(target), weighted_(weighted_damping), policy_(options.singular) {}

  std::string name() const override { return name_; }
  unsigned needs() const override { return kNeedsGradient | kNeedsPerSampleGradients; }

  Direction direction(BatchState& state, double damping) override {
    auto out = weights_only(state, damping);
    out.d = state.jt_times(out.true_weights);
    return out;
  }

  Direction weights_only(BatchState& state, double damping) override {
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

std::unique_ptr<UpdateMethod> make_ef(const MethodOptions& o) {
  return std::make_unique<GramMethod>("ef", Target::kOnes, false, o);
}
std::unique_ptr<UpdateMethod> make_ief(const MethodOptions& o) {
  return std::make_unique<GramMethod>("ief", Target::kLogitGradNorms, false, o);
}
std::unique_ptr<UpdateMethod> make_ief_param(const MethodOptions& o) {
  return std::make_unique<GramMethod>("ief-param", Target::kLogitGradNorms, true, o);
}

}  // namespace fisheval::solvers
