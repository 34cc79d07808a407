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
#include "solvers/methods/layer_blocks.h"

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

class KroneckerMethod final : public LayerBlockMethod {
 public:
  KroneckerMethod(std::string name, Statistic statistic, bool eigen_corrected, const MethodOptions& options)
      // KFE with KFAC-reduce: the per-sample matrices Ĝ_sn = Σ_t b_snt ā_ntᵀ leave the span of
      // the token sums and means that A and B see, so E is not 0 outside thin bases.
      : LayerBlockMethod(std::move(name), options,
                         eigen_corrected && options.kfac_reduce ? Factorisation::kFull : options.factorisation),
        statistic_(statistic),
        kfe_(eigen_corrected),
        reduce_(options.kfac_reduce) {}

 protected:
  kron::Statistic budget_statistic() const override { return statistic_; }
  std::string memo_tag() const override {
    return fmt::format("{}/{}/{}", name_, reduce_, factorisation_name(factorisation_));
  }

  // B (output side) and A (input side) of each block; KFE: its eigenvalues E.
  Factors factors(BatchState& state) override {
    Factors f;
    f.in = &kron::input_factors(state, reduce_, factorisation_, name_);
    f.out = &output_factors(state, statistic_, reduce_, factorisation_, name_);
    if (kfe_) f.values = &kfe_eigenvalues(state, reduce_, factorisation_, name_);
    return f;
  }

  // X = (U_Bᵀ G U_A) / (D + λ), D = σ_B σ_Aᵀ (KFE: E). Thin bases: outside span(U_B) ⊗ span(U_A)
  // the block's curvature is exactly 0, so there d = G/λ — G's parts G_left, G_right, G_perp
  // (direction.h) times c = 1/λ — and at λ = 0 the pseudo-inverse drops them.
  BlockScale scale_block(const Factors& f, size_t i, const at::Tensor& rotated, double damping) const override {
    const auto& B = (*f.out)[i];
    const auto& A = (*f.in)[i];
    const auto D = f.values ? (*f.values)[i] : torch::outer(B.values, A.values);
    auto [X, lost] = kron::eigenbasis_scale(D, rotated, damping);
    BlockScale s;
    s.X = X;
    s.lost = lost;
    if (A.thin() || B.thin()) {
      const double c = damping > 0 ? 1.0 / damping : 0.0;
      s.lost = s.lost || damping == 0;
      s.left_scale = torch::full({B.vectors.size(1)}, c, B.vectors.options());
      s.right_scale = torch::full({A.vectors.size(1)}, c, A.vectors.options());
      s.perp_coef = c;
    }
    return s;
  }

  // d_i = g_i / (D_i + λ) with the fallback diagonal D of the same statistic.
  at::Tensor solve_uncovered(BatchState& state, const kron::BlockPlan& plan, const at::Tensor& g64, double damping,
                             bool& lost) override {
    const auto& D = fallback_diagonal(state, statistic_, name_);
    auto [x, dropped] = kron::diagonal_solve(D, kron::uncovered_of(g64, state.lin().layout(), plan), damping);
    lost = dropped;
    return x;
  }

  std::string singular_message(double damping) const override {
    return fmt::format("{}: a curvature block is singular at damping {:g}; use a positive damping, or the "
                       "pseudo-inverse",
                       name_, damping);
  }

 private:
  Statistic statistic_;
  bool kfe_;
  bool reduce_;
};

// The entries: the family's data and its factories.
MethodEntry kronecker_entry(const char* name, const char* summary, const char* label, const char* colour,
                            const char* linestyle, const char* marker, Statistic statistic, bool eigen_corrected) {
  const unsigned needs = kNeedsGradient | kNeedsLayerTaps | (statistic == Statistic::kSampled ? kNeedsSampledGradients : 0u);
  return {{.name = name, .summary = summary, .label = label, .colour = colour, .linestyle = linestyle,
           .marker = marker, .needs = needs},
          [=](const MethodOptions& o) { return std::make_unique<KroneckerMethod>(name, statistic, eigen_corrected, o); }};
}

}  // namespace

MethodEntry kfac_entry() {
  return kronecker_entry("kfac", "K-FAC: per-layer A ⊗ B, B from sampled-label output gradients", "KFAC", "#ff7f0e",
                         "-", "^", Statistic::kSampled, false);
}
MethodEntry kfac_exact_entry() {
  return kronecker_entry("kfac-exact", "K-FAC with B the exact expectation over labels (type-II, KFLR)",
                         "KFAC (exact B)", "#e6ab02", "--", "<", Statistic::kExact, false);
}
MethodEntry ekfac_entry() {
  return kronecker_entry("ekfac", "empirical K-FAC: B from true-label output gradients", "eKFAC", "#9467bd", "-", ">",
                         Statistic::kTrue, false);
}
MethodEntry iekfac_entry() {
  return kronecker_entry("iekfac", "improved empirical K-FAC: true-label output gradients weighted by 1/s_n",
                         "ieKFAC", "#17becf", "-", "P", Statistic::kTrueOverS, false);
}
MethodEntry kfe_entry() {
  return kronecker_entry("kfe",
                         "eigenvalue-corrected K-FAC (George et al.): K-FAC's eigenbasis, re-estimated eigenvalues",
                         "KFE (EKFAC)", "#bcbd22", "-", "X", Statistic::kSampled, true);
}

}  // namespace fisheval::solvers
