// solvers/ against direct parameter-space solves built from the oracles: the Gram
// (Woodbury) forms of ef, ief-param and sf equal (·)⁻¹g solved densely in R^P; ief is
// Jᵀ(C+λI)⁻¹s; ng-cg converges to ng-dense; γ(ng-dense) ≤ γ(d) for every d; γ is
// invariant to the scale of d; the singular-system policies; CG against dense solves.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "eval/indicator.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "solvers/batch_state.h"
#include "solvers/cg.h"
#include "solvers/damping.h"
#include "solvers/direction_algebra.h"
#include "solvers/eigh.h"
#include "solvers/gram_solve.h"
#include "solvers/memo.h"
#include "solvers/update_method.h"
#include "kronecker_support.h"
#include "support.h"

namespace fisheval::test {
namespace {

// One batch of a fixture with the oracle's dense J, g, F beside fisheval's state.
class SolverTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { setup(GetParam(), 8); }
  void setup(const std::string& name, int64_t n, int64_t mc_samples = 2) {
    f_ = load_fixture(name, n);
    loss_ = mvp::make_loss(loss_name(f_.loss));
    lin_ = std::make_unique<mvp::Linearisation>(*f_.model, f_.params, f_.batch.inputs);
    state_ = std::make_unique<solvers::BatchState>(*lin_, *loss_, f_.batch.targets,
                                                   solvers::BatchStateOptions{.mc_samples = mc_samples, .seed = 42, .dedup_cosine = 0.0});
    J_ = oracle::per_sample_grads(*f_.model, f_.params, f_.batch, f_.loss);
    g_ = J_.sum(0);
    F_ = oracle::fisher(*f_.model, f_.params, f_.batch, f_.loss);
    s_ = state_->logit_grad_norm_sq();
  }
  at::Tensor direction(const std::string& method, double lambda) {
    return solvers::make_method(method, options_)->direction(*state_, lambda).d;
  }
  at::Tensor eye() { return torch::eye(g_.size(0), torch::kDouble); }
  double gamma(const at::Tensor& d) { return indicator(d, g_, d.dot(torch::mv(F_, d)).item<double>()).gamma; }

  Fixture f_;
  std::unique_ptr<mvp::Loss> loss_;
  std::unique_ptr<mvp::Linearisation> lin_;
  std::unique_ptr<solvers::BatchState> state_;
  solvers::MethodOptions options_;
  at::Tensor J_, g_, F_, s_;
};

TEST_P(SolverTest, EfWoodburyEqualsParameterSpaceSolve) {
  for (double lambda : {1e-3, 0.1, 10.0}) {
    const auto direct = at::linalg_solve(torch::mm(J_.t(), J_) + lambda * eye(), g_.unsqueeze(1), true).squeeze(1);
    EXPECT_LT(rel_err(direction("ef", lambda), direct), 1e-9) << "λ = " << lambda;
  }
}

TEST_P(SolverTest, IefIsJtTimesDampedGramInverseOfS) {
  for (double lambda : {0.0, 1e-4, 1.0}) {
    const auto C = torch::mm(J_, J_.t());
    const auto x = at::linalg_solve(C + lambda * torch::eye(C.size(0), torch::kDouble), s_.unsqueeze(1), true);
    EXPECT_LT(rel_err(direction("ief", lambda), torch::mv(J_.t(), x.squeeze(1))), 1e-9) << "λ = " << lambda;
  }
}

TEST_P(SolverTest, IefParamWoodburyEqualsParameterSpaceSolve) {
  for (double lambda : {1e-3, 0.1, 10.0}) {
    const auto M = torch::mm(J_.t() / s_.unsqueeze(0), J_) + lambda * eye();
    const auto direct = at::linalg_solve(M, g_.unsqueeze(1), true).squeeze(1);
    EXPECT_LT(rel_err(direction("ief-param", lambda), direct), 1e-8) << "λ = " << lambda;
  }
  // At λ = 0 the Gram form reduces to ief.
  EXPECT_LT(rel_err(direction("ief-param", 0.0), direction("ief", 0.0)), 1e-9);
}

// Ĵ from the oracle's logit Jacobian and the state's sampled logit gradients.
at::Tensor sampled_rows(Fixture& f, const at::Tensor& sampled) {
  const auto Jz = oracle::logit_jacobian(*f.model, f.params, f.batch.inputs);  // [N, Z, P]
  const int64_t K = sampled.size(0), N = Jz.size(0);
  return torch::einsum("nzp,knz->knp", {Jz, sampled.reshape({K, N, -1})}).reshape({K * N, -1});
}

// With the output-unit taps computed first (as a unit does), g, the Gram matrices and the
// Gram matrices against the output units are products of the layers' per-sample output-unit
// Jacobians (BatchState::unit_jacobian): each against the dense oracle.
void expect_statistics_from_unit_jacobians(Fixture& f, const mvp::Loss& loss) {
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
  ASSERT_TRUE(lin.unit_grads_affordable());
  solvers::BatchState state(lin, loss, f.batch.targets,
                            solvers::BatchStateOptions{.mc_samples = 2, .seed = 42, .dedup_cosine = 0.0});
  lin.unit_grads();
  ASSERT_TRUE(state.unit_jacobians_fit());
  const auto J = oracle::per_sample_grads(*f.model, f.params, f.batch, f.loss);  // [N, P]
  const auto Jh = sampled_rows(f, state.sampled_logit_grad());                    // [KN, P]
  const auto Jz = oracle::logit_jacobian(*f.model, f.params, f.batch.inputs);    // [N, Z, P]
  EXPECT_LT(rel_err(state.grad(), J.sum(0)), kTol);
  EXPECT_LT(rel_err(state.gram(), torch::mm(J, J.t())), kTol);
  EXPECT_LT(rel_err(state.sampled_gram(), torch::mm(Jh, Jh.t())), kTol);
  EXPECT_LT(rel_err(state.cross_gram(), torch::mm(Jh, J.t())), kTol);
  EXPECT_LT(rel_err(state.unit_true_gram(), torch::einsum("nzp,mp->znm", {Jz, J})), kTol);
  EXPECT_LT(rel_err(state.unit_sampled_gram(), torch::einsum("nzp,kp->znk", {Jz, Jh})), kTol);
}

TEST_P(SolverTest, StatisticsFromOutputUnitJacobiansMatchOracles) {
  expect_statistics_from_unit_jacobians(f_, *loss_);
}

TEST(SolverEdgeCases, StatisticsFromOutputUnitJacobiansOfAConvNetMatchOracles) {
  auto f = load_fixture("conv_ce", 6);  // Conv2d blocks: patches as tokens
  expect_statistics_from_unit_jacobians(f, *mvp::make_loss(loss_name(f.loss)));
}

TEST_P(SolverTest, SfWoodburyEqualsParameterSpaceSolve) {
  const auto Jh = sampled_rows(f_, state_->sampled_logit_grad());
  const double K = 2;
  for (double lambda : {1e-3, 0.1, 10.0}) {
    const auto direct =
        at::linalg_solve(torch::mm(Jh.t(), Jh) / K + lambda * eye(), g_.unsqueeze(1), true).squeeze(1);
    EXPECT_LT(rel_err(direction("sf", lambda), direct), 1e-8) << "λ = " << lambda;
  }
  // λ = 0: the λ → 0⁺ limit of the direction, the part of g outside the sampled span.
  const auto proj = torch::mm(Jh.t(), torch::mm(at::linalg_pinv(torch::mm(Jh, Jh.t()), 1e-15, false), Jh));
  const auto limit = g_ - torch::mv(proj, g_);
  const auto d0 = solvers::make_method("sf", options_)->direction(*state_, 0.0);
  EXPECT_EQ(d0.status, solvers::SolveStatus::kLimit);
  EXPECT_LT(rel_err(d0.d, limit), 1e-8);
  // ... and γ is continuous there.
  EXPECT_NEAR(gamma(direction("sf", 1e-10)), gamma(d0.d), 1e-6 * gamma(d0.d));
}

TEST_P(SolverTest, NgDenseEqualsPseudoInverseOfOracleFisher) {
  for (double lambda : {1e-2, 1.0}) {
    const auto direct = at::linalg_solve(F_ + lambda * eye(), g_.unsqueeze(1), true).squeeze(1);
    EXPECT_LT(rel_err(direction("ng-dense", lambda), direct), 1e-8) << "λ = " << lambda;
  }
  const auto pinv = torch::mv(at::linalg_pinv(F_, 1e-12, true), g_);
  EXPECT_LT(rel_err(direction("ng-dense", 0.0), pinv), 1e-6);
}

TEST_P(SolverTest, CgConvergesToNgDense) {
  options_.cg.max_iter = 1000;
  options_.cg.rtol = 1e-11;
  for (double lambda : {1e-3, 1.0}) {
    const auto cg = solvers::make_method("ng-cg", options_)->direction(*state_, lambda);
    EXPECT_EQ(cg.status, solvers::SolveStatus::kExact) << "λ = " << lambda << " residual " << cg.residual;
    EXPECT_LT(rel_err(cg.d, direction("ng-dense", lambda)), 1e-6) << "λ = " << lambda;
    ASSERT_FALSE(cg.residual_history.empty());
    EXPECT_EQ(cg.residual_history.front(), 1.0);
    EXPECT_LE(cg.residual_history.back(), 1e-11);
  }
}

TEST_P(SolverTest, CgAtZeroDampingReachesTheNaturalGradient) {
  // λ = 0: F is singular (g lies in its range) and often badly conditioned, so CG in
  // floating point may stall before a tight tolerance; when it converges it is F⁺g, and
  // either way its γ approaches the optimum γ(F⁺g).
  options_.cg.max_iter = 1000;
  options_.cg.rtol = 1e-10;
  const auto cg = solvers::make_method("ng-cg", options_)->direction(*state_, 0.0);
  const auto dense = direction("ng-dense", 0.0);
  if (cg.status == solvers::SolveStatus::kExact) {
    EXPECT_LT(rel_err(cg.d, dense), 1e-5);
  } else {
    EXPECT_EQ(cg.iterations, 1000);
  }
  EXPECT_LT(gamma(cg.d) / gamma(dense) - 1.0, 1e-2);
}

TEST_P(SolverTest, NaturalGradientMinimisesGamma) {
  const double best = gamma(direction("ng-dense", 0.0));
  // Every method without layer taps (the fixtures' Gram and Fisher-product methods) but the dense Fisher.
  for (const auto& m : registered_methods(0, kNeedsLayerTaps | kNeedsDenseFisher)) {
    for (double lambda : {0.0, 1e-3, 1.0}) {
      EXPECT_GE(gamma(direction(m, lambda)), best * (1 - 1e-9)) << m << " λ = " << lambda;
    }
  }
  for (int i = 0; i < 20; ++i) EXPECT_GE(gamma(torch::randn_like(g_)), best * (1 - 1e-9));
  // The optimum's value: γ_min² = 1 / (gᵀ F⁺ g).
  const double gFg = g_.dot(torch::mv(at::linalg_pinv(F_, 1e-12, true), g_)).item<double>();
  EXPECT_NEAR(best, 1.0 / std::sqrt(gFg), 1e-6 * best);
}

TEST_P(SolverTest, GammaIsInvariantToTheScaleOfD) {
  const auto d = direction("ief", 1e-3);
  const double q = d.dot(torch::mv(F_, d)).item<double>();
  const double base = indicator(d, g_, q).gamma;
  for (double c : {-3.7, 1e-3, 250.0}) {
    EXPECT_NEAR(indicator(c * d, g_, c * c * q).gamma, base, 1e-12 * base) << "c = " << c;
  }
  // and matches the definition with fisheval's own Fisher product
  EXPECT_NEAR(indicator(d, g_, state_->fisher().quad(d)).gamma, base, 1e-9 * base);
}

TEST_P(SolverTest, EveryFormOfADirectionScoresTheSame) {
  // d itself, sample-space weights (d = Jᵀx + Ĵᵀy) and layer blocks in a basis (the Kronecker and
  // Shampoo families) give the oracle's dᵀFd, dᵀg and ‖d‖; materialise() gives direction().
  std::vector<solvers::Direction> cheap, plain;
  // Every registered method but the exact references (their direction is F's own solve).
  for (const auto& m : registered_methods(0, 0, {"kfac-exact", "fishy-classifier"})) {
    if (solvers::method_info(m).reference) continue;
    for (double lambda : {0.0, 1e-2}) {
      auto method = solvers::make_method(m, options_);
      cheap.push_back(method->weights_only(*state_, lambda));
      plain.push_back(method->direction(*state_, lambda));
      ASSERT_TRUE(plain.back().d.defined()) << m;
      EXPECT_LT(rel_err(solvers::materialise(*state_, cheap.back()), plain.back().d), 1e-10) << m << " λ = " << lambda;
    }
  }
  solvers::Direction random;
  random.d = torch::randn_like(g_);
  cheap.push_back(random);
  plain.push_back(random);
  // Blocks: back-rotated per direction, taps rotated into each basis, back-rotated and paired
  // with the layer's per-sample Jacobian, and the automatic choice.
  std::vector<at::Tensor> q_blocks;
  for (auto how : {solvers::BlockProducts::kDirect, solvers::BlockProducts::kRotated, solvers::BlockProducts::kJacobian,
                   solvers::BlockProducts::kAuto}) {
    state_->set_block_products(how);
    q_blocks.push_back(solvers::fisher_quad(*state_, cheap));
  }
  const auto q_plain = solvers::fisher_quad(*state_, plain);
  for (size_t k = 0; k < cheap.size(); ++k) {
    const auto& d = plain[k].d;
    const double expected = d.dot(torch::mv(F_, d)).item<double>();
    for (size_t i = 0; i < q_blocks.size(); ++i) {
      EXPECT_NEAR(q_blocks[i][k].item<double>(), expected, 1e-9 * std::abs(expected)) << "direction " << k << " way " << i;
    }
    EXPECT_NEAR(q_plain[k].item<double>(), expected, 1e-9 * std::abs(expected)) << "direction " << k;
    const auto [dg, dd] = solvers::products(*state_, cheap[k]);
    EXPECT_NEAR(dg, d.dot(g_).item<double>(), 1e-9 * std::abs(d.dot(g_).item<double>())) << "direction " << k;
    EXPECT_NEAR(dd, d.dot(d).item<double>(), 1e-9 * d.dot(d).item<double>()) << "direction " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SolverTest,
                         testing::Values("mlp_tanh_ce", "mlp_tanh_mse", "seq_ce", "lora_ce", "mlp_tanh_bce"),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(SolverEdgeCases, SymmetricEighIsTheEigendecompositionAndKeepsTheThreadCount) {
  // Small matrices run on one thread inside symmetric_eigh; the thread count is restored
  // afterwards, also when the decomposition throws.
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  for (int64_t n : {5, 64, 200}) {  // below and above kSmallMatrix
    const auto M = torch::randn({n, n}, torch::kDouble);
    const auto S = 0.5 * (M + M.t());
    const auto [values, vectors] = solvers::symmetric_eigh(M);
    EXPECT_EQ(at::get_num_threads(), 2) << n;
    EXPECT_LT(rel_err(torch::mm(vectors * values.unsqueeze(0), vectors.t()), S), kTol) << n;
    EXPECT_LT(rel_err(torch::mm(vectors.t(), vectors), torch::eye(n, torch::kDouble)), kTol) << n;
    EXPECT_LT(rel_err(values, std::get<0>(at::linalg_eigh(S))), kTol) << n;
  }
  EXPECT_ANY_THROW(solvers::symmetric_eigh(torch::randn({3, 4}, torch::kDouble)));
  EXPECT_EQ(at::get_num_threads(), 2);
  at::set_num_threads(before);
}

TEST(SolverEdgeCases, DuplicateSamplesMakeTheGramSingular) {
  auto f = load_fixture("mlp_tanh_ce", 4);
  // Batch with sample 0 twice: C has rank N − 1.
  auto idx = torch::tensor({0, 1, 2, 0}, torch::kLong);
  f.batch.inputs = f.batch.inputs.index_select(0, idx);
  f.batch.targets = f.batch.targets.index_select(0, idx);
  const auto loss = mvp::make_loss("cross-entropy");
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
  solvers::BatchState state(lin, *loss, f.batch.targets, {});
  solvers::MethodOptions options;
  const auto d0 = solvers::make_method("ief", options)->direction(state, 0.0);
  EXPECT_EQ(d0.status, solvers::SolveStatus::kPseudoInverse);
  // The pseudo-inverse is the λ → 0⁺ limit.
  const auto tiny = solvers::make_method("ief", options)->direction(state, 1e-9);
  EXPECT_LT(rel_err(d0.d, tiny.d), 1e-5);
  // With the duplicate filter on, the duplicate is dropped and the solve is exact.
  solvers::BatchState dedup(lin, *loss, f.batch.targets, {.mc_samples = 1, .seed = 0, .dedup_cosine = 0.95});
  EXPECT_EQ(dedup.kept().numel(), 3);
  EXPECT_EQ(solvers::make_method("ief", options)->direction(dedup, 0.0).status, solvers::SolveStatus::kExact);
  // --singular error refuses with a clear message.
  options.singular = solvers::SingularPolicy::kError;
  try {
    solvers::make_method("ief", options)->direction(state, 0.0);
    FAIL() << "singular system accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("singular at damping 0"), std::string::npos) << e.what();
  }
}

TEST(SolverEdgeCases, RelativeDampingUsesTheLargestPerSampleGradientNorm) {
  auto f = load_fixture("mlp_tanh_ce", 6);
  const auto loss = mvp::make_loss("cross-entropy");
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
  solvers::BatchState state(lin, *loss, f.batch.targets, {.mc_samples = 3, .seed = 5, .dedup_cosine = 0.0});
  const auto J = oracle::per_sample_grads(*f.model, f.params, f.batch, true);
  EXPECT_DOUBLE_EQ(solvers::damping_scale(solvers::DampingMode::kAbsolute, solvers::DampingReference::kPerSample, state), 1.0);
  EXPECT_NEAR(solvers::damping_scale(solvers::DampingMode::kRelative, solvers::DampingReference::kPerSample, state),
              J.square().sum(1).max().item<double>(), 1e-10);
  EXPECT_NEAR(solvers::damping_scale(solvers::DampingMode::kRelative, solvers::DampingReference::kSampled, state),
              state.sampled_gram().diagonal().max().item<double>(), 0);
}

TEST(GramSolve, CholeskyOnWellConditionedEigenOnSingular) {
  const auto A = torch::randn({6, 4}, torch::kDouble);
  const auto C = torch::mm(A, A.t());  // rank 4 of 6
  const auto b = torch::mv(C, torch::randn({6}, torch::kDouble));
  const auto exact = solvers::solve_damped_gram(C, {}, 0.5, b, solvers::SingularPolicy::kError, "test");
  EXPECT_EQ(exact.status, solvers::SolveStatus::kExact);
  EXPECT_LT(rel_err(torch::mv(C + 0.5 * torch::eye(6, torch::kDouble), exact.x), b), 1e-12);
  const auto pinv = solvers::solve_damped_gram(C, {}, 0.0, b, solvers::SingularPolicy::kPseudoInverse, "test");
  EXPECT_EQ(pinv.status, solvers::SolveStatus::kPseudoInverse);
  EXPECT_EQ(pinv.rank, 4);
  EXPECT_LT(rel_err(pinv.x, torch::mv(at::linalg_pinv(C, 1e-12, true), b)), 1e-9);
  const auto w = torch::rand({6}, torch::kDouble) + 0.5;
  const auto weighted = solvers::solve_damped_gram(C, w, 0.3, b, solvers::SingularPolicy::kError, "test");
  EXPECT_LT(rel_err(torch::mv(C + 0.3 * torch::diag(w), weighted.x), b), 1e-12);
}

TEST(ConjugateGradient, MatchesDenseSolvesAndFindsTheMinimumNormSolution) {
  const auto A = torch::randn({30, 12}, torch::kDouble);
  const auto spd = torch::mm(A.t(), A) + 0.1 * torch::eye(12, torch::kDouble);
  const auto b = torch::randn({12}, torch::kDouble);
  const auto apply = [&](const at::Tensor& v) { return torch::mv(spd, v); };
  const auto r = solvers::conjugate_gradient(apply, b, {200, 1e-13});
  EXPECT_TRUE(r.converged);
  EXPECT_LT(rel_err(r.x, at::linalg_solve(spd, b.unsqueeze(1), true).squeeze(1)), 1e-10);
  // Singular but consistent: CG from 0 gives the minimum-norm solution.
  const auto B = torch::randn({12, 5}, torch::kDouble);
  const auto sing = torch::mm(B, B.t());
  const auto rhs = torch::mv(sing, torch::randn({12}, torch::kDouble));
  const auto rs = solvers::conjugate_gradient([&](const at::Tensor& v) { return torch::mv(sing, v); }, rhs, {200, 1e-12});
  EXPECT_LT(rel_err(rs.x, torch::mv(at::linalg_pinv(sing, 1e-12, true), rhs)), 1e-8);
  // The iteration cap is reported.
  const auto capped = solvers::conjugate_gradient(apply, b, {2, 1e-13});
  EXPECT_FALSE(capped.converged);
  EXPECT_EQ(capped.iterations, 2);
  EXPECT_EQ(capped.history.size(), 3u);
}

TEST(ConjugateGradient, MultiShiftSolvesEveryShiftLikeItsOwnDenseSolve) {
  // Shifts in any order, 0 on a singular consistent system (the minimum-norm solution), the
  // others regular; one Krylov sequence for all of them.
  const auto B = torch::randn({20, 8}, torch::kDouble);
  const auto A = torch::mm(B, B.t());  // rank 8 of 20
  const auto b = torch::mv(A, torch::randn({20}, torch::kDouble));
  const std::vector<double> shifts = {1e-2, 0.0, 1.0, 1e-4, 10.0};
  int64_t products = 0;
  const auto apply = [&](const at::Tensor& v) {
    ++products;
    return torch::mv(A, v);
  };
  const auto results = solvers::multi_shift_conjugate_gradient(apply, b, shifts, {500, 1e-12});
  ASSERT_EQ(results.size(), shifts.size());
  for (size_t s = 0; s < shifts.size(); ++s) {
    const auto expected = shifts[s] > 0
                              ? at::linalg_solve(A + shifts[s] * torch::eye(20, torch::kDouble), b.unsqueeze(1), true).squeeze(1)
                              : torch::mv(at::linalg_pinv(A, 1e-12, true), b);
    EXPECT_TRUE(results[s].converged) << "shift " << shifts[s];
    EXPECT_LT(rel_err(results[s].x, expected), 1e-8) << "shift " << shifts[s];
    // The reported residual is the true one of that system.
    const auto true_res = (b - torch::mv(A, results[s].x) - shifts[s] * results[s].x).norm().item<double>() /
                          b.norm().item<double>();
    EXPECT_NEAR(results[s].relative_residual, true_res, 1e-9) << "shift " << shifts[s];
    EXPECT_EQ(results[s].history.size(), static_cast<size_t>(results[s].iterations + 1));
  }
  // Larger shifts converge in no more iterations; all share the products of the slowest.
  EXPECT_LE(results[4].iterations, results[1].iterations);
  int64_t most = 0;
  for (const auto& r : results) most = std::max(most, r.iterations);
  EXPECT_EQ(products, most);
}

TEST(NearDuplicateFilter, DropsTheSmallerOfNearParallelRows) {
  auto rows = torch::randn({5, 8}, torch::kDouble);
  rows[3] = 0.5 * rows[1] + 1e-4 * torch::randn({8}, torch::kDouble);  // near-parallel, smaller
  rows[4] = -2.0 * rows[0];                                            // anti-parallel, larger
  const auto C = torch::mm(rows, rows.t());
  const auto kept = solvers::near_duplicate_filter(C, 0.95);
  EXPECT_TRUE(torch::equal(kept, torch::tensor({1, 2, 4}, torch::kLong))) << kept;
  EXPECT_EQ(solvers::near_duplicate_filter(C, 0).numel(), 5);
}

TEST(Damping, GridsAndLists) {
  const auto grid = solvers::log_grid("1e-6:1:7");
  ASSERT_EQ(grid.size(), 7u);
  EXPECT_NEAR(grid[0], 1e-6, 1e-18);
  EXPECT_NEAR(grid[3], 1e-3, 1e-15);
  EXPECT_NEAR(grid[6], 1.0, 1e-12);
  EXPECT_EQ(solvers::parse_damping_list("0,1e-3, 2").size(), 3u);
  EXPECT_THROW(solvers::parse_damping_list("1e-3,-1"), std::exception);
  EXPECT_THROW(solvers::parse_damping_list("abc"), std::exception);
  EXPECT_THROW(solvers::log_grid("0:1:3"), std::exception);
  EXPECT_THROW(solvers::log_grid("1e-3:1"), std::exception);
  EXPECT_THROW(solvers::make_method("no-such-method", {}), std::exception);
}

TEST(Memo, ComputesOnceAndRefusesAnotherTypeForAKey) {
  solvers::Memo memo;
  int calls = 0;
  const auto make = [&] { return ++calls; };
  EXPECT_EQ(memo.get<int>("k", make), 1);
  EXPECT_EQ(memo.get<int>("k", make), 1);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(memo.contains("k"));
  EXPECT_FALSE(memo.contains("other"));
  EXPECT_THROW(memo.get<double>("k", [] { return 0.0; }), std::logic_error);
}

}  // namespace
}  // namespace fisheval::test
