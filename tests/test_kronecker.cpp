// The KFAC family (solvers/kronecker.h, solvers/methods/kronecker.cpp) against float64
// oracles: dense GGN blocks (oracle::fisher), dense EF blocks (oracle::per_sample_grads),
// dense Kronecker products (torch::kron) and dense inverses (torch::linalg). The exactness
// cases pin the scalings (A a mean, B a sum): kfac-exact is the GGN block for a single
// datum (MLPs, LoRA, both losses) and for deep linear networks with squared error at any
// N; KFAC-reduce is exact when the shared axis is reduced right before the loss, KFAC-expand
// when tokens reach the loss as samples; ekfac / iekfac are the EF / iEF blocks for one
// datum; kfac converges to kfac-exact; kfe is closer to the Fisher block than kfac.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "base/error.h"
#include "kronecker_support.h"
#include "solvers/direction_algebra.h"
#include "solvers/kronecker.h"

namespace fisheval::test {
namespace {

using solvers::kron::Statistic;
namespace kron = solvers::kron;


// fisheval's Kronecker block i, kron(B, A) in θ's row-major order.
at::Tensor library_block(KronBatch& kb, Statistic statistic, bool reduce, size_t i) {
  auto& st = *kb.state;
  const auto A = kron::input_factor(kron::augmented_inputs(st, "test")[i], reduce);
  const auto B = kron::output_factor(kron::output_grads(st, statistic, "test")[i],
                                     kron::statistic_weights(st, statistic), reduce);
  return torch::kron(B, A);
}

at::Tensor indices_of_block(KronBatch& kb, size_t i) {
  const auto& block = kron::plan(*kb.state, "test").blocks[i];
  return block_indices(*kb.f.model, kb.f.params, kb.lin->layers()[block.layer]);
}

// (M + λI)⁻¹ b by a dense solve.
at::Tensor dense_solve(const at::Tensor& M, double lambda, const at::Tensor& b) {
  const auto eye = torch::eye(M.size(0), torch::kDouble);
  return at::linalg_solve(M + lambda * eye, b.unsqueeze(1), true).squeeze(1);
}

// ---------------------------------------------------------------------------------------------
// The eigenbasis inverse.

TEST(KroneckerSolve, EqualsDenseInverseOfKroneckerPlusDamping) {
  torch::manual_seed(3);
  const auto X = torch::randn({5, 5}, torch::kDouble), Y = torch::randn({3, 3}, torch::kDouble);
  const auto A = torch::mm(X, X.t()), B = torch::mm(Y, Y.t());
  const auto G = torch::randn({3, 5}, torch::kDouble);
  const auto Ae = kron::symmetric_eigen(A), Be = kron::symmetric_eigen(B);
  for (double lambda : {1e-4, 0.3, 10.0}) {
    // A ⊗ B in column-major notation is kron(B, A) on the row-major vec(G).
    const auto dense = dense_solve(torch::kron(B, A), lambda, G.reshape({-1}));
    const auto [X1, dropped] = kron::kronecker_solve(Ae, Be, G, lambda);
    EXPECT_LT(rel_err(X1.reshape({-1}), dense), 1e-12) << "λ = " << lambda;
    EXPECT_FALSE(dropped);
  }
  // Invertible at λ = 0: the plain inverse, nothing dropped.
  const auto [X0, dropped0] = kron::kronecker_solve(Ae, Be, G, 0.0);
  EXPECT_LT(rel_err(X0.reshape({-1}), dense_solve(torch::kron(B, A), 0.0, G.reshape({-1}))), 1e-9);
  EXPECT_FALSE(dropped0);
}

TEST(KroneckerSolve, PseudoInverseAtZeroDampingForSingularFactors) {
  torch::manual_seed(4);
  const auto X = torch::randn({5, 2}, torch::kDouble), Y = torch::randn({4, 3}, torch::kDouble);
  const auto A = torch::mm(X, X.t()), B = torch::mm(Y, Y.t());  // ranks 2 and 3
  const auto G = torch::randn({4, 5}, torch::kDouble);
  const auto [X0, dropped] = kron::kronecker_solve(kron::symmetric_eigen(A), kron::symmetric_eigen(B), G, 0.0);
  const auto expected = torch::mv(at::linalg_pinv(torch::kron(B, A), 1e-10, true), G.reshape({-1}));
  EXPECT_LT(rel_err(X0.reshape({-1}), expected), 1e-8);
  EXPECT_TRUE(dropped);
  // The diagonal fallback: g/(D + λ), zero entries of D dropped at λ = 0.
  const auto D = torch::tensor({2.0, 0.0, 0.5}, torch::kDouble), g = torch::tensor({1.0, 3.0, -1.0}, torch::kDouble);
  const auto [x0, dropped_diag] = kron::diagonal_solve(D, g, 0.0);
  EXPECT_LT(rel_err(x0, torch::tensor({0.5, 0.0, -2.0}, torch::kDouble)), 1e-15);
  EXPECT_TRUE(dropped_diag);
  const auto [x1, none] = kron::diagonal_solve(D, g, 1.0);
  EXPECT_LT(rel_err(x1, torch::tensor({1.0 / 3, 3.0, -1.0 / 1.5}, torch::kDouble)), 1e-15);
  EXPECT_FALSE(none);
}

// ---------------------------------------------------------------------------------------------
// Factor scalings written out: A is a mean over samples (and tokens), B a sum.

TEST(KroneckerFactors, InputFactorOfTheFirstLayerIsTheMeanOfAugmentedInputs) {
  KronBatch kb("mlp_tanh_ce", 8);
  const auto x = kb.f.batch.inputs.get();
  const auto xa = torch::cat({x, torch::ones({8, 1}, torch::kDouble)}, 1);
  EXPECT_LT(rel_err(kron::input_factor(kron::augmented_inputs(*kb.state, "test")[0], false),
                    torch::mm(xa.t(), xa) / 8.0),
            1e-14);
}

TEST(KroneckerFactors, ExpandAveragesTokensReduceAveragesTheirMean) {
  KronBatch kb("seq_linear_mean_mse", 6);
  const auto x = kb.f.batch.inputs.get();  // [6, 4, 5], the first layer's input (no bias)
  const auto abar = kron::augmented_inputs(*kb.state, "test")[0];
  const auto flat = x.reshape({-1, 5});
  EXPECT_LT(rel_err(kron::input_factor(abar, false), torch::mm(flat.t(), flat) / 24.0), 1e-14);
  const auto m = x.mean(1);
  EXPECT_LT(rel_err(kron::input_factor(abar, true), torch::mm(m.t(), m) / 6.0), 1e-14);
  // B: expand sums b bᵀ over tokens, reduce sums over samples of (Σ_t b)(Σ_t b)ᵀ.
  const auto b = torch::randn({2, 3, 4, 2}, torch::kDouble);
  const auto w = torch::rand({2, 3}, torch::kDouble);
  auto expand = torch::zeros({2, 2}, torch::kDouble), reduce = torch::zeros({2, 2}, torch::kDouble);
  for (int s = 0; s < 2; ++s) {
    for (int n = 0; n < 3; ++n) {
      const double wsn = w[s][n].item<double>();
      for (int t = 0; t < 4; ++t) expand += wsn * torch::outer(b[s][n][t], b[s][n][t]);
      const auto bs = b[s][n].sum(0);
      reduce += wsn * torch::outer(bs, bs);
    }
  }
  EXPECT_LT(rel_err(kron::output_factor(b, w, false), expand), 1e-14);
  EXPECT_LT(rel_err(kron::output_factor(b, w, true), reduce), 1e-14);
}

TEST(KroneckerFactors, ConvInputFactorIsTheMeanOverPatches) {
  KronBatch kb("conv_ce", 3);
  namespace F = torch::nn::functional;
  // Layer 0: Conv2d(1, 3, 3, padding=1) on the model input.
  const auto patches = F::unfold(kb.f.batch.inputs.get(), F::UnfoldFuncOptions({3, 3}).padding(1)).transpose(1, 2);
  const auto flat = torch::cat({patches.reshape({-1, 9}), torch::ones({patches.size(0) * patches.size(1), 1},
                                                                       torch::kDouble)},
                               1);
  EXPECT_EQ(kron::plan(*kb.state, "test").blocks[0].layer, 0u);
  EXPECT_LT(rel_err(kron::input_factor(kron::augmented_inputs(*kb.state, "test")[0], false),
                    torch::mm(flat.t(), flat) / double(flat.size(0))),
            1e-14);
}

// ---------------------------------------------------------------------------------------------
// Exactness against the dense GGN / EF blocks.

class SingleDatum : public testing::TestWithParam<std::string> {};

TEST_P(SingleDatum, KfacExactIsTheGgnBlock) {
  KronBatch kb(GetParam(), 1);
  const auto F = oracle::fisher(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto& plan = kron::plan(*kb.state, "test");
  ASSERT_FALSE(plan.blocks.empty());
  EXPECT_TRUE(plan.uncovered.empty());
  const double lambda = 1e-2;
  const auto d = kb.direction("kfac-exact", lambda).d;
  for (size_t i = 0; i < plan.blocks.size(); ++i) {
    const auto idx = indices_of_block(kb, i);
    const auto Fb = sub_matrix(F, idx);
    EXPECT_LT(rel_err(library_block(kb, Statistic::kExact, false, i), Fb), kTol) << "block " << i;
    EXPECT_LT(rel_err(d.index_select(0, idx), dense_solve(Fb, lambda, g.index_select(0, idx))), 1e-9)
        << "block " << i;
  }
}

TEST_P(SingleDatum, EkfacIsTheEmpiricalFisherBlock) {
  KronBatch kb(GetParam(), 1);
  const auto J = oracle::per_sample_grads(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto EF = torch::mm(J.t(), J);
  const auto& plan = kron::plan(*kb.state, "test");
  for (size_t i = 0; i < plan.blocks.size(); ++i) {
    EXPECT_LT(rel_err(library_block(kb, Statistic::kTrue, false, i), sub_matrix(EF, indices_of_block(kb, i))), kTol)
        << "block " << i;
  }
}

TEST_P(SingleDatum, IekfacIsTheIefBlock) {
  KronBatch kb(GetParam(), 1);
  const auto J = oracle::per_sample_grads(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const double s = oracle_logit_grad(kb.f).square().sum().item<double>();
  const auto iEF = torch::mm(J.t(), J) / s;  // Jᵀ diag(1/s) J
  const auto g = J.sum(0);
  const double lambda = 1e-3;
  const auto d = kb.direction("iekfac", lambda).d;
  const auto& plan = kron::plan(*kb.state, "test");
  for (size_t i = 0; i < plan.blocks.size(); ++i) {
    const auto idx = indices_of_block(kb, i);
    EXPECT_LT(rel_err(library_block(kb, Statistic::kTrueOverS, false, i), sub_matrix(iEF, idx)), kTol)
        << "block " << i;
    EXPECT_LT(rel_err(d.index_select(0, idx), dense_solve(sub_matrix(iEF, idx), lambda, g.index_select(0, idx))),
              1e-8)
        << "block " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SingleDatum,
                         testing::Values("mlp_tanh_ce", "mlp_relu_ce", "mlp_gelu_ce", "mlp_tanh_mse", "lora_ce",
                                         "mlp_sigmoid_ce", "mlp_tanh_bce", "ae_bce"),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

void expect_kfac_exact_is_ggn(const std::string& fixture, int64_t n, bool reduce, bool exact) {
  KronBatch kb(fixture, n);
  const auto F = oracle::fisher(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto& plan = kron::plan(*kb.state, "test");
  ASSERT_EQ(plan.blocks.size(), 3u);
  for (size_t i = 0; i < plan.blocks.size(); ++i) {
    const double err = rel_err(library_block(kb, Statistic::kExact, reduce, i), sub_matrix(F, indices_of_block(kb, i)));
    if (exact) {
      EXPECT_LT(err, kTol) << fixture << " block " << i << (reduce ? " reduce" : " expand");
    } else {
      EXPECT_GT(err, 1e-3) << fixture << " block " << i << (reduce ? " reduce" : " expand");
    }
  }
}

TEST(KfacExact, DeepLinearSquaredErrorIsExactAtAnyBatchSize) {
  expect_kfac_exact_is_ggn("deep_linear_mse", 8, false, true);
  expect_kfac_exact_is_ggn("deep_linear_mse", 8, true, true);  // T = 1: reduce is expand
}

TEST(KfacExact, ReduceIsExactWhenTheSharedAxisIsReducedBeforeTheLoss) {
  for (const auto* fixture : {"seq_linear_mean_mse", "seq_linear_sum_mse"}) {
    expect_kfac_exact_is_ggn(fixture, 6, true, true);
    expect_kfac_exact_is_ggn(fixture, 6, false, false);  // expand is not
  }
}

TEST(KfacExact, ExpandIsExactWhenTokensReachTheLossAsSamples) {
  expect_kfac_exact_is_ggn("seq_linear_expand_mse", 6, false, true);
  expect_kfac_exact_is_ggn("seq_linear_expand_mse", 6, true, false);  // reduce is not
}

TEST(Kfac, SampledConvergesToTheExactExpectation) {
  const int64_t N = 4;
  KronBatch exact("mlp_tanh_ce", N);
  const auto d_exact = exact.direction("kfac-exact", 1e-2).d;
  std::vector<double> factor_err, dir_err;
  for (int64_t K : {8, 4096}) {
    KronBatch kb("mlp_tanh_ce", N, K, 17);
    double worst = 0;
    for (size_t i = 0; i < kron::plan(*kb.state, "test").blocks.size(); ++i) {
      const auto b_sampled = kron::output_factor(kron::output_grads(*kb.state, Statistic::kSampled, "test")[i],
                                                 kron::statistic_weights(*kb.state, Statistic::kSampled), false);
      const auto b_exact = kron::output_factor(kron::output_grads(*exact.state, Statistic::kExact, "test")[i],
                                               kron::statistic_weights(*exact.state, Statistic::kExact), false);
      worst = std::max(worst, rel_err(b_sampled, b_exact));
    }
    factor_err.push_back(worst);
    dir_err.push_back(rel_err(kb.direction("kfac", 1e-2).d, d_exact));
  }
  // Monte-Carlo error ~ 1/sqrt(K·N): a few percent at K = 4096.
  EXPECT_LT(factor_err[1], 0.06);
  EXPECT_LT(factor_err[1], factor_err[0] / 5);
  EXPECT_LT(dir_err[1], 0.1);
  EXPECT_LT(dir_err[1], dir_err[0]);
}

// ---------------------------------------------------------------------------------------------
// kfe: eigenvalues re-estimated in K-FAC's eigenbasis.

struct KfeDense {
  at::Tensor Q, E;  // basis kron(U_B, U_A) and the oracle's eigenvalue estimates
};

// From the library's kfac factors (eigh in the test) and the oracle's sampled Fisher block F̂.
KfeDense kfe_dense(KronBatch& kb, size_t i, const at::Tensor& Fhat_block) {
  const auto A = kron::input_factor(kron::augmented_inputs(*kb.state, "test")[i], false);
  const auto B = kron::output_factor(kron::output_grads(*kb.state, Statistic::kSampled, "test")[i],
                                     kron::statistic_weights(*kb.state, Statistic::kSampled), false);
  const auto UA = std::get<1>(at::linalg_eigh(A, "L"));
  const auto UB = std::get<1>(at::linalg_eigh(B, "L"));
  const auto Q = torch::kron(UB, UA);
  return {Q, torch::mm(Q.t(), torch::mm(Fhat_block, Q)).diagonal()};
}

TEST(Kfe, EigenvaluesAreTheSampledFisherInTheKroneckerBasisAndCloserThanKfac) {
  const int64_t N = 8, K = 2;
  KronBatch kb("mlp_tanh_ce", N, K, 5);
  const auto rows = seeded_rows(kb.f, kb.state->sampled_logit_grad()).reshape({K * N, -1});
  const auto Fhat = torch::mm(rows.t(), rows) / double(K);  // the sampled Fisher, same draws
  const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const double lambda = 1e-3;
  const auto d = kb.direction("kfe", lambda).d;
  for (size_t i = 0; i < kron::plan(*kb.state, "test").blocks.size(); ++i) {
    const auto idx = indices_of_block(kb, i);
    const auto Fb = sub_matrix(Fhat, idx);
    const auto kfe = kfe_dense(kb, i, Fb);
    const auto dense = torch::mm(kfe.Q * kfe.E.unsqueeze(0), kfe.Q.t());
    const auto expected = torch::mv(kfe.Q, torch::mv(kfe.Q.t(), g.index_select(0, idx)) / (kfe.E + lambda));
    EXPECT_LT(rel_err(d.index_select(0, idx), expected), 1e-8) << "block " << i;
    // The best approximation of F̂ diagonal in this basis (Frobenius): at least as close as kfac.
    const auto kfac = library_block(kb, Statistic::kSampled, false, i);
    EXPECT_LE((dense - Fb).norm().item<double>(), (kfac - Fb).norm().item<double>() * (1 + 1e-12)) << "block " << i;
  }
}

TEST(Kfe, AtLeastAsCloseToTheExactFisherBlockAsKfac) {
  // kfe = P(F̂), the projection of the sampled Fisher block onto the matrices diagonal in
  // kfac's eigenbasis. P(F) is at least as close to F as kfac's A ⊗ B (which lies in that
  // set), and ‖P(F̂) − P(F)‖ ≤ ‖F̂ − F‖ → 0 as the samples grow: with K = 8192 draws per
  // datum kfe is closer to the exact block than kfac, block by block.
  const int64_t N = 8, K = 8192;
  KronBatch kb("mlp_tanh_ce", N, K, 9);
  const auto F = oracle::fisher(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto rows = seeded_rows(kb.f, kb.state->sampled_logit_grad()).reshape({K * N, -1});
  const auto Fhat = torch::mm(rows.t(), rows) / double(K);
  const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto d = kb.direction("kfe", 1e-3).d;
  for (size_t i = 0; i < kron::plan(*kb.state, "test").blocks.size(); ++i) {
    const auto idx = indices_of_block(kb, i);
    const auto Fb = sub_matrix(F, idx), Fhat_b = sub_matrix(Fhat, idx);
    const auto kfe = kfe_dense(kb, i, Fhat_b);
    const auto dense = torch::mm(kfe.Q * kfe.E.unsqueeze(0), kfe.Q.t());
    // fisheval's kfe is this P(F̂) (its direction is the dense solve with it).
    EXPECT_LT(rel_err(d.index_select(0, idx), dense_solve(dense, 1e-3, g.index_select(0, idx))), 1e-8) << i;
    const auto exact = kfe_dense(kb, i, Fb);
    const auto projected = torch::mm(exact.Q * exact.E.unsqueeze(0), exact.Q.t());  // P(F)
    const double kfac_err = (library_block(kb, Statistic::kSampled, false, i) - Fb).norm().item<double>();
    EXPECT_LE((projected - Fb).norm().item<double>(), kfac_err * (1 + 1e-12)) << "block " << i;
    EXPECT_LE((dense - projected).norm().item<double>(), (Fhat_b - Fb).norm().item<double>() * (1 + 1e-12)) << i;
    EXPECT_LE((dense - Fb).norm().item<double>(), kfac_err) << "block " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Directions: every block is the dense solve with its Kronecker matrix; parameters without
// a layer get the documented diagonal.

struct MethodStat {
  const char* method;
  Statistic statistic;
};
const MethodStat kKfacMethods[] = {{"kfac", Statistic::kSampled},
                                   {"kfac-exact", Statistic::kExact},
                                   {"ekfac", Statistic::kTrue},
                                   {"iekfac", Statistic::kTrueOverS}};

TEST(KroneckerDirections, BlocksAreDenseSolvesOfTheirKroneckerMatrices) {
  for (const auto* fixture : {"seq_ce", "conv_ce", "lora_ce"}) {
    for (bool reduce : {false, true}) {
      KronBatch kb(fixture, 5, 2, 3);
      const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
      solvers::MethodOptions options;
      options.kfac_reduce = reduce;
      for (const auto& ms : kKfacMethods) {
        for (double lambda : {1e-3, 1.0}) {
          const auto d = kb.direction(ms.method, lambda, options).d;
          for (size_t i = 0; i < kron::plan(*kb.state, "test").blocks.size(); ++i) {
            const auto idx = indices_of_block(kb, i);
            const auto expected =
                dense_solve(library_block(kb, ms.statistic, reduce, i), lambda, g.index_select(0, idx));
            EXPECT_LT(rel_err(d.index_select(0, idx), expected), 1e-8)
                << fixture << " " << ms.method << (reduce ? " reduce" : " expand") << " λ = " << lambda << " block "
                << i;
          }
        }
      }
    }
  }
}

TEST(KroneckerDirections, UncoveredParametersGetTheDiagonalOfTheSameStatistic) {
  const int64_t N = 6, K = 3;
  KronBatch kb("norm_ce", N, K, 8);
  const auto& plan = kron::plan(*kb.state, "test");
  std::vector<std::string> uncovered;
  for (int i : plan.uncovered) uncovered.push_back(kb.lin->layout().names()[i]);
  EXPECT_EQ(uncovered, (std::vector<std::string>{"gain", "norm.weight", "norm.bias"}));
  std::vector<int64_t> idx;
  const auto offsets = param_offsets(*kb.f.model, kb.f.params);
  for (const auto& name : uncovered) {
    const auto p = param_position(kb.f.params, name);
    for (int64_t j = 0; j < kb.f.model->parameter(name).numel(); ++j) idx.push_back(offsets[p] + j);
  }
  const auto u = torch::tensor(idx, torch::kLong);
  const auto J = oracle::per_sample_grads(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss).index_select(1, u);
  const auto s = oracle_logit_grad(kb.f).square().sum(1);
  const auto F = oracle::fisher(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto Jhat = seeded_rows(kb.f, kb.state->sampled_logit_grad()).index_select(2, u);  // [K, N, U]
  const auto g = J.sum(0);
  const std::map<std::string, at::Tensor> diagonals = {
      {"kfac-exact", F.diagonal().index_select(0, u)},
      {"ekfac", J.square().sum(0)},
      {"iekfac", (J.square() / s.unsqueeze(1)).sum(0)},
      {"kfac", Jhat.square().sum(at::IntArrayRef{0, 1}) / double(K)},
      {"kfe", Jhat.square().sum(at::IntArrayRef{0, 1}) / double(K)},
  };
  for (const auto& [method, D] : diagonals) {
    for (double lambda : {1e-3, 0.5}) {
      const auto d = kb.direction(method, lambda).d.index_select(0, u);
      EXPECT_LT(rel_err(d, g / (D + lambda)), 1e-9) << method << " λ = " << lambda;
    }
  }
}

TEST(KroneckerDirections, PseudoInverseAtZeroDamping) {
  KronBatch kb("mlp_tanh_ce", 1);
  const auto F = oracle::fisher(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto dir = kb.direction("kfac-exact", 0.0);
  EXPECT_EQ(dir.status, solvers::SolveStatus::kPseudoInverse);  // A = a aᵀ has rank 1
  for (size_t i = 0; i < kron::plan(*kb.state, "test").blocks.size(); ++i) {
    const auto idx = indices_of_block(kb, i);
    const auto expected = torch::mv(at::linalg_pinv(sub_matrix(F, idx), 1e-9, true), g.index_select(0, idx));
    EXPECT_LT(rel_err(dir.d.index_select(0, idx), expected), 1e-6) << "block " << i;
  }
  solvers::MethodOptions strict;
  strict.singular = solvers::SingularPolicy::kError;
  EXPECT_THROW(kb.direction("kfac-exact", 0.0, strict), Error);
  EXPECT_NO_THROW(kb.direction("kfac-exact", 1e-3, strict));
}

TEST(KroneckerDirections, DampingSweepReusesFactorsAndExpandDiffersFromReduceOnTokens) {
  KronBatch kb("seq_ce", 4, 2, 1);
  solvers::MethodOptions expand, reduce;
  reduce.kfac_reduce = true;
  for (const auto* method : {"kfac", "kfac-exact", "ekfac", "iekfac", "kfe"}) {
    auto m = solvers::make_method(method, expand);
    const auto first = m->direction(*kb.state, 1e-2).d;
    m->direction(*kb.state, 1.0);
    EXPECT_TRUE(torch::equal(m->direction(*kb.state, 1e-2).d, first)) << method;
    EXPECT_GT(rel_err(kb.direction(method, 1e-2, reduce).d, first), 1e-6) << method;
  }
  // T = 1: reduce and expand coincide.
  KronBatch mlp("mlp_tanh_ce", 4, 2, 1);
  EXPECT_LT(rel_err(mlp.direction("kfac", 1e-2, reduce).d, mlp.direction("kfac", 1e-2, expand).d), 1e-12);
}

// ---------------------------------------------------------------------------------------------
// Thin factorisations (solvers/factorisation.h): exact, so equal to the full ones.

TEST(ThinFactorisation, EigenpairsReproduceTheFactorWithOrthonormalColumns) {
  torch::manual_seed(3);
  for (const auto& [m, d] : std::vector<std::pair<int64_t, int64_t>>{{5, 17}, {1, 9}, {12, 12}}) {
    const auto Z = torch::randn({m, d}, torch::kDouble);
    const kron::FactorRows rows{Z, 0.25};
    const auto M = torch::mm(Z.t(), Z) * 0.25;
    const auto thin = kron::factor_eigen(rows, solvers::Factorisation::kThin);
    EXPECT_EQ(thin.dim, d);
    EXPECT_EQ(thin.vectors.size(1), std::min(m, d));
    EXPECT_EQ(thin.thin(), m < d);
    EXPECT_LT(rel_err(torch::mm(thin.vectors * thin.values.unsqueeze(0), thin.vectors.t()), M), 1e-12);
    EXPECT_LT(rel_err(torch::mm(thin.vectors.t(), thin.vectors), torch::eye(thin.vectors.size(1), torch::kDouble)),
              1e-12);
    const auto full = kron::factor_eigen(rows, solvers::Factorisation::kFull);
    EXPECT_FALSE(full.thin());
    // The nonzero eigenvalues agree; the full basis's others are 0 up to rounding.
    const auto top = full.values.narrow(0, d - thin.values.size(0), thin.values.size(0));
    EXPECT_LT(rel_err(thin.values, top), 1e-12);
    if (d > thin.values.size(0)) {
      EXPECT_LT(full.values.narrow(0, 0, d - thin.values.size(0)).abs().max().item<double>(),
                1e-12 * full.values.max().item<double>());
    }
  }
  // The auto choice: thin exactly when there are fewer vectors than dimensions.
  EXPECT_TRUE(kron::factor_eigen({torch::randn({3, 8}, torch::kDouble), 1.0}, solvers::Factorisation::kAuto).thin());
  EXPECT_FALSE(kron::factor_eigen({torch::randn({8, 8}, torch::kDouble), 1.0}, solvers::Factorisation::kAuto).thin());
}

TEST(ThinFactorisation, EveryKroneckerMethodEqualsTheFullOne) {
  // Tokens (expand and reduce), Conv2d patches, LoRA, the bias column, uncovered parameters;
  // λ = 0 (pseudo-inverse) and positive dampings: d itself, dᵀg and ‖d‖² from the blocks,
  // and dᵀFd from the output-unit taps, thin against full.
  for (const auto* fixture : {"seq_ce", "conv_ce", "lora_ce", "mlp_tanh_ce", "norm_ce", "mlp_tanh_mse"}) {
    for (bool reduce : {false, true}) {
      KronBatch kb(fixture, 3, 2, 5);
      solvers::MethodOptions thin, full;
      thin.kfac_reduce = full.kfac_reduce = reduce;
      thin.factorisation = solvers::Factorisation::kThin;
      full.factorisation = solvers::Factorisation::kFull;
      for (const auto* method : {"kfac", "kfac-exact", "ekfac", "iekfac", "kfe"}) {
        auto mt = solvers::make_method(method, thin), mf = solvers::make_method(method, full);
        for (double lambda : {0.0, 1e-4, 1e-1, 10.0}) {
          const auto where = fmt::format("{} {} {} λ = {}", fixture, method, reduce ? "reduce" : "expand", lambda);
          const auto bt = mt->weights_only(*kb.state, lambda), bf = mf->weights_only(*kb.state, lambda);
          EXPECT_EQ(bt.status, bf.status) << where;
          EXPECT_LT(rel_err(solvers::materialise(*kb.state, bt), solvers::materialise(*kb.state, bf)), 1e-10) << where;
          const auto [dg_t, dd_t] = solvers::products(*kb.state, bt);
          const auto [dg_f, dd_f] = solvers::products(*kb.state, bf);
          EXPECT_NEAR(dg_t, dg_f, 1e-10 * std::abs(dg_f)) << where;
          EXPECT_NEAR(dd_t, dd_f, 1e-10 * std::abs(dd_f)) << where;
          const auto q = solvers::fisher_quad(*kb.state, std::vector<solvers::Direction>{bt, bf});
          const auto q_dense = solvers::fisher_quad(*kb.state, solvers::materialise(*kb.state, bf).unsqueeze(0));
          EXPECT_NEAR(q[0].item<double>(), q_dense[0].item<double>(), 1e-10 * q_dense[0].item<double>()) << where;
          EXPECT_NEAR(q[1].item<double>(), q_dense[0].item<double>(), 1e-10 * q_dense[0].item<double>()) << where;
        }
      }
    }
  }
}

TEST(ThinFactorisation, EveryShampooMethodEqualsTheFullOne) {
  // Shampoo's S_L and S_R from their N·T rows per seed set (token kernels), thin; ε = 0 at
  // λ = 0 is the pseudo-inverse. (At λ = 0 with the default ε = 1e-12 the full basis is not
  // an oracle: its zero eigenvalues are rounding, ~1e-16·σ_max, next to a shift of 1e-12·σ_max.)
  for (const auto* fixture : {"seq_ce", "conv_ce", "lora_ce", "mlp_tanh_ce", "norm_ce", "mlp_tanh_mse"}) {
    KronBatch kb(fixture, 3, 2, 5);
    for (double epsilon : {1e-6, 0.0}) {
      solvers::MethodOptions thin, full;
      thin.shampoo_epsilon = full.shampoo_epsilon = epsilon;
      thin.factorisation = solvers::Factorisation::kThin;
      full.factorisation = solvers::Factorisation::kFull;
      for (const auto* method : {"shampoo", "fim-shampoo", "fishy"}) {
        auto mt = solvers::make_method(method, thin), mf = solvers::make_method(method, full);
        for (double lambda : {0.0, 1e-4, 1e-1, 10.0}) {
          const auto where = fmt::format("{} {} ε = {} λ = {}", fixture, method, epsilon, lambda);
          // At λ = 0 the full basis's rounding (1e-16·σ_max) is amplified by the shift ε·σ_max.
          const double tol = lambda > 0 ? 1e-10 : 1e-9;
          const auto bt = mt->weights_only(*kb.state, lambda), bf = mf->weights_only(*kb.state, lambda);
          EXPECT_EQ(bt.status, bf.status) << where;
          const auto dt = solvers::materialise(*kb.state, bt), df = solvers::materialise(*kb.state, bf);
          EXPECT_LT(rel_err(dt, df), tol) << where;
          const auto [dg_t, dd_t] = solvers::products(*kb.state, bt);
          const auto [dg_f, dd_f] = solvers::products(*kb.state, bf);
          EXPECT_NEAR(dg_t, dg_f, tol * std::abs(dg_f)) << where;
          EXPECT_NEAR(dd_t, dd_f, tol * std::abs(dd_f)) << where;
          const auto q = solvers::fisher_quad(*kb.state, std::vector<solvers::Direction>{bt});
          const auto q_dense = solvers::fisher_quad(*kb.state, df.unsqueeze(0));
          EXPECT_NEAR(q[0].item<double>(), q_dense[0].item<double>(), tol * q_dense[0].item<double>()) << where;
        }
      }
    }
  }
}

TEST(ThinFactorisation, AutoIsThinWhereTheRankBoundIsBelowTheSize) {
  // mlp_tanh_ce with N = 3: every layer has more inputs than 3 samples, so A is thin; a
  // wider batch (N·T ≥ d_in) keeps the full basis.
  KronBatch small("mlp_tanh_ce", 3);
  const auto& A = kron::input_factors(*small.state, false, solvers::Factorisation::kAuto, "test");
  for (const auto& a : A) EXPECT_EQ(a.thin(), a.dim > 3) << a.dim;
  EXPECT_TRUE(A[0].thin());
}

// ---------------------------------------------------------------------------------------------
// Every model of the fixtures, and a checkpoint without taps.

TEST(KroneckerAndShampoo, EveryMethodGivesAFiniteDescentDirection) {
  // Every method that needs layer taps (the Kronecker and Shampoo families).
  const auto methods = registered_methods(kNeedsLayerTaps, 0, {"fishy-classifier"});
  for (const auto* fixture : {"conv_ce", "seq_ce", "seq_emb_ce", "lora_ce", "norm_ce", "mlp_sigmoid_ce"}) {
    KronBatch kb(fixture, 6, 2, 11);
    const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
    for (const auto& method : methods) {
      for (double lambda : {0.0, 1e-3}) {
        const auto d = kb.direction(method, lambda).d;
        ASSERT_EQ(d.sizes(), g.sizes());
        EXPECT_TRUE(torch::isfinite(d).all().item<bool>()) << fixture << " " << method << " λ = " << lambda;
        EXPECT_GT(d.dot(g).item<double>(), 0) << fixture << " " << method << " λ = " << lambda;
      }
    }
  }
}

TEST(KroneckerAndShampoo, CheckpointWithoutTapsIsAClearInputError) {
  KronBatch kb("mlp_notaps_ce", 4);
  for (const auto& method : registered_methods(kNeedsLayerTaps, 0, {"fishy-classifier"})) {
    try {
      kb.direction(method, 1e-3);
      ADD_FAILURE() << method << " ran without taps";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(method + " needs layer taps"), std::string::npos) << what;
      EXPECT_NE(what.find("0.weight"), std::string::npos) << what;
      EXPECT_NE(what.find("export_checkpoint.py"), std::string::npos) << what;
    }
  }
  // Every other method still works on it.
  for (const auto* method : {"sgd", "ef", "ief", "sf", "ng-cg"}) {
    EXPECT_TRUE(torch::isfinite(kb.direction(method, 1e-3).d).all().item<bool>()) << method;
  }
}

}  // namespace
}  // namespace fisheval::test
