// reports/report.h: the report's tables on a result file built by hand, against
// expected values worked out by hand (mean, std with ddof = 1, done units only, NaN
// skipped, best damping with ties to the smaller λ, undamped methods timed once).
#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "reports/report.h"

namespace fisheval::test {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// 2 checkpoints (steps 10, 20) × 3 batches × methods {sgd, ef} × dampings {1e-2, 0, 1}.
ResultFile hand_made() {
  RunInfo info;
  info.checkpoint_paths = {"a.pt", "b.pt"};
  info.checkpoint_steps = {10, 20};
  info.batches = {{0, 1}, {2, 3}, {4, 5}};
  info.methods = {"sgd", "ef"};
  info.dampings = {1e-2, 0.0, 1.0};
  info.settings = {{"damping_mode", "absolute"}, {"seed", "7"}, {"dtype", "auto"}};
  auto r = empty_result(info);
  r.metadata = {{"command_line", "fisheval eval --out x.h5"}, {"device", "cpu"}, {"dtype_resolved", "float64"}};
  // ef's γ/γ_sgd per (checkpoint, batch), dampings in axis order.
  const double ef[2][3][3] = {{{0.5, 0.8, 2.0}, {0.7, 0.6, 2.0}, {100, 100, 100}},
                              {{0.3, kNaN, 1.0}, {0.5, 0.9, 1.0}, {0.4, 0.7, 1.0}}};
  for (int64_t c = 0; c < 2; ++c) {
    for (int64_t b = 0; b < 3; ++b) {
      UnitResult u;
      u.checkpoint = c;
      u.batch = b;
      u.values["gamma_rel_sgd"] = {1, 1, 1, ef[c][b][0], ef[c][b][1], ef[c][b][2]};
      u.values["seconds"] = {0.1, 0.1, 0.1, 1, 2, 3};
      u.values["loss"] = {static_cast<double>(10 * c + b)};
      u.values["seconds_shared"] = {0.5};
      r.put(u);
    }
  }
  r.done[0 * 3 + 2] = 0;  // checkpoint 0, batch 2 is not done: its (finite) values must not count
  r.checkpoint_status = {"ok", "ok"};
  return r;
}

bool damped(const std::string& m) { return m != "sgd"; }

const QualityRow::At& at(const ReportTables& t, int64_t m, int64_t c, const std::string& selection) {
  for (const auto& a : t.quality.at(m * 2 + c).at) {
    if (a.selection == selection) return a;
  }
  throw std::runtime_error("no selection " + selection);
}

TEST(ReportTables, MeansOverDoneFiniteBatchesAtSmallestBestAndChosenDamping) {
  const auto r = hand_made();
  const auto t = make_report_tables(r, /*chosen=*/2, damped);
  EXPECT_EQ(t.smallest, 1);  // λ = 0, not the first entry
  EXPECT_EQ(t.units_done, 5);
  const double s2 = std::sqrt(0.02);  // std of two values 0.1 apart from their mean... ±0.1 → sqrt(0.02)
  // ef, checkpoint 0: smallest λ = 0 → {0.8, 0.6}; best λ = 1e-2 → {0.5, 0.7}; chosen λ = 1 → {2, 2}.
  EXPECT_NEAR(at(t, 1, 0, "smallest").value.mean, 0.7, 1e-15);
  EXPECT_NEAR(at(t, 1, 0, "smallest").value.std, s2, 1e-15);
  EXPECT_EQ(at(t, 1, 0, "smallest").value.count, 2);
  EXPECT_EQ(at(t, 1, 0, "best").damping_index, 0);
  EXPECT_NEAR(at(t, 1, 0, "best").value.mean, 0.6, 1e-15);
  EXPECT_NEAR(at(t, 1, 0, "chosen").value.mean, 2.0, 1e-15);
  EXPECT_EQ(at(t, 1, 0, "chosen").value.std, 0.0);
  // ef, checkpoint 1: smallest → {NaN, 0.9, 0.7}: NaN skipped; best λ = 1e-2 → {0.3, 0.5, 0.4}.
  EXPECT_NEAR(at(t, 1, 1, "smallest").value.mean, 0.8, 1e-15);
  EXPECT_EQ(at(t, 1, 1, "smallest").value.count, 2);
  EXPECT_NEAR(at(t, 1, 1, "best").value.mean, 0.4, 1e-15);
  EXPECT_NEAR(at(t, 1, 1, "best").value.std, 0.1, 1e-15);
  EXPECT_EQ(at(t, 1, 1, "best").value.count, 3);
  // sgd: all equal, the tie goes to the smaller damping (λ = 0).
  EXPECT_EQ(at(t, 0, 0, "best").damping_index, 1);
  EXPECT_EQ(at(t, 0, 1, "best").value.mean, 1.0);
  // Checkpoint statistics: loss of checkpoint 0 over batches 0, 1 → {0, 1}.
  EXPECT_EQ(t.stages[0].batches_done, 2);
  EXPECT_NEAR(t.stages[0].loss.mean, 0.5, 1e-15);
  EXPECT_NEAR(t.stages[1].loss.mean, 11.0, 1e-15);
  EXPECT_NEAR(t.stages[1].loss.std, 1.0, 1e-15);
}

TEST(ReportTables, TimingCountsAnUndampedMethodOncePerUnit) {
  const auto t = make_report_tables(hand_made(), 1, damped);
  ASSERT_EQ(t.timing.size(), 2u);
  EXPECT_EQ(t.timing[0].directions, 5);
  EXPECT_NEAR(t.timing[0].total_seconds, 0.5, 1e-14);
  EXPECT_EQ(t.timing[1].directions, 15);
  EXPECT_NEAR(t.timing[1].total_seconds, 30.0, 1e-13);
  EXPECT_NEAR(t.timing[1].mean_seconds, 2.0, 1e-14);
  EXPECT_NEAR(t.shared_seconds, 2.5, 1e-14);
  // No "chosen" column when the chosen damping is the smallest.
  for (const auto& row : t.quality) EXPECT_EQ(row.at.size(), 2u);
}

TEST(ReportTables, DampingLookup) {
  const auto r = hand_made();
  EXPECT_EQ(damping_index(r.info, 1e-2), 0);
  EXPECT_EQ(damping_index(r.info, 0.0), 1);
  EXPECT_EQ(damping_index(r.info, 1.0 + 1e-12), 2);
  EXPECT_THROW(damping_index(r.info, 0.5), InputError);
}

TEST(ReportHtml, EscapesTextAndReferencesEveryFigure) {
  const auto r = hand_made();
  const auto t = make_report_tables(r, 1, damped);
  ReportInput in;
  in.source = "runs/<a&b>.h5";
  in.title = "t";
  in.result = &r;
  in.tables = &t;
  in.figures = {{"quality_over_training.png", "Q", "caption"}, {"damping_robustness.png", "D", "c"}};
  in.toy_figures = {{"toy.png", "Toy", "c"}};
  const auto html = report_html(in);
  EXPECT_NE(html.find("runs/&lt;a&amp;b&gt;.h5"), std::string::npos);
  EXPECT_EQ(html.find("<a&b>"), std::string::npos);
  for (const auto* f : {"quality_over_training.png", "damping_robustness.png", "toy.png"}) {
    EXPECT_NE(html.find(std::string("<img src=\"") + f + "\""), std::string::npos) << f;
  }
  EXPECT_EQ(html.find("http://"), std::string::npos);  // nothing from the network
  EXPECT_EQ(html.find("https://"), std::string::npos);
  const auto json = report_json(in);
  EXPECT_NE(json.find("\"source\": \"runs/<a&b>.h5\""), std::string::npos);
}

}  // namespace
}  // namespace fisheval::test
