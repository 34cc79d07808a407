#include "eval/demo.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

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
#include "eval/sweep.h"
#include "eval/trainer.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "reports/results.h"
#include "solvers/damping.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {

// The methods of solvers::list_methods() that run on the first checkpoint: each is tried
// on the sweep's first batch at the largest damping; one that throws or returns a
// non-finite direction is left out with its reason. ng-dense is left out when P is
// above its limit.
std::vector<std::string> usable_methods(const SweepOptions& s, std::vector<std::string>& skipped) {
  auto model = load_model(s.checkpoints.front().path);
  model->to(torch::kCPU, torch::kDouble);
  const auto params = select_parameters(*model, s.params);
  set_trainable(*model, params);
  const int64_t P = count_parameters(*model, params);
  const auto data = open_dataset(s.data);
  const auto plan = plan_batches(data->size(), s.batch_size, 1, s.sampling, s.seed);
  const auto batch = data->get(plan.front());
  const auto inputs = batch.inputs.to(torch::kCPU, torch::kDouble);
  const auto loss = mvp::make_loss(mvp::resolve_loss_name(s.loss, model->loss_hint(), batch.targets));
  std::vector<std::string> usable;
  for (const auto& info : solvers::list_methods()) {
    if (info.name == "ng-dense" && P > s.method_options.dense_max_params) {
      skipped.push_back(fmt::format("ng-dense: P = {} is above its limit of {} parameters", P,
                                    s.method_options.dense_max_params));
      continue;
    }
    try {
      mvp::Linearisation lin(*model, params, inputs, s.engines);
      solvers::BatchState state(lin, *loss, batch.targets, {s.mc_samples, batch_seed(s.seed, 0), s.dedup_cosine});
      const double lambda = s.dampings.back() * solvers::damping_scale(s.damping_mode, s.damping_reference, state);
      const auto dir = solvers::make_method(info.name, s.method_options)->direction(state, lambda);
      if (!dir.d.defined() || dir.d.numel() != P || !torch::isfinite(dir.d).all().item<bool>()) {
        throw Error("its direction is not a finite vector of the parameters' size");
      }
      usable.push_back(info.name);
    } catch (const std::exception& e) {
      skipped.push_back(fmt::format("{}: {}", info.name, first_line(e.what())));
    }
  }
  return usable;
}

}  // namespace

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
  s.data = "fashion-mnist:test";
  s.batch_size = d.batch_size;
  s.num_batches = d.num_batches;
  s.sampling = BatchSampling::kRandom;
  s.seed = d.seed;
  s.dampings = solvers::log_grid(d.damping_grid);
  s.damping_mode = solvers::DampingMode::kRelative;
  s.ng_reference = "none";
  s.method_options.cg.max_iter = d.cg_max_iter;
  s.out = summary.results;
  s.overwrite = true;
  s.progress = d.progress;
  s.metadata["command_line"] = d.command_line;
  s.metadata["config"] = fmt::format("demo: {} trained with ief for {} epoch(s); series {}", d.model, d.epochs,
                                     summary.series);
  s.methods = usable_methods(s, summary.skipped);
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
