// The paper's Figure 1 toy problem: f(x) = θ₀ + θ₁x, data (0, 0) and (1, 0), squared
// error. The logit Jacobian J_z = [[1, 0], [1, 1]] is invertible, so the natural gradient
// is J_z⁻¹ r (r_n = f(x_n) − y_n) — an oracle by hand. There iEF at λ = 0 is the natural
// gradient, and EF's inversely-scaled projection shows: its per-sample loss reductions
// ∇θl_nᵀ d are all equal (to 1), iEF's equal s_n = r_n².
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "solvers/batch_state.h"
#include "solvers/update_method.h"
#include "support.h"

namespace fisheval::test {
namespace {

class ToyProblem : public testing::Test {
 protected:
  void SetUp() override {
    f_ = load_fixture("toy_linear", 2);
    loss_ = mvp::make_loss("squared-error");
    lin_ = std::make_unique<mvp::Linearisation>(*f_.model, f_.params, f_.batch.inputs);
    state_ = std::make_unique<solvers::BatchState>(*lin_, *loss_, f_.batch.targets, solvers::BatchStateOptions{});
    // θ₁ = weight (0.7), θ₀ = bias (−1.2), read from the checkpoint; r_n = f(x_n) − y_n.
    const double th1 = f_.model->parameter("0.weight").item<double>(), th0 = f_.model->parameter("0.bias").item<double>();
    r_ = torch::tensor({th0 - 0.0, th0 + th1 - 0.0}, torch::kDouble);
  }
  at::Tensor direction(const std::string& m, double lambda = 0.0) {
    return solvers::make_method(m, {})->direction(*state_, lambda).d;
  }
  Fixture f_;
  std::unique_ptr<mvp::Loss> loss_;
  std::unique_ptr<mvp::Linearisation> lin_;
  std::unique_ptr<solvers::BatchState> state_;
  at::Tensor r_;
};

TEST_F(ToyProblem, IefAtZeroDampingIsTheNaturalGradient) {
  ASSERT_EQ(f_.params, (std::vector<std::string>{"0.weight", "0.bias"}));
  // J_z rows per sample in (θ₁, θ₀) order: x_n and 1.
  const auto Jz = torch::tensor({{0.0, 1.0}, {1.0, 1.0}}, torch::kDouble);
  const auto ng = at::linalg_solve(Jz, r_.unsqueeze(1), true).squeeze(1);
  EXPECT_LT(rel_err(direction("ng-dense"), ng), 1e-12);
  EXPECT_LT(rel_err(direction("ief"), ng), 1e-12);
  EXPECT_LT(rel_err(direction("ng-cg"), ng), 1e-10);
  EXPECT_GT(rel_err(direction("ef"), ng), 0.1);  // EF is not
}

TEST_F(ToyProblem, EfEnforcesEqualPerSampleLossReductions) {
  const auto J = oracle::per_sample_grads(*f_.model, f_.params, f_.batch, false);
  const auto ef = torch::mv(J, direction("ef"));   // ∇θl_nᵀ d
  const auto ief = torch::mv(J, direction("ief"));
  EXPECT_LT(rel_err(ef, torch::ones({2}, torch::kDouble)), 1e-12);
  EXPECT_LT(rel_err(ief, r_.square()), 1e-12);
  // Near convergence of one sample, EF's update grows like 1/r_n (inversely scaled).
  EXPECT_GT(direction("ef").norm().item<double>(), direction("ief").norm().item<double>());
}

TEST_F(ToyProblem, SmallStepsReduceEachLossAsPredicted) {
  // First order: Δl_n ≈ −η ∇θl_nᵀ d; checked by actually stepping the model.
  const double eta = 1e-6;
  const auto l0 = oracle::per_sample_loss(f_.model->forward(f_.batch.inputs), f_.batch.targets, false).detach();
  for (const char* m : {"ef", "ief"}) {
    const auto d = direction(m);
    const auto parts = lin_->layout().split(d);
    std::vector<at::Tensor> originals;
    for (size_t i = 0; i < f_.params.size(); ++i) {
      originals.push_back(f_.model->parameter(f_.params[i]));
      f_.model->set_parameter(f_.params[i], originals[i].detach() - eta * parts[i]);
    }
    const auto l1 = oracle::per_sample_loss(f_.model->forward(f_.batch.inputs), f_.batch.targets, false).detach();
    for (size_t i = 0; i < f_.params.size(); ++i) f_.model->set_parameter(f_.params[i], originals[i]);
    const auto predicted = std::string(m) == "ef" ? torch::ones({2}, torch::kDouble) : r_.square();
    EXPECT_LT(rel_err((l0 - l1) / eta, predicted), 1e-5) << m;
  }
}

}  // namespace
}  // namespace fisheval::test
