// The exact natural gradient, the reference every approximation is scored against:
//   ng-cg     (F + λI)⁻¹ g by linear CG on Fisher-vector products F v = J_zᵀ H J_z v
//             (one JVP + one VJP per iteration; Hessian-free), every damping value from one
//             Krylov sequence (multi-shift CG). From x₀ = 0 at λ = 0 it converges to the
//             minimum-norm solution F⁺g (g lies in the range of F).
//   ng-dense  (F + λI)⁺ g from the dense Fisher, eigen-decomposed once per batch
//             (small P only: tests and toy problems).
#include <fmt/format.h>
#include <torch/torch.h>

#include "base/error.h"
#include "mvp/dense.h"
#include "solvers/update_method.h"

namespace fisheval::solvers {
namespace {

class NgCg final : public UpdateMethod {
 public:
  explicit NgCg(const MethodOptions& options) : cg_(options.cg) {}
  std::string name() const override { return "ng-cg"; }
  // Every damping from one Krylov sequence (multi-shift CG): one Fisher-vector product per
  // iteration for all of them, instead of one per damping and iteration.
  bool solves_dampings_together() const override { return true; }

 protected:
  Direction solve(BatchState& state, double damping) override { return solve_all(state, {damping}).front(); }
  std::vector<Direction> solve_all(BatchState& state, const std::vector<double>& dampings) override {
    auto& fisher = state.fisher();
    auto results = multi_shift_conjugate_gradient([&](const at::Tensor& v) { return fisher.mv(v); }, state.grad(),
                                                  dampings, cg_);
    std::vector<Direction> out;
    for (auto& result : results) {
      Direction d{result.x};
      d.status = result.converged ? SolveStatus::kExact : SolveStatus::kNotConverged;
      d.iterations = result.iterations;
      d.residual = result.relative_residual;
      d.residual_history = std::move(result.history);
      out.push_back(std::move(d));
    }
    return out;
  }

 private:
  CgOptions cg_;
};

struct DenseEigen {
  at::Tensor values, vectors;
};

class NgDense final : public UpdateMethod {
 public:
  explicit NgDense(const MethodOptions& options) : max_params_(options.dense_max_params), budget_(options.budget) {}
  std::string name() const override { return "ng-dense"; }

 protected:
  Direction solve(BatchState& state, double damping) override {
    if (state.num_params() > max_params_) {
      throw InputError(fmt::format("ng-dense needs the dense {0}x{0} Fisher; P = {0} exceeds its limit of {1} "
                                   "parameters (use ng-cg)",
                                   state.num_params(), max_params_),
                       "dense_max_params");
    }
    // The dense logit Jacobian is made from one backward pass per output unit (Z of them,
    // all samples at once): seeds [Z, N, Z], rows [Z·N, P]; then F, its eigenvectors, a copy.
    const auto& z = state.lin().logits();
    const double N = z.size(0), Z = z.numel() / std::max<int64_t>(z.size(0), 1), P = state.num_params();
    require_output_units(budget_, name(), "the dense Fisher (use ng-cg)", static_cast<int64_t>(Z));
    require_memory(budget_, name(), "the dense Fisher and its Jacobian (use ng-cg)", 8.0 * (Z * N * Z + Z * N * P + 3 * P * P));
    const auto& eig = state.memo<DenseEigen>("ng-dense/eigh", [&] {
      const auto F = mvp::dense_fisher(state.fisher()).to(torch::kDouble);
      auto [values, vectors] = at::linalg_eigh(0.5 * (F + F.t()));
      return DenseEigen{values, vectors};
    });
    const auto g = state.grad().to(torch::kDouble);
    const auto [x, rank] = pinv_apply(eig.values + damping, eig.vectors, g);
    Direction out;
    out.d = x.to(state.grad().scalar_type());
    out.status = rank < g.size(0) ? SolveStatus::kPseudoInverse : SolveStatus::kExact;
    return out;
  }

 private:
  int64_t max_params_;
  Budget budget_;
};

}  // namespace

MethodEntry ng_cg_entry() {
  // Drawn wide and pale: it often coincides with ng-dense, drawn on top.
  return {{.name = "ng-cg", .summary = "natural gradient (F + λI)⁻¹g by linear CG on Fisher-vector products",
           .label = "NG (CG)", .colour = "#000000", .linestyle = "--", .marker = "", .linewidth = 3.6, .alpha = 0.45,
           .reference = true, .records_residuals = true, .needs = kNeedsGradient | kNeedsFisherProducts},
          [](const MethodOptions& o) { return std::make_unique<NgCg>(o); }};
}
MethodEntry ng_dense_entry() {
  return {{.name = "ng-dense", .summary = "natural gradient (F + λI)⁺g from the dense Fisher (small P only)",
           .label = "NG (dense)", .colour = "#8c6d31", .linestyle = "--", .marker = "", .reference = true,
           .needs = kNeedsGradient | kNeedsDenseFisher},
          [](const MethodOptions& o) { return std::make_unique<NgDense>(o); }};
}

}  // namespace fisheval::solvers
