// The KFAC family: block-diagonal curvature, one block per tapped layer, each block
// A ⊗ B (solvers/kronecker.h has the factor scalings: A = mean of ā āᵀ, B = sum of b bᵀ)
// inverted exactly in the factors' eigenbasis,
//   (A ⊗ B + λI)⁻¹ vec G  ↔  U_B [(U_Bᵀ G U_A) / (σ_B σ_Aᵀ + λ)] U_Aᵀ,
// with the pseudo-inverse at λ = 0 (σ_B σ_A ≤ 1e-12·max dropped, status pseudo-inverse).
//
//   kfac        B from sampled-label output gradients r̂ (K draws):   B = (1/K) Σ_k Σ b̂ b̂ᵀ
//   kfac-exact  B from the columns of the loss Hessian's square root: B = Σ_j Σ b_j b_jᵀ
//   ekfac       B from the true-label output gradients r:             B = Σ b bᵀ
//   iekfac      as ekfac, sample n weighted by 1/s_n:                 B = Σ_n (1/s_n) Σ b bᵀ
//   kfe         the eigenvalue-corrected K-FAC: the eigenbases U_A, U_B of kfac,
//               eigenvalues re-estimated from the sampled per-sample gradient matrices
//               E = (1/K) Σ_{k,n} (U_Bᵀ Ĝ_kn U_A)²,  d = U_B [(U_Bᵀ G U_A) / (E + λ)] U_Aᵀ
//
// Selected parameters that no tapped layer owns get a diagonal block of the same statistic:
//   d_i = g_i / (D_i + λ),  D_i = Σ_{s,n} w_sn (∇θ⟨u_sn, z_n⟩)_i²
// (kfac and kfe: the sampled rows, w = 1/K; kfac-exact: the Hessian square-root columns,
// so D is the exact GGN diagonal; ekfac: true labels; iekfac: true labels weighted 1/s_n),
// with the pseudo-inverse at λ = 0.
//
// Factors of rank below their size (A from N·T < d_in tokens, B from fewer seeds than
// d_out) have thin eigenbases (solvers/factorisation.h); the block is then exact with
// d = G/λ outside them (see weights_only).
#include <fmt/format.h>
#include <torch/torch.h>

#include "base/error.h"
#include "solvers/kronecker.h"
#include "solvers/direction_algebra.h"
#include "solvers/methods/families.h"

namespace fisheval::solvers {
namespace {

using kron::Statistic;

// B per block, eigen-decomposed, for a statistic, the expand/reduce choice and thin or full.
const std::vector<kron::Eigen>& output_factors(BatchState& state, Statistic statistic, bool reduce,
                                               Factorisation how, const std::string& method) {
  const auto key = fmt::format("kron/B/{}/{}/{}", kron::statistic_name(statistic), reduce ? "reduce" : "expand",
                               factorisation_name(how));
  return state.memo<std::vector<kron::Eigen>>(key, [&] {
    const auto& b = kron::output_grads(state, statistic, method);
    const auto& w = kron::statistic_weights(state, statistic);
    std::vector<kron::Eigen> out;
    for (const auto& bl : b) out.push_back(kron::factor_eigen(kron::output_factor_rows(bl, w, reduce), how));
    return out;
  });
}

// The fallback diagonal D over the uncovered entries.
const at::Tensor& fallback_diagonal(BatchState& state, Statistic statistic, const std::string& method) {
  return state.memo<at::Tensor>(fmt::format("kron/diag/{}", kron::statistic_name(statistic)), [&] {
    const auto& rows = kron::uncovered_rows(state, statistic, method);  // [S, N, U]
    if (!rows.defined()) return at::Tensor();
    const auto& w = kron::statistic_weights(state, statistic);
    return (rows.square() * w.unsqueeze(2)).sum(at::IntArrayRef{0, 1});
  });
}

// KFE eigenvalues per block: E = Σ_{s,n} w_sn (U_Bᵀ Ĝ_sn U_A)² from the sampled gradients.
// In a thin basis E is exactly 0 on the complement: every Ĝ_sn has its columns in span(b̂)
// = range(B) and its rows in span(ā) = range(A).
const std::vector<at::Tensor>& kfe_eigenvalues(BatchState& state, bool reduce, Factorisation how,
                                               const std::string& method) {
  const auto key = fmt::format("kfe/E/{}/{}", reduce ? "reduce" : "expand", factorisation_name(how));
  return state.memo<std::vector<at::Tensor>>(key, [&] {
    const auto& A = kron::input_factors(state, reduce, how, method);
    const auto& B = output_factors(state, Statistic::kSampled, reduce, how, method);
    const auto& b = kron::output_grads(state, Statistic::kSampled, method);
    const auto& abar = kron::augmented_inputs(state, method);
    const auto& w = kron::statistic_weights(state, Statistic::kSampled);
    std::vector<at::Tensor> out;
    for (size_t i = 0; i < b.size(); ++i) {
      out.push_back(kron::rotated_second_moment(b[i], abar[i], w, B[i].vectors, A[i].vectors));
    }
    return out;
  });
}

class KroneckerMethod final : public UpdateMethod {
 public:
  KroneckerMethod(std::string name, Statistic statistic, bool eigen_corrected, const MethodOptions& options)
      : name_(std::move(name)),
        statistic_(statistic),
        kfe_(eigen_corrected),
        reduce_(options.kfac_reduce),
        // KFE with KFAC-reduce: the per-sample matrices Ĝ_sn = Σ_t b_snt ā_ntᵀ leave the span of
        // the token sums and means that A and B see, so E is not 0 outside thin bases.
        factorisation_(eigen_corrected && options.kfac_reduce ? Factorisation::kFull : options.factorisation),
        policy_(options.singular),
        budget_(options.budget) {}

  std::string name() const override { return name_; }
  unsigned needs() const override {
    return kNeedsGradient | kNeedsLayerTaps | (statistic_ == Statistic::kSampled ? kNeedsSampledGradients : 0u);
  }

  Direction direction(BatchState& state, double damping) override {
    return materialised(state, weights_only(state, damping));
  }

  // Each block in its Kronecker eigenbasis, d_block = U_B X U_Aᵀ with
  // X = (U_Bᵀ G U_A) / (D + λ): no back-rotation is needed to score it.
  Direction weights_only(BatchState& state, double damping) override {
    const auto& plan = kron::plan(state, name_);
    kron::check_budget(state, plan, statistic_, budget_, name_);
    const auto& layout = state.lin().layout();
    const auto& A = kron::input_factors(state, reduce_, factorisation_, name_);
    const auto& B = output_factors(state, statistic_, reduce_, factorisation_, name_);
    const auto* E = kfe_ ? &kfe_eigenvalues(state, reduce_, factorisation_, name_) : nullptr;
    const auto& g = state.grad();
    const auto& g64 = kron::grad64(state);
    bool dropped = false;
    // U_Bᵀ G U_A per block, once for every damping (thin bases: from G's split).
    const auto& rotated = state.memo<std::vector<at::Tensor>>(
        fmt::format("{}/{}/{}/rotated", name_, reduce_, factorisation_name(factorisation_)), [&] {
      std::vector<at::Tensor> out;
      for (size_t i = 0; i < plan.blocks.size(); ++i) out.push_back(kron::rotated_gradient(state, plan.blocks[i], B[i], A[i]));
      return out;
    });
    Direction out;
    for (size_t i = 0; i < plan.blocks.size(); ++i) {
      const auto& blk = plan.blocks[i];
      const auto D = kfe_ ? (*E)[i] : torch::outer(B[i].values, A[i].values);
      auto [X, lost] = kron::eigenbasis_scale(D, rotated[i], damping);
      BasisBlock block{blk.layer, blk.weight, blk.bias, blk.rows, blk.cols, B[i].vectors, A[i].vectors, X, rotated[i]};
      if (A[i].thin() || B[i].thin()) {
        // Thin bases: outside span(U_B) ⊗ span(U_A) the block's curvature is exactly 0, so
        // there d = G/λ — G's parts G_left, G_right, G_perp (direction.h) times c = 1/λ — and
        // at λ = 0 the pseudo-inverse drops them.
        const auto& split = kron::gradient_split(state, blk, B[i].vectors, A[i].vectors);
        const double c = damping > 0 ? 1.0 / damping : 0.0;
        lost = lost || damping == 0;
        block.left_scale = torch::full({split->left.size(0)}, c, split->left.options());
        block.right_scale = torch::full({split->right.size(1)}, c, split->right.options());
        block.perp_coef = c;
        block.split = split;
      }
      out.blocks.push_back(std::move(block));
      dropped = dropped || lost;
    }
    if (plan.uncovered_size > 0) {
      const auto& D = fallback_diagonal(state, statistic_, name_);
      const auto [x, lost] = kron::diagonal_solve(D, kron::uncovered_of(g64, layout, plan), damping);
      auto rest = torch::zeros_like(g64);
      kron::put_uncovered(rest, x, layout, plan);
      out.remainder = rest.to(g.scalar_type());
      dropped = dropped || lost;
    }
    if (dropped && policy_ == SingularPolicy::kError) {
      throw Error(fmt::format("{}: a curvature block is singular at damping {:g}; use a positive damping, or "
                              "--singular pinv for the pseudo-inverse",
                              name_, damping));
    }
    out.status = dropped ? SolveStatus::kPseudoInverse : SolveStatus::kExact;
    return out;
  }

 private:
  std::string name_;
  Statistic statistic_;
  bool kfe_;
  bool reduce_;
  Factorisation factorisation_;
  SingularPolicy policy_;
  Budget budget_;
};

}  // namespace

std::unique_ptr<UpdateMethod> make_kfac(const MethodOptions& o) {
  return std::make_unique<KroneckerMethod>("kfac", Statistic::kSampled, false, o);
}
std::unique_ptr<UpdateMethod> make_kfac_exact(const MethodOptions& o) {
  return std::make_unique<KroneckerMethod>("kfac-exact", Statistic::kExact, false, o);
}
std::unique_ptr<UpdateMethod> make_ekfac(const MethodOptions& o) {
  return std::make_unique<KroneckerMethod>("ekfac", Statistic::kTrue, false, o);
}
std::unique_ptr<UpdateMethod> make_iekfac(const MethodOptions& o) {
  return std::make_unique<KroneckerMethod>("iekfac", Statistic::kTrueOverS, false, o);
}
std::unique_ptr<UpdateMethod> make_kfe(const MethodOptions& o) {
  return std::make_unique<KroneckerMethod>("kfe", Statistic::kSampled, true, o);
}

}  // namespace fisheval::solvers
