// The Shampoo family (solvers/methods/shampoo.cpp) and Fishy's local sampling
// (solvers/local_sampling.cpp) against dense float64 formulas built from the oracles'
// per-sample gradients: per layer d = L^{-p} G R^{-p} with L = Σ G_n G_nᵀ + (λ + ε σ_max) I,
// R likewise, G_n the per-sample gradient matrices [W | b]; p = 1/4 (shampoo, true labels)
// or 1/2 (fim-shampoo, sampled labels; fishy, locally sampled). Fishy with only the output
// layer sampled is fim-shampoo, exactly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "base/error.h"
#include "kronecker_support.h"
#include "solvers/kronecker.h"
#include "solvers/local_sampling.h"

namespace fisheval::test {
namespace {

namespace kron = solvers::kron;

constexpr double kEps = 1e-12;  // MethodOptions::shampoo_epsilon's default

// L^{-p} G R^{-p} from per-sample matrices Gs [M, rows, cols] with weights w [M].
at::Tensor dense_shampoo(const at::Tensor& Gs, const at::Tensor& w, const at::Tensor& G, double lambda, double p) {
  const auto Gw = Gs * w.view({-1, 1, 1});
  const auto SL = torch::matmul(Gw, Gs.transpose(1, 2)).sum(0);
  const auto SR = torch::matmul(Gw.transpose(1, 2), Gs).sum(0);
  const auto Lp = dense_inverse_power(SL, lambda + kEps * largest_eigenvalue(SL), p);
  const auto Rp = dense_inverse_power(SR, lambda + kEps * largest_eigenvalue(SR), p);
  return torch::mm(torch::mm(Lp, G), Rp);
}

struct BlockShape {
  at::Tensor idx;
  int64_t rows, cols;
};

std::vector<BlockShape> blocks_of(KronBatch& kb) {
  std::vector<BlockShape> out;
  for (const auto& b : kron::plan(*kb.state, "test").blocks) {
    out.push_back({block_indices(*kb.f.model, kb.f.params, kb.lin->layers()[b.layer]), b.rows, b.cols});
  }
  return out;
}

TEST(Shampoo, EveryLayerIsTheDenseFormula) {
  for (const auto* fixture : {"softmax_reg_ce", "mlp_tanh_mse", "conv_ce", "seq_ce", "lora_ce", "mlp_tanh_bce"}) {
    const int64_t N = 6, K = 3;
    KronBatch kb(fixture, N, K, 21);
    const auto J = oracle::per_sample_grads(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);  // [N, P]
    const auto Jhat = seeded_rows(kb.f, kb.state->sampled_logit_grad()).reshape({K * N, -1});          // [KN, P]
    const auto g = J.sum(0);
    for (double lambda : {1e-3, 0.1}) {
      const auto d_shampoo = kb.direction("shampoo", lambda).d;
      const auto d_fim = kb.direction("fim-shampoo", lambda).d;
      for (const auto& b : blocks_of(kb)) {
        const auto G = g.index_select(0, b.idx).reshape({b.rows, b.cols});
        const auto Gs = J.index_select(1, b.idx).reshape({N, b.rows, b.cols});
        const auto expected = dense_shampoo(Gs, torch::ones({N}, torch::kDouble), G, lambda, 0.25);
        EXPECT_LT(rel_err(d_shampoo.index_select(0, b.idx), expected.reshape({-1})), 1e-9)
            << fixture << " shampoo λ = " << lambda;
        const auto Ghat = Jhat.index_select(1, b.idx).reshape({K * N, b.rows, b.cols});
        const auto expected_fim = dense_shampoo(Ghat, torch::full({K * N}, 1.0 / K, torch::kDouble), G, lambda, 0.5);
        EXPECT_LT(rel_err(d_fim.index_select(0, b.idx), expected_fim.reshape({-1})), 1e-8)
            << fixture << " fim-shampoo λ = " << lambda;
      }
    }
  }
}

TEST(Shampoo, SingleLayerAtZeroDampingUsesTheRelativeEpsilon) {
  const int64_t N = 8;
  KronBatch kb("softmax_reg_ce", N);
  const auto J = oracle::per_sample_grads(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto b = blocks_of(kb).at(0);
  const auto G = J.sum(0).index_select(0, b.idx).reshape({b.rows, b.cols});
  const auto Gs = J.index_select(1, b.idx).reshape({N, b.rows, b.cols});
  const auto dir = kb.direction("shampoo", 0.0);
  EXPECT_EQ(dir.status, solvers::SolveStatus::kExact);
  EXPECT_TRUE(torch::isfinite(dir.d).all().item<bool>());
  EXPECT_LT(rel_err(dir.d.index_select(0, b.idx),
                    dense_shampoo(Gs, torch::ones({N}, torch::kDouble), G, 0.0, 0.25).reshape({-1})),
            1e-8);
  // One datum: rank-one statistics, still finite thanks to ε.
  KronBatch one("mlp_tanh_ce", 1);
  const auto d1 = one.direction("shampoo", 0.0);
  EXPECT_TRUE(torch::isfinite(d1.d).all().item<bool>());
  EXPECT_EQ(d1.status, solvers::SolveStatus::kExact);
}

TEST(Shampoo, UncoveredParametersGetAFullMatrixOfTheirOwn) {
  const int64_t N = 6, K = 2;
  KronBatch kb("norm_ce", N, K, 4);
  const auto J = oracle::per_sample_grads(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto Jhat = seeded_rows(kb.f, kb.state->sampled_logit_grad()).reshape({K * N, -1});
  const auto g = J.sum(0);
  const auto offsets = param_offsets(*kb.f.model, kb.f.params);
  const double lambda = 1e-2;
  const auto d_shampoo = kb.direction("shampoo", lambda).d;
  const auto d_fim = kb.direction("fim-shampoo", lambda).d;
  const auto d_fishy = kb.direction("fishy", lambda).d;
  for (const auto* name : {"gain", "norm.weight", "norm.bias"}) {
    const auto p = param_position(kb.f.params, name);
    const int64_t m = kb.f.model->parameter(name).numel();
    const auto v = J.narrow(1, offsets[p], m), vhat = Jhat.narrow(1, offsets[p], m);
    const auto gv = g.narrow(0, offsets[p], m);
    // shampoo: (Σ v vᵀ + (λ + ε σ_max) I)^{-1/2} g_v (exponent 2p = 1/2)
    const auto M = torch::mm(v.t(), v);
    const auto expected = torch::mv(dense_inverse_power(M, lambda + kEps * largest_eigenvalue(M), 0.5), gv);
    EXPECT_LT(rel_err(d_shampoo.narrow(0, offsets[p], m), expected), 1e-9) << name;
    // fim-shampoo and fishy: sampled rows, exponent 2p = 1
    const auto Mhat = torch::mm(vhat.t(), vhat) / double(K);
    const auto expected_fim = torch::mv(dense_inverse_power(Mhat, lambda + kEps * largest_eigenvalue(Mhat), 1.0), gv);
    EXPECT_LT(rel_err(d_fim.narrow(0, offsets[p], m), expected_fim), 1e-9) << name;
    EXPECT_LT(rel_err(d_fishy.narrow(0, offsets[p], m), expected_fim), 1e-9) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Fishy.

TEST(Fishy, WithOnlyTheOutputLayerSampledItIsFimShampoo) {
  for (int64_t K : {1, 3}) {
    KronBatch kb("softmax_reg_ce", 8, K, 7);
    for (double lambda : {0.0, 1e-3, 1.0}) {
      const auto fishy = kb.direction("fishy", lambda).d;
      const auto fim = kb.direction("fim-shampoo", lambda).d;
      EXPECT_TRUE(torch::equal(fishy, fim)) << "K = " << K << " λ = " << lambda << ": " << rel_err(fishy, fim);
    }
  }
  // A deeper model with only its output layer selected.
  KronBatch head("mlp_sigmoid_ce", 8, 2, 7, "4.*");
  ASSERT_EQ(head.f.params, (std::vector<std::string>{"4.weight", "4.bias"}));
  EXPECT_TRUE(torch::equal(head.direction("fishy", 1e-3).d, head.direction("fim-shampoo", 1e-3).d));
}

TEST(Fishy, OutputLayerAgreesWithFimShampooHiddenLayersAreSampledLocally) {
  const int64_t N = 6, K = 2;
  const uint64_t seed = 13;
  KronBatch kb("mlp_sigmoid_ce", N, K, seed);
  const auto& layers = kb.lin->layers();
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].activation, "sigmoid");
  EXPECT_EQ(layers[1].activation, "softmax");
  EXPECT_EQ(layers[2].activation, "identity");
  const double lambda = 1e-2;
  const auto fishy = kb.direction("fishy", lambda).d;
  const auto fim = kb.direction("fim-shampoo", lambda).d;
  const auto blocks = blocks_of(kb);
  EXPECT_TRUE(torch::equal(fishy.index_select(0, blocks[2].idx), fim.index_select(0, blocks[2].idx)));
  EXPECT_GT(rel_err(fishy.index_select(0, blocks[0].idx), fim.index_select(0, blocks[0].idx)), 1e-3);
  // Layer 0 (Linear(6, 5) → sigmoid) from its definition: o = x Wᵀ + b from the parameters,
  // y ~ Bernoulli(σ(o)) drawn with the layer's seed, Ĝ_kn = (σ(o_n) − y_kn) [x_n; 1]ᵀ.
  const auto x = kb.f.batch.inputs.get();
  const auto W = kb.f.model->parameter("0.weight").detach(), bias = kb.f.model->parameter("0.bias").detach();
  const auto o = torch::addmm(bias, x, W.t());
  const auto bs = solvers::local_output_grad_samples("sigmoid", o.unsqueeze(1), K, solvers::layer_seed(seed, 0));
  const auto xa = torch::cat({x, torch::ones({N, 1}, torch::kDouble)}, 1);
  const auto Gs = torch::einsum("kno,ni->knoi", {bs.squeeze(2), xa}).reshape({K * N, 5, 7});
  const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  const auto G = g.index_select(0, blocks[0].idx).reshape({5, 7});
  const auto expected = dense_shampoo(Gs, torch::full({K * N}, 1.0 / K, torch::kDouble), G, lambda, 0.5);
  EXPECT_LT(rel_err(fishy.index_select(0, blocks[0].idx), expected.reshape({-1})), 1e-9);
  // Same seed, same direction.
  EXPECT_TRUE(torch::equal(KronBatch("mlp_sigmoid_ce", N, K, seed).direction("fishy", lambda).d, fishy));
}

// The Fishy classifier: local sampling in the final fully connected layers only; the
// convolutions below inherit the first of them's draws, backpropagated.
TEST(FishyClassifier, ConvolutionsInheritTheFirstFullyConnectedLayersDraws) {
  const int64_t N = 5, K = 2;
  const uint64_t seed = 17;
  KronBatch kb("conv_fc_ce", N, K, seed);
  const auto& layers = kb.lin->layers();
  ASSERT_EQ(layers.size(), 4u);
  ASSERT_EQ(layers[0].kind, LayerKind::kConv2d);
  ASSERT_EQ(layers[1].kind, LayerKind::kConv2d);
  ASSERT_EQ(layers[2].kind, LayerKind::kLinear);
  ASSERT_EQ(layers[2].activation, "tanh");
  const double lambda = 1e-2;
  const auto classifier = kb.direction("fishy-classifier", lambda).d;
  const auto fishy = kb.direction("fishy", lambda).d;
  const auto blocks = blocks_of(kb);
  ASSERT_EQ(blocks.size(), 4u);
  // The fully connected layers sample as in fishy (same draws).
  for (size_t i : {2u, 3u}) {
    EXPECT_TRUE(torch::equal(classifier.index_select(0, blocks[i].idx), fishy.index_select(0, blocks[i].idx))) << i;
  }
  // The convolutions from their definition, with plain autograd one sample at a time:
  // Ĝ_kn = ∂⟨v_kn, o_fc(x_n)⟩/∂[W | b] with v the fc layer's local draws (tanh: y ∈ {±1}).
  const auto v = solvers::local_output_grad_samples("tanh", kb.lin->layer_output_tokens(2), K,
                                                    solvers::layer_seed(seed, 2));  // [K, N, 1, 5]
  const auto g = oracle::gradient(*kb.f.model, kb.f.params, kb.f.batch, kb.f.loss);
  for (size_t c : {0u, 1u}) {
    const auto weight = kb.f.model->parameter(layers[c].weight), bias = kb.f.model->parameter(layers[c].bias);
    std::vector<at::Tensor> Gs;
    for (int64_t n = 0; n < N; ++n) {
      kb.f.model->forward(kb.f.batch.inputs.narrow(0, n, 1));
      const auto o = kb.f.model->taps()[2].output;  // [1, 5]
      for (int64_t k = 0; k < K; ++k) {
        const auto dot = (o.reshape({-1}) * v[k][n].reshape({-1})).sum();
        const auto gr = torch::autograd::grad({dot}, {weight, bias}, {}, /*retain_graph=*/true);
        Gs.push_back(torch::cat({gr[0].reshape({weight.size(0), -1}), gr[1].unsqueeze(1)}, 1));
      }
    }
    const auto G = g.index_select(0, blocks[c].idx).reshape({blocks[c].rows, blocks[c].cols});
    const auto expected =
        dense_shampoo(torch::stack(Gs), torch::full({K * N}, 1.0 / K, torch::kDouble), G, lambda, 0.5);
    EXPECT_LT(rel_err(classifier.index_select(0, blocks[c].idx), expected.reshape({-1})), 1e-9) << layers[c].name;
    EXPECT_GT(rel_err(classifier.index_select(0, blocks[c].idx), fishy.index_select(0, blocks[c].idx)), 1e-3);
  }
}

TEST(FishyClassifier, OutputLayerAloneIsFimShampooAndEveryLayerIsFishy) {
  KronBatch kb("conv_fc_ce", 6, 2, 3);
  const auto& layers = kb.lin->layers();
  solvers::MethodOptions output_only, every;
  output_only.local_layers = {layers.back().name};
  for (const auto& l : layers) every.local_layers.push_back(l.name);
  EXPECT_TRUE(torch::equal(kb.direction("fishy-classifier", 1e-3, output_only).d, kb.direction("fim-shampoo", 1e-3).d));
  EXPECT_TRUE(torch::equal(kb.direction("fishy-classifier", 1e-3, every).d, kb.direction("fishy", 1e-3).d));
  // Without convolutions the final fully connected layers are all of them: fishy.
  KronBatch mlp("mlp_sigmoid_ce", 6, 2, 3);
  EXPECT_TRUE(torch::equal(mlp.direction("fishy-classifier", 1e-3).d, mlp.direction("fishy", 1e-3).d));
  solvers::MethodOptions unknown;
  unknown.local_layers = {"no.such.layer"};
  EXPECT_THROW(kb.direction("fishy-classifier", 1e-3, unknown), InputError);
}

TEST(LocalSampling, ZeroMeanAndTheExponentialFamilysCovariance) {
  torch::manual_seed(2);
  const auto o = torch::randn({2, 1, 3}, torch::kDouble);
  const int64_t K = 200000;
  const auto flat = o.reshape({2, 3});
  const auto sig = torch::sigmoid(flat), th = torch::tanh(flat), p = torch::softmax(flat, -1);
  const std::map<std::string, at::Tensor> covariances = {
      {"identity", torch::eye(3, torch::kDouble).expand({2, 3, 3})},
      {"relu", torch::eye(3, torch::kDouble).expand({2, 3, 3})},
      {"gelu", torch::eye(3, torch::kDouble).expand({2, 3, 3})},
      {"sigmoid", torch::diag_embed(sig * (1 - sig))},
      {"tanh", torch::diag_embed(1 - th.square())},
      {"softmax", torch::diag_embed(p) - torch::einsum("ni,nj->nij", {p, p})},
  };
  for (const auto& [activation, cov] : covariances) {
    const auto s = solvers::local_output_grad_samples(activation, o, K, 99);
    ASSERT_EQ(s.sizes(), (std::vector<int64_t>{K, 2, 1, 3}));
    const auto x = s.reshape({K, 2, 3});
    // 6 standard errors (the variances are at most 1).
    EXPECT_LT(x.mean(0).abs().max().item<double>(), 6.0 / std::sqrt(double(K))) << activation;
    const auto emp = torch::einsum("kni,knj->nij", {x, x}) / double(K);
    EXPECT_LT((emp - cov).abs().max().item<double>(), 6.0 * std::sqrt(2.0 / K)) << activation;
    // The support: ±1 − tanh for tanh, {0,1} − σ for sigmoid, one-hot − p for softmax.
    if (activation == "tanh") {
      const auto y = th.unsqueeze(0) - x;
      EXPECT_TRUE(y.abs().sub(1).abs().lt(1e-12).all().item<bool>());
    }
    if (activation == "softmax") EXPECT_LT((x.sum(-1)).abs().max().item<double>(), 1e-12);
    EXPECT_TRUE(torch::equal(solvers::local_output_grad_samples(activation, o, 3, 5),
                             solvers::local_output_grad_samples(activation, o, 3, 5)));
    EXPECT_FALSE(torch::equal(solvers::local_output_grad_samples(activation, o, 3, 5),
                              solvers::local_output_grad_samples(activation, o, 3, 6)));
  }
  EXPECT_NE(solvers::layer_seed(1, 0), solvers::layer_seed(1, 1));
  EXPECT_NE(solvers::layer_seed(1, 0), solvers::layer_seed(2, 0));
}

}  // namespace
}  // namespace fisheval::test
