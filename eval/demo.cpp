#include "eval/demo.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/atomic_file.h"
#include "base/text.h"
#include "base/error.h"
#include "checkpoints/load.h"
#include "eval/progress.h"
#include "eval/summary.h"
#include "eval/sweep_options.h"
#include "eval/sweep.h"
#include "eval/trainer.h"
#include "reports/results.h"
#include "solvers/damping.h"

namespace fs = std::filesystem;

namespace fisheval {

std::vector<std::string> demo_methods(const SweepOptions& s, std::vector<std::string>& skipped) {
  auto model = load_model(s.checkpoints.front().path);
  const auto params = select_parameters(*model, s.params);
  const int64_t P = count_parameters(*model, params);
  bool tapped = false;  // a selected parameter belongs to a tapped layer
  for (const auto& layer : model->layers()) {
    for (const auto& owned : {layer.weight, layer.bias}) {
      tapped = tapped || (!owned.empty() && std::find(params.begin(), params.end(), owned) != params.end());
    }
  }
  std::vector<std::string> usable;
  for (const auto& info : solvers::list_methods()) {
    if ((info.needs & kNeedsDenseFisher) && P > s.method_options.dense_max_params) {
      skipped.push_back(fmt::format("{}: P = {} is above its limit of {} parameters for the dense Fisher", info.name,
                                    P, s.method_options.dense_max_params));
    } else if ((info.needs & kNeedsLayerTaps) && !tapped) {
      skipped.push_back(fmt::format("{}: the model has no tapped layer among the selected parameters", info.name));
    } else {
      usable.push_back(info.name);
    }
  }
  return usable;
}

DemoSummary run_demo(const DemoOptions& d, std::ostream& out) {
  DemoSummary summary;
  fs::create_directories(d.out);
  const auto series_dir = (fs::path(d.out) / "series").string();
  summary.results = (fs::path(d.out) / "results.h5").string();
  summary.summary = (fs::path(d.out) / "summary.txt").string();

  // 1. Train: the default model with iEF, stages every save_epochs epochs.
  TrainOptions t;
  t.model.model = d.model;
  t.data = d.train_samples > 0 ? fmt::format("fashion-mnist:train:{}", d.train_samples) : "fashion-mnist:train";
  t.test_data = "fashion-mnist:test";
  t.optimiser.name = "ief";
  t.epochs = d.epochs;
  t.save_epochs = d.save_epochs;
  t.seed = d.seed;
  t.out = series_dir;
  t.overwrite = true;
  t.progress = d.progress;
  t.notes["command_line"] = d.command_line;
  const auto trained = train(t);
  if (trained.diverged) throw Error("the demo's training diverged at " + trained.diverged_reason);
  summary.series = trained.manifest;
  summary.train_seconds = trained.seconds;

  // 2. Evaluate every method that exists over a damping grid and several batches per stage.
  SweepOptions s;
  s.checkpoints = trained.stages;
  s.batches.data = "fashion-mnist:test";
  s.batches.batch_size = d.batch_size;
  s.batches.num_batches = d.num_batches;
  s.batches.sampling = BatchSampling::kRandom;
  s.batches.seed = d.seed;
  s.damping.values = solvers::log_grid(d.damping_grid);
  s.damping.mode = solvers::DampingMode::kRelative;
  s.ng_reference = "none";
  s.method_options.cg.max_iter = d.cg_max_iter;
  s.output.out = summary.results;
  s.output.overwrite = true;
  s.output.progress = d.progress;
  s.output.metadata["command_line"] = d.command_line;
  s.output.metadata["config"] = fmt::format("demo: {} trained with ief for {} epoch(s); series {}", d.model, d.epochs,
                                     summary.series);
  s.methods = demo_methods(s, summary.skipped);
  summary.methods = s.methods;
  if (s.methods.empty()) throw Error("no update method runs on the demo model");
  Progress note("demo", 0, d.progress);
  note.message(fmt::format("fisheval demo: evaluating {} method(s): {}", s.methods.size(), fmt::join(s.methods, ", ")));
  for (const auto& why : summary.skipped) note.message("fisheval demo: left out " + why);
  const auto swept = run_sweep(s);
  summary.eval_seconds = swept.seconds;
  summary.checkpoints_failed = swept.checkpoints_failed;

  // 3. The summary table (fisheval show), printed and kept beside the results.
  std::ostringstream table;
  print_summary(table, read_result_file(summary.results), summary.results, "gamma_rel_sgd");
  write_file_atomically(summary.summary, table.str());
  out << table.str();
  return summary;
}

}  // namespace fisheval
