#include "solvers/methods/layer_blocks.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "base/error.h"

namespace fisheval::solvers {

LayerBlockMethod::LayerBlockMethod(std::string name, const MethodOptions& options, Factorisation factorisation)
    : name_(std::move(name)), factorisation_(factorisation), policy_(options.singular), budget_(options.budget) {}

Direction LayerBlockMethod::solve(BatchState& state, double damping) {
  const auto& plan = kron::plan(state, name_);
  kron::check_budget(state, plan, budget_statistic(), budget_, name_);
  const auto& layout = state.lin().layout();
  const auto f = factors(state);
  const auto& g = state.grad();
  const auto& g64 = kron::grad64(state);
  // Ĝ = U_outᵀ G U_in per block, once for every damping (thin bases: from G's split).
  const auto& rotated = state.memo<std::vector<at::Tensor>>(fmt::format("{}/rotated", memo_tag()), [&] {
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < plan.blocks.size(); ++i) {
      out.push_back(kron::rotated_gradient(state, plan.blocks[i], (*f.out)[i], (*f.in)[i]));
    }
    return out;
  });
  bool dropped = false;
  Direction out;
  for (size_t i = 0; i < plan.blocks.size(); ++i) {
    const auto& blk = plan.blocks[i];
    const auto& U_out = (*f.out)[i];
    const auto& U_in = (*f.in)[i];
    auto s = scale_block(f, i, rotated[i], damping);
    BasisBlock block{blk.layer, blk.weight, blk.bias, blk.rows, blk.cols, U_out.vectors, U_in.vectors, s.X, rotated[i]};
    if (U_out.thin() || U_in.thin()) {
      block.left_scale = s.left_scale;
      block.right_scale = s.right_scale;
      block.perp_coef = s.perp_coef;
      block.split = kron::gradient_split(state, blk, U_out.vectors, U_in.vectors);
    }
    out.blocks.push_back(std::move(block));
    dropped = dropped || s.lost;
  }
  if (plan.uncovered_size > 0) {
    bool lost = false;
    const auto x = solve_uncovered(state, plan, g64, damping, lost);
    auto rest = torch::zeros_like(g64);
    kron::put_uncovered(rest, x, layout, plan);
    out.remainder = rest.to(g.scalar_type());
    dropped = dropped || lost;
  }
  if (dropped && policy_ == SingularPolicy::kError) throw SingularSystemError(singular_message(damping));
  out.status = dropped ? SolveStatus::kPseudoInverse : SolveStatus::kExact;
  return out;
}

}  // namespace fisheval::solvers
