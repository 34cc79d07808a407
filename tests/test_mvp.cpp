// mvp/ products against the float64 oracles of support.cpp, on every fixture model:
// MLPs (tanh, relu, gelu; both losses), a transformer-like model with sequence outputs
// and ignored tokens, a CNN, LoRA, a model with untapped parameters, and the modules
// PyTorch 2.x users write (MultiheadAttention, TransformerEncoderLayer also frozen on its
// fused path, scaled_dot_product_attention, tied weights, a torch.compile'd model).
// Relative error ≤ 1e-10 in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "base/error.h"
#include "mvp/dense.h"
#include "mvp/fisher.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "support.h"

namespace fisheval::test {
namespace {


struct Case {
  std::string fixture;
  mvp::PerSampleEngine engine;
  mvp::JvpEngine jvp;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture; }

std::string case_name(const testing::TestParamInfo<Case>& info) {
  std::string name = info.param.fixture + "_" +
                     (info.param.engine == mvp::PerSampleEngine::kTaps   ? "taps"
                      : info.param.engine == mvp::PerSampleEngine::kLoop ? "loop"
                                                                         : "auto") +
                     (info.param.jvp == mvp::JvpEngine::kDoubleBackward ? "_dbl" : "");
  return name;
}

class MvpTest : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    f_ = load_fixture(GetParam().fixture, 8);
    loss_ = mvp::make_loss(loss_name(f_.loss));
    lin_ = std::make_unique<mvp::Linearisation>(*f_.model, f_.params, f_.batch.inputs,
                                                mvp::LinearisationOptions{GetParam().engine, GetParam().jvp});
  }
  at::Tensor r() { return loss_->logit_grad(lin_->logits(), f_.batch.targets); }

  Fixture f_;
  std::unique_ptr<mvp::Loss> loss_;
  std::unique_ptr<mvp::Linearisation> lin_;
};

TEST_P(MvpTest, PerSampleGradientsMatchOracle) {
  const auto J = oracle::per_sample_grads(*f_.model, f_.params, f_.batch, f_.loss);
  EXPECT_LT(rel_err(lin_->per_sample(r()), J), kTol);
}

TEST_P(MvpTest, GramMatchesOracle) {
  const auto J = oracle::per_sample_grads(*f_.model, f_.params, f_.batch, f_.loss);
  EXPECT_LT(rel_err(lin_->gram(r(), r()), torch::mm(J, J.t())), kTol);
  // Two different seed sets (a cross-Gram with a leading seed axis of 2).
  const auto u = torch::randn({2, lin_->logits().size(0)}, torch::kDouble);
  std::vector<int64_t> shape{2};
  for (auto s : lin_->logits().sizes()) shape.push_back(s);
  const auto seeds = torch::randn(shape, torch::kDouble);
  const auto rows = lin_->per_sample(seeds);
  EXPECT_LT(rel_err(lin_->gram(seeds, r()), torch::mm(rows, J.t())), kTol);
}

TEST_P(MvpTest, VjpIsTheGradient) {
  const auto g = oracle::gradient(*f_.model, f_.params, f_.batch, f_.loss);
  EXPECT_LT(rel_err(lin_->vjp(r()), g), kTol);
}

TEST_P(MvpTest, JvpMatchesOracleJacobian) {
  const auto Jz = oracle::logit_jacobian(*f_.model, f_.params, f_.batch.inputs);  // [N, Z, P]
  const auto v = torch::randn({Jz.size(2)}, torch::kDouble);
  const auto expected = torch::matmul(Jz, v).reshape(lin_->logits().sizes());
  EXPECT_LT(rel_err(lin_->jvp(v), expected), kTol);
}

TEST_P(MvpTest, JvpManyMatchesOracleJacobian) {
  // Whichever route jvp_many takes (taps and output-unit gradients, or one JVP per row).
  const auto Jz = oracle::logit_jacobian(*f_.model, f_.params, f_.batch.inputs);  // [N, Z, P]
  const auto D = torch::randn({5, Jz.size(2)}, torch::kDouble);
  std::vector<int64_t> shape{5};
  for (auto s : lin_->logits().sizes()) shape.push_back(s);
  const auto expected = torch::einsum("nzp,kp->knz", {Jz, D}).reshape(shape);
  EXPECT_LT(rel_err(lin_->jvp_many(D), expected), kTol);
}

class TapsTest : public MvpTest {};

TEST_P(TapsTest, TapsContractionsMatchOracle) {
  ASSERT_EQ(lin_->per_sample_engine(), mvp::PerSampleEngine::kTaps);
  const auto J = oracle::per_sample_grads(*f_.model, f_.params, f_.batch, f_.loss);
  const auto b = lin_->tap_grads(r());
  const auto x = torch::randn({J.size(0)}, torch::kDouble);
  EXPECT_LT(rel_err(lin_->combine(b, x), torch::mv(J.t(), x)), kTol);  // Jᵀx without a backward pass
  EXPECT_LT(rel_err(lin_->per_sample(b), J), kTol);
  EXPECT_LT(rel_err(lin_->gram(b, b), torch::mm(J, J.t())), kTol);
  // The output-unit gradients: ∂z_{n,k}/∂θ against the oracle's logit Jacobian.
  if (lin_->unit_grads_affordable()) {
    const auto Jz = oracle::logit_jacobian(*f_.model, f_.params, f_.batch.inputs);  // [N, Z, P]
    const auto rows = lin_->per_sample(lin_->unit_grads());                         // [Z·N, P], row k·N + n
    EXPECT_LT(rel_err(rows, Jz.transpose(0, 1).reshape({-1, Jz.size(2)})), kTol);
  }
}

TEST_P(TapsTest, TapsFromOutputUnitsMatchOracle) {
  // Once the output-unit taps exist, tap_grads and layer_output_grad_tokens combine them
  // (b_s = Σ_z u_{s,z} b_z) instead of running a backward pass: the same contractions
  // against the oracle, and the same layer output gradients as the backward pass gave.
  ASSERT_EQ(lin_->per_sample_engine(), mvp::PerSampleEngine::kTaps);
  if (!lin_->unit_grads_affordable()) GTEST_SKIP() << "no output-unit taps for this fixture";
  std::vector<int64_t> shape{3};
  for (auto s : lin_->logits().sizes()) shape.push_back(s);
  const auto seeds = torch::randn(shape, torch::kDouble);
  const auto by_backward = lin_->layer_output_grad_tokens(seeds);
  ASSERT_FALSE(lin_->has_unit_grads());
  lin_->unit_grads();
  ASSERT_TRUE(lin_->has_unit_grads());
  const auto by_units = lin_->layer_output_grad_tokens(seeds);
  ASSERT_EQ(by_units.size(), by_backward.size());
  for (size_t l = 0; l < by_units.size(); ++l) {
    ASSERT_EQ(by_units[l].defined(), by_backward[l].defined()) << "layer " << l;
    if (by_units[l].defined()) EXPECT_LT(rel_err(by_units[l], by_backward[l]), kTol) << "layer " << l;
  }
  const auto J = oracle::per_sample_grads(*f_.model, f_.params, f_.batch, f_.loss);
  const auto b = lin_->tap_grads(r());
  const auto x = torch::randn({J.size(0)}, torch::kDouble);
  EXPECT_LT(rel_err(lin_->per_sample(b), J), kTol);
  EXPECT_LT(rel_err(lin_->gram(b, b), torch::mm(J, J.t())), kTol);
  EXPECT_LT(rel_err(lin_->combine(b, x), torch::mv(J.t(), x)), kTol);
  const auto g = oracle::gradient(*f_.model, f_.params, f_.batch, f_.loss);
  EXPECT_LT(rel_err(lin_->combine(b, torch::ones({J.size(0)}, torch::kDouble)), g), kTol);  // g = Jᵀ1
}

TEST_P(MvpTest, FisherProductsMatchDenseOracle) {
  const auto F = oracle::fisher(*f_.model, f_.params, f_.batch, f_.loss);
  mvp::Fisher fisher(*lin_, *loss_, f_.batch.targets);
  const auto v = torch::randn({F.size(0)}, torch::kDouble);
  EXPECT_LT(rel_err(fisher.mv(v), torch::mv(F, v)), kTol);
  const double q = fisher.quad(v), q_ref = v.dot(torch::mv(F, v)).item<double>();
  EXPECT_NEAR(q, q_ref, kTol * std::abs(q_ref));
  EXPECT_LT(rel_err(mvp::dense_fisher(fisher), F), kTol);
}

TEST_P(MvpTest, LogitsAreTheModelOutput) {
  torch::NoGradGuard ng;
  EXPECT_LT(rel_err(lin_->logits(), f_.model->forward(f_.batch.inputs)), 1e-14);
}

const std::vector<Case> kCases = {
    {"mlp_tanh_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kForward},
    {"mlp_tanh_ce", mvp::PerSampleEngine::kLoop, mvp::JvpEngine::kDoubleBackward},
    {"mlp_relu_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"mlp_gelu_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"mlp_tanh_mse", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto},
    {"mlp_tanh_mse", mvp::PerSampleEngine::kLoop, mvp::JvpEngine::kDoubleBackward},
    {"mlp_tanh_bce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kForward},
    {"mlp_tanh_bce", mvp::PerSampleEngine::kLoop, mvp::JvpEngine::kDoubleBackward},
    {"ae_bce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"deep_linear_mse", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"seq_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kForward},
    {"seq_ce", mvp::PerSampleEngine::kLoop, mvp::JvpEngine::kDoubleBackward},
    {"seq_emb_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"conv_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto},
    {"conv_ce", mvp::PerSampleEngine::kLoop, mvp::JvpEngine::kAuto},
    {"lora_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto},
    {"norm_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kForward},
    // Modules PyTorch 2.x users write (tests/fixtures/make_fixtures.py, PYTORCH2_MODELS).
    {"mha_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"encoder_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"encoder_frozen_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"encoder_frozen_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kDoubleBackward},
    {"sdpa_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kForward},
    {"sdpa_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kDoubleBackward},
    {"tied_lm_ce", mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kAuto},
    {"compiled_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kForward},
};
INSTANTIATE_TEST_SUITE_P(Fixtures, MvpTest, testing::ValuesIn(kCases), case_name);

const std::vector<Case> kTapsCases = {
    {"mlp_tanh_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto},
    {"mlp_tanh_mse", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto},
    {"mlp_tanh_bce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kTaps},
    {"seq_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kTaps},
    {"conv_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kTaps},
    {"lora_ce", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto},
    {"deep_linear_mse", mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto},
};
INSTANTIATE_TEST_SUITE_P(Fixtures, TapsTest, testing::ValuesIn(kTapsCases), case_name);

TEST(Linearisation, AutoChoosesTapsOnlyWhenEveryParameterIsCovered) {
  auto covered = load_fixture("lora_ce", 4);
  mvp::Linearisation a(*covered.model, covered.params, covered.batch.inputs);
  EXPECT_EQ(a.per_sample_engine(), mvp::PerSampleEngine::kTaps);
  auto uncovered = load_fixture("norm_ce", 4);
  mvp::Linearisation b(*uncovered.model, uncovered.params, uncovered.batch.inputs);
  EXPECT_EQ(b.per_sample_engine(), mvp::PerSampleEngine::kLoop);
  EXPECT_THROW(mvp::Linearisation(*uncovered.model, uncovered.params, uncovered.batch.inputs,
                                  {mvp::PerSampleEngine::kTaps, mvp::JvpEngine::kAuto}),
               std::exception);
}

TEST(Linearisation, JvpAgreesWithCentralDifferences) {
  // Independent of autograd altogether: (f(θ + εv) − f(θ − εv)) / 2ε.
  auto f = load_fixture("seq_ce", 6);
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
  const auto v = torch::randn({lin.layout().size()}, torch::kDouble);
  const auto jv = lin.jvp(v);
  const double eps = 1e-6;
  std::vector<at::Tensor> originals;
  for (const auto& p : f.params) originals.push_back(f.model->parameter(p));
  const auto parts = lin.layout().split(v);
  auto shifted = [&](double s) {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < f.params.size(); ++i) f.model->set_parameter(f.params[i], originals[i].detach() + s * parts[i]);
    auto z = f.model->forward(f.batch.inputs);
    for (size_t i = 0; i < f.params.size(); ++i) f.model->set_parameter(f.params[i], originals[i]);
    return z;
  };
  const auto fd = (shifted(eps) - shifted(-eps)) / (2 * eps);
  EXPECT_LT(rel_err(jv, fd), 1e-7);
}

// ---------------------------------------------------------------------------------------------
// Losses against autograd of torch's own losses.

class LossTest : public testing::TestWithParam<std::string> {};

TEST_P(LossTest, DerivativesMatchAutograd) {
  auto f = load_fixture(GetParam(), 6);
  const auto loss = mvp::make_loss(loss_name(f.loss));
  at::Tensor z;
  {
    torch::NoGradGuard ng;
    z = f.model->forward(f.batch.inputs);
  }
  const auto& y = f.batch.targets;
  EXPECT_LT(rel_err(loss->per_sample(z, y), oracle::per_sample_loss(z, y, f.loss)), 1e-13);
  // ∇_z l
  auto zg = z.clone().requires_grad_(true);
  const auto g = torch::autograd::grad({oracle::per_sample_loss(zg, y, f.loss).sum()}, {zg})[0];
  EXPECT_LT(rel_err(loss->logit_grad(z, y), g), 1e-13);
  // H v and S Sᵀ = H, per sample (the oracle Hessian is over all of a sample's outputs).
  const auto H = oracle::loss_hessian(z, y, f.loss);  // [N, Z, Z]
  const int64_t N = z.size(0), Z = z.numel() / N;
  const auto v = torch::randn_like(z);
  const auto Hv = torch::bmm(H, v.reshape({N, Z, 1})).reshape(z.sizes());
  EXPECT_LT(rel_err(loss->hessian_vp(z, y, v), Hv), 1e-12);
  const auto S = loss->hessian_sqrt(z, y);  // [R, *z]
  const int64_t R = S.size(0);
  // Columns are per token: block-diagonal Σ_j s_j s_jᵀ over the tokens of each sample.
  const int64_t C = f.cross_entropy ? z.size(-1) : Z;
  const int64_t T = Z / C;
  const auto cols = S.reshape({R, N, T, C});
  const auto blocks = torch::einsum("jntc,jntd->ntcd", {cols, cols});
  auto expected = torch::zeros({N, T, C, C}, torch::kDouble);
  for (int64_t t = 0; t < T; ++t) {
    expected.select(1, t).copy_(H.narrow(1, t * C, C).narrow(2, t * C, C));
  }
  EXPECT_LT(rel_err(blocks, expected), 1e-12);
}

TEST_P(LossTest, SampledGradientsHaveTheFisherAsCovariance) {
  auto f = load_fixture(GetParam(), 3);
  const auto loss = mvp::make_loss(loss_name(f.loss));
  at::Tensor z;
  {
    torch::NoGradGuard ng;
    z = f.model->forward(f.batch.inputs);
  }
  const int64_t K = 40000;
  const auto s = loss->sampled_logit_grad(z, f.batch.targets, K, 7);  // [K, *z]
  const int64_t N = z.size(0), Z = z.numel() / N;
  const auto flat = s.reshape({K, N, Z});
  // E[ĝ] = 0 and E[ĝ ĝᵀ] = H per sample (a Monte-Carlo check: 5 standard errors).
  EXPECT_LT(flat.mean(0).abs().max().item<double>(), 5.0 / std::sqrt(double(K)) * 2);
  const auto cov = torch::einsum("kni,knj->nij", {flat, flat}) / double(K);
  const auto H = oracle::loss_hessian(z, f.batch.targets, f.loss);
  // Ignore cross-token blocks (sampled tokens are independent, H is block-diagonal too).
  EXPECT_LT((cov - H).abs().max().item<double>(), 5.0 * std::sqrt(2.0 / K) * 2);
  // Same seed, same draws; another seed, other draws.
  EXPECT_TRUE(torch::equal(loss->sampled_logit_grad(z, f.batch.targets, 3, 11),
                           loss->sampled_logit_grad(z, f.batch.targets, 3, 11)));
  EXPECT_FALSE(torch::equal(loss->sampled_logit_grad(z, f.batch.targets, 3, 11),
                            loss->sampled_logit_grad(z, f.batch.targets, 3, 12)));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LossTest, testing::Values("mlp_tanh_ce", "mlp_tanh_mse", "seq_ce", "mlp_tanh_bce"),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(Loss, ClearErrorsForTargetsThatDoNotFit) {
  const auto ce = mvp::make_loss("cross-entropy");
  const auto z = torch::zeros({4, 3}, torch::kDouble);
  try {
    ce->check(z, torch::tensor({0, 1, 3, 2}, torch::kLong));
    FAIL() << "out-of-range target accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("target 3 is out of range"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(ce->check(z, torch::tensor({0, -100, 2, 1}, torch::kLong)));
  EXPECT_THROW(ce->check(z, torch::zeros({4, 2}, torch::kLong)), std::exception);
  EXPECT_THROW(ce->check(z, torch::zeros({4}, torch::kDouble)), std::exception);
  const auto mse = mvp::make_loss("squared-error");
  EXPECT_THROW(mse->check(z, torch::zeros({4, 2}, torch::kDouble)), std::exception);
  EXPECT_THROW(mvp::make_loss("hinge"), std::exception);
  // Binary cross-entropy: one floating target in [0, 1] per output unit.
  const auto bce = mvp::make_loss("binary-cross-entropy");
  EXPECT_NO_THROW(bce->check(z, torch::full({4, 3}, 0.25, torch::kDouble)));
  EXPECT_THROW(bce->check(z, torch::zeros({4, 3}, torch::kLong)), InputError);
  EXPECT_THROW(bce->check(z, torch::zeros({4, 2}, torch::kDouble)), InputError);
  EXPECT_THROW(bce->check(z, torch::full({4, 3}, 1.5, torch::kDouble)), InputError);
  EXPECT_THROW(bce->check(z, torch::full({4, 3}, -0.1, torch::kDouble)), InputError);
  EXPECT_THROW(bce->check(z, torch::full({4, 3}, std::nan(""), torch::kDouble)), InputError);
}

TEST(Loss, AutoNeverGuessesBinaryCrossEntropy) {
  const auto floats = torch::rand({4, 3}, torch::kDouble);  // in [0, 1], yet squared error unless told
  EXPECT_EQ(mvp::resolve_loss_name("auto", "", floats), "squared-error");
  EXPECT_EQ(mvp::resolve_loss_name("auto", "", torch::zeros({4}, torch::kLong)), "cross-entropy");
  EXPECT_EQ(mvp::resolve_loss_name("auto", "binary-cross-entropy", floats), "binary-cross-entropy");
  EXPECT_EQ(mvp::resolve_loss_name("binary-cross-entropy", "", floats), "binary-cross-entropy");
}

TEST(Loss, BinaryCrossEntropyWrittenOut) {
  // l = Σ_units softplus(z) − y z, ∇ = σ(z) − y, H = diag(σ(1 − σ)), target probability the
  // geometric mean of σ^y (1 − σ)^(1 − y) over units; also for large |z| (no overflow).
  const auto bce = mvp::make_loss("binary-cross-entropy");
  const auto z = torch::tensor({{0.3, -2.0, 50.0}, {-40.0, 1.5, 0.0}}, torch::kDouble);
  const auto y = torch::tensor({{1.0, 0.0, 0.25}, {0.0, 0.7, 1.0}}, torch::kDouble);
  const auto l = bce->per_sample(z, y);
  for (int n = 0; n < 2; ++n) {
    double expected = 0, logp = 0;
    for (int i = 0; i < 3; ++i) {
      const double zi = z[n][i].item<double>(), yi = y[n][i].item<double>();
      const double sp = zi > 0 ? zi + std::log1p(std::exp(-zi)) : std::log1p(std::exp(zi));
      expected += sp - yi * zi;
      const double sig = 1 / (1 + std::exp(-zi));
      logp += yi * std::log(sig) + (1 - yi) * std::log1p(-sig);
      EXPECT_NEAR(bce->logit_grad(z, y)[n][i].item<double>(), sig - yi, 1e-15);
    }
    EXPECT_NEAR(l[n].item<double>(), expected, 1e-12 * std::max(1.0, expected));
    if (n == 1) EXPECT_NEAR(bce->target_prob(z, y)[n].item<double>(), std::exp(logp / 3), 1e-13);
  }
  EXPECT_TRUE(torch::isfinite(l).all().item<bool>());
  const auto v = torch::randn_like(z);
  const auto s = torch::sigmoid(z);
  EXPECT_LT(rel_err(bce->hessian_vp(z, y, v), s * (1 - s) * v), 1e-15);
  // Sampled gradients are σ(z) − ŷ with ŷ ∈ {0, 1}.
  const auto draws = bce->sampled_logit_grad(z, y, 5, 3);
  const auto yhat = s.unsqueeze(0) - draws;
  EXPECT_TRUE(yhat.mul(1 - yhat).abs().lt(1e-12).all().item<bool>());
}

TEST(Loss, IgnoredTokensContributeNothing) {
  const auto ce = mvp::make_loss("cross-entropy");
  const auto z = torch::randn({2, 3, 4}, torch::kDouble);
  auto y = torch::tensor({{1, -100, 2}, {-100, -100, 0}}, torch::kLong);
  const auto g = ce->logit_grad(z, y);
  EXPECT_EQ(g.select(1, 1).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(ce->hessian_vp(z, y, torch::randn_like(z)).select(1, 1).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(ce->sampled_logit_grad(z, y, 2, 1).select(2, 1).abs().sum().item<double>(), 0.0);
  // target probability: geometric mean over the sample's target tokens
  const auto p = torch::softmax(z, -1);
  const double expected0 = std::sqrt(p[0][0][1].item<double>() * p[0][2][2].item<double>());
  EXPECT_NEAR(ce->target_prob(z, y)[0].item<double>(), expected0, 1e-14);
  EXPECT_NEAR(ce->target_prob(z, y)[1].item<double>(), p[1][2][0].item<double>(), 1e-14);
}

}  // namespace
}  // namespace fisheval::test
