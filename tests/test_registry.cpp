// The registry is the one place a method lives. A method written here the way every
// built-in one is — a class and the function returning its entry (data and factory) — and
// registered with one call (the built-in ones: one line of solvers/methods/method_list.h)
// is picked up with no other edit by: the registry's lookups, the sweep (scored like any
// method, into the result file), the demo's choice of methods (from its needs), the report
// (its colour) and the figures (`fisheval methods --json`'s data, which the report passes
// to the plotting script), and the test suites that iterate over the registry
// (test_solvers.cpp's NaturalGradientMinimisesGamma and EveryFormOfADirectionScoresTheSame,
// and this file's checks of every entry), which run it too.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "base/error.h"
#include "eval/demo.h"
#include "eval/indicator.h"
#include "base/method_info.h"
#include "eval/sweep.h"
#include "eval/sweep_options.h"
#include "reports/report.h"
#include "reports/results.h"
#include "solvers/update_method.h"
#include "support.h"

namespace fisheval::test {
namespace {

constexpr const char* kThrowAway = "test-damped-sgd";

// d = g / (1 + λ): the gradient, shrunk by the damping. Its oracle is plain: the gradient
// of the loss over the batch, by autograd, divided by 1 + λ; and γ is invariant to the scale
// of d, so its γ is sgd's, sqrt(gᵀFg)/gᵀg, at every damping.
class DampedSgd final : public solvers::UpdateMethod {
 public:
  std::string name() const override { return kThrowAway; }

 protected:
  solvers::Direction solve(solvers::BatchState& state, double damping) override {
    solvers::Direction out;
    out.true_weights = torch::full({state.num_samples()}, 1.0 / (1.0 + damping), torch::kDouble);  // Jᵀ1 = g
    return out;
  }
};

solvers::MethodEntry damped_sgd_entry() {
  return {{.name = kThrowAway, .summary = "a test's method: g / (1 + λ)", .label = "damped SGD (test)",
           .colour = "#123456", .linestyle = "-.", .marker = "d", .needs = kNeedsGradient},
          [](const solvers::MethodOptions&) { return std::make_unique<DampedSgd>(); }};
}

// The one registration, before any test runs.
const bool kRegistered = (solvers::register_method(damped_sgd_entry()), true);

TEST(Registry, ATestsMethodIsListedAndBuiltLikeTheBuiltInOnes) {
  ASSERT_TRUE(kRegistered);
  const auto all = solvers::list_methods();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back().name, kThrowAway);
  EXPECT_EQ(all.front().name, "sgd");
  const auto& info = solvers::method_info(kThrowAway);
  EXPECT_EQ(info.colour, "#123456");
  EXPECT_EQ(info.label, "damped SGD (test)");
  EXPECT_EQ(solvers::make_method(kThrowAway, {})->name(), kThrowAway);
  EXPECT_THROW(solvers::register_method(damped_sgd_entry()), InputError);  // a name is taken once
  EXPECT_THROW(solvers::method_info("no-such-method"), InputError);
}

TEST(Registry, EveryEntryCarriesItsData) {
  for (const auto& m : solvers::list_methods()) {
    EXPECT_FALSE(m.summary.empty()) << m.name;
    EXPECT_FALSE(m.label.empty()) << m.name;
    EXPECT_EQ(m.colour.size(), 7u) << m.name;
    EXPECT_EQ(m.colour[0], '#') << m.name;
    EXPECT_TRUE(m.needs & kNeedsGradient) << m.name;
  }
}

TEST(Registry, TheDampingIsCheckedOnceForEveryMethodIncludingATestsOwn) {
  auto f = load_fixture("mlp_tanh_ce", 4);
  const auto loss = mvp::make_loss(loss_name(f.loss));
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
  solvers::BatchState state(lin, *loss, f.batch.targets, {});
  for (const auto& m : solvers::list_methods()) {
    auto method = solvers::make_method(m.name, {});
    EXPECT_THROW(method->direction(state, -1.0), InputError) << m.name;
    EXPECT_THROW(method->weights_only(state, std::nan("")), NumericalError) << m.name;  // a non-finite scale
    EXPECT_THROW(method->directions(state, {1.0, -1e-3}), InputError) << m.name;
  }
}

TEST(Registry, ATestsMethodMatchesItsOracle) {
  auto f = load_fixture("mlp_tanh_ce", 6);
  const auto loss = mvp::make_loss(loss_name(f.loss));
  mvp::Linearisation lin(*f.model, f.params, f.batch.inputs);
  solvers::BatchState state(lin, *loss, f.batch.targets, {});
  const auto g = oracle::gradient(*f.model, f.params, f.batch, f.loss);
  for (const double lambda : {0.0, 0.5, 10.0}) {
    const auto d = solvers::make_method(kThrowAway, {})->direction(state, lambda).d;
    EXPECT_LT(rel_err(d, g / (1.0 + lambda)), 1e-12) << "λ = " << lambda;
  }
}

// The sweep, the demo's choice, the report and the figures' data, on one short run.
TEST(Registry, ATestsMethodIsPickedUpByTheSweepTheDemoTheReportAndThePlots) {
  const auto dir = std::filesystem::temp_directory_path() / ("fisheval_registry_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  SweepOptions s;
  s.checkpoints = {{fixture("mlp_tanh_ce.pt"), 0}};
  s.batches.data = fixture("mlp_tanh_ce.h5");
  s.batches.batch_size = 6;
  s.methods = {"sgd", kThrowAway};
  s.damping.values = {1e-2, 1.0};
  s.ng_reference = "none";
  s.output.out = (dir / "r.h5").string();
  s.output.progress = false;
  std::string why;
  ASSERT_TRUE(s.IsValid(&why)) << why;
  run_sweep(s);
  const auto r = read_result_file(s.output.out);
  ASSERT_EQ(r.info.methods, s.methods);
  // γ of d ∝ g is sgd's at each damping, and equals the dense oracle sqrt(gᵀFg)/gᵀg.
  auto f = load_fixture("mlp_tanh_ce", 6);
  const auto g = oracle::gradient(*f.model, f.params, f.batch, f.loss);
  const auto F = oracle::fisher(*f.model, f.params, f.batch, f.loss);
  const double gamma = std::sqrt(g.dot(torch::mv(F, g)).item<double>()) / g.dot(g).item<double>();
  const auto u = r.unit(0, 0);
  const auto& cells = u.values.at("gamma");
  ASSERT_EQ(cells.size(), 4u);  // [method, damping]
  for (size_t j = 0; j < 2; ++j) {
    EXPECT_NEAR(cells[2 + j] / gamma, 1.0, 1e-10) << "damping " << j;
    EXPECT_NEAR(cells[2 + j] / cells[j], 1.0, 1e-12) << "damping " << j;
  }
  EXPECT_EQ(r.method_status[1], "");

  std::vector<std::string> skipped;
  const auto chosen = demo_methods(s, skipped);
  EXPECT_NE(std::find(chosen.begin(), chosen.end(), kThrowAway), chosen.end());

  ReportInput in;
  in.source = s.output.out;
  in.result = &r;
  const auto tables =
      make_report_tables(r, smallest_damping_index(r.info), [](const std::string& m) { return solvers::method_info(m).damped; });
  in.tables = &tables;
  in.methods = solvers::list_methods();
  EXPECT_NE(report_html(in).find("#123456"), std::string::npos);  // its swatch

  const auto json = methods_json(solvers::list_methods());  // what the plotting script reads
  EXPECT_NE(json.find("\"damped SGD (test)\""), std::string::npos);
  EXPECT_NE(json.find("\"#123456\""), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fisheval::test
