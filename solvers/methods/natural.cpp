// The exact natural gradient, the reference every approximation is scored against:
//   ng-cg     (F + λI)⁻¹ g by linear CG on Fisher-vector products F v = J_zᵀ H J_z v
//             (one JVP + one VJP per iteration; Hessian-free). From x₀ = 0 at λ = 0 it
//             converges to the minimum-norm solution F⁺g (g lies in the range of F).
//   ng-dense  (F + λI)⁺ g from the dense Fisher, eigen-decomposed once per batch
//             (small P only: tests and toy problems).
#include <fmt/format.h>
#include <torch/torch.h>

#include "checkpoints/error.h"
#include "mvp/dense.h"
#include "solvers/methods/families.h"

namespace fisheval::solvers {
namespace {

class NgCg final : public UpdateMethod {
 public:
  explicit NgCg(const MethodOptions& options) : cg_(options.cg) {}
  std::string name() const override { return "ng-cg"; }
  unsigned needs() const override { return kNeedsGradient | kNeedsFisherProducts; }

  Direction direction(BatchState& state, double damping) override {
    auto& fisher = state.fisher();
    const auto apply = [&](const at::Tensor& v) { return fisher.mv(v) + damping * v; };
    auto result = conjugate_gradient(apply, state.grad(), cg_);
    Direction out{result.x};
    out.status = result.converged ? SolveStatus::kExact : SolveStatus::kNotConverged;
    out.iterations = result.iterations;
    out.residual = result.relative_residual;
    out.residual_history = std::move(result.history);
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
  explicit NgDense(const MethodOptions& options) : max_params_(options.dense_max_params) {}
  std::string name() const override { return "ng-dense"; }
  unsigned needs() const override { return kNeedsGradient | kNeedsDenseFisher; }

  Direction direction(BatchState& state, double damping) override {
    if (state.num_params() > max_params_) {
      throw InputError(fmt::format("ng-dense needs the dense {0}x{0} Fisher; P = {0} exceeds --dense-max-params {1} "
                                   "(use ng-cg)",
                                   state.num_params(), max_params_));
    }
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
};

}  // namespace

std::unique_ptr<UpdateMethod> make_ng_cg(const MethodOptions& o) { return std::make_unique<NgCg>(o); }
std::unique_ptr<UpdateMethod> make_ng_dense(const MethodOptions& o) { return std::make_unique<NgDense>(o); }

}  // namespace fisheval::solvers
