// What PyTorch 2.x models need beyond the products (test_mvp.cpp covers those): the JVP
// engine probe that falls back from forward mode where it fails or is wrong, tangents that
// stay right on repeated calls, and tied weights kept as one parameter in every dtype.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "checkpoints/model.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "support.h"

namespace fisheval::test {
namespace {

// J_z v from the oracle's dense logit Jacobian.
at::Tensor oracle_jvp(Fixture& f, const at::Tensor& v) {
  const auto J = oracle::logit_jacobian(*f.model, f.params, f.batch.inputs);  // [N, Z, P]
  return torch::matmul(J, v);
}

TEST(JvpProbe, FusedFastPathsFallBackToDoubleBackward) {
  // In eval mode nn.TransformerEncoderLayer and nn.MultiheadAttention run PyTorch's fused
  // kernels whenever no gradient is recorded, as in forward mode (frozen or not); those
  // kernels have no forward-mode formula.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"encoder_frozen_ce", "_transformer_encoder_layer_fwd"},
      {"encoder_ce", "_transformer_encoder_layer_fwd"},
      {"mha_ce", "_native_multi_head_attention"}};
  for (const auto& [name, kernel] : cases) {
    auto f = load_fixture(name, 5);
    mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
    std::string why;
    EXPECT_EQ(lin.probe_jvp_engine(&why), mvp::JvpEngine::kDoubleBackward) << name;
    EXPECT_NE(why.find(kernel), std::string::npos) << name << ": " << why;
    lin.use_single_jvp_engine(mvp::JvpEngine::kDoubleBackward);
    const auto v = torch::randn({lin.layout().size()}, torch::kDouble);
    EXPECT_LT(rel_err(lin.jvp(v).reshape({f.batch.inputs.size(0), -1}), oracle_jvp(f, v)), kTol) << name;
  }
}

TEST(JvpProbe, ExplicitForwardModeOnTheFusedPathIsAClearError) {
  auto f = load_fixture("encoder_frozen_ce", 3);
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs, {mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kForward});
  try {
    lin.jvp(torch::randn({lin.layout().size()}, torch::kDouble));
    FAIL() << "forward mode cannot pass the fused kernel";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--jvp-engine auto or double-backward"), std::string::npos) << what;
  }
}

TEST(JvpProbe, ForwardModeIsKeptAndRightOnRepeatedCalls) {
  // Forward-mode AD through scripted code is known upstream to return missing or zero
  // tangents on a second call: every call is checked against the oracle.
  for (const auto* name : {"sdpa_ce", "tied_lm_ce", "seq_ce", "compiled_ce", "mlp_gelu_ce"}) {
    auto f = load_fixture(name, 4);
    mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
    std::string why;
    EXPECT_EQ(lin.probe_jvp_engine(&why), mvp::JvpEngine::kForward) << name << ": " << why;
    const auto v = torch::randn({lin.layout().size()}, torch::kDouble);
    const auto expected = oracle_jvp(f, v);
    for (int call = 0; call < 3; ++call) {
      EXPECT_LT(rel_err(lin.jvp(v).reshape({f.batch.inputs.size(0), -1}), expected), kTol) << name << " call " << call;
    }
  }
}

TEST(TiedWeights, OneParameterUnderEveryName) {
  auto f = load_fixture("tied_lm_ce", 4);
  const auto names = f.model->parameter_names();
  EXPECT_EQ(names, (std::vector<std::string>{"emb.weight", "mix.weight", "mix.bias"}));
  EXPECT_EQ(f.model->aliases("emb.weight"), std::vector<std::string>{"out.weight"});
  EXPECT_EQ(count_parameters(*f.model, f.params), 7 * 5 + 5 * 5 + 5);
  // A glob on the second name selects the shared parameter.
  EXPECT_EQ(select_parameters(*f.model, "out.*"), std::vector<std::string>{"emb.weight"});
  const auto desc = describe_parameters(*f.model, {"emb.weight"});
  EXPECT_EQ(desc, "[{\"name\": \"emb.weight\", \"shape\": [7, 5], \"aliases\": [\"out.weight\"]}]");
}

TEST(TiedWeights, StayTiedInEveryDtypeAndWhenSet) {
  auto f = load_fixture("tied_lm_ce", 4);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    f.model->to(torch::kCPU, dtype);
    EXPECT_EQ(f.model->parameter("emb.weight").unsafeGetTensorImpl(),
              f.model->parameter("out.weight").unsafeGetTensorImpl());
    EXPECT_EQ(f.model->parameter("emb.weight").scalar_type(), dtype);
  }
  // Setting the parameter (as forward mode and the trainer do) changes both uses.
  const auto x = f.batch.inputs;
  const auto before = f.model->forward(x).detach();
  const auto w = f.model->parameter("emb.weight");
  f.model->set_parameter("emb.weight", (w.detach() * 2).requires_grad_(true));
  EXPECT_TRUE(f.model->parameter("out.weight").equal(f.model->parameter("emb.weight")));
  f.model->set_parameter("emb.weight", w);
  EXPECT_TRUE(f.model->forward(x).detach().equal(before));
}

TEST(TiedWeights, GradientSumsBothUsesAndTapsAreNotUsedForTheSharedWeight) {
  auto f = load_fixture("tied_lm_ce", 6);
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
  EXPECT_EQ(lin.per_sample_engine(), mvp::PerSampleEngine::kLoop);
  EXPECT_NE(lin.engine_note().find("'emb.weight' is shared with 'out.weight'"), std::string::npos) << lin.engine_note();
  // The oracle differentiates the one shared tensor: its gradient is the sum of both uses.
  const auto J = oracle::per_sample_grads(*f.model, f.params, f.batch, true);
  const auto loss = mvp::make_loss("cross-entropy");
  EXPECT_LT(rel_err(lin.per_sample(loss->logit_grad(lin.logits(), f.batch.targets)), J), kTol);
}

}  // namespace
}  // namespace fisheval::test
