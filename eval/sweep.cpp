#include "eval/sweep.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "base/error.h"
#include "checkpoints/load.h"
#include "eval/build_info.h"
#include "eval/error_text.h"
#include "eval/indicator.h"
#include "eval/progress.h"
#include "eval/unit.h"
#include "mvp/loss.h"
#include "reports/results.h"

namespace fisheval {

RunInfo make_run_info(const SweepOptions& o, const std::vector<std::vector<int64_t>>& batches) {
  RunInfo info;
  for (const auto& c : o.checkpoints) {
    info.checkpoint_paths.push_back(c.path);
    info.checkpoint_steps.push_back(c.step);
  }
  info.batches = batches;
  info.methods = o.methods;
  info.dampings = o.damping.values;
  const bool has_history = std::any_of(o.methods.begin(), o.methods.end(), [](const std::string& name) {
    return solvers::method_info(name).records_residuals;
  });
  info.cg_history_length = has_history ? o.method_options.cg.max_iter + 1 : 0;
  info.settings = stored_settings(o);
  return info;
}

std::pair<int64_t, int64_t> shard_range(int64_t total, int64_t index, int64_t count) {
  const int64_t base = total / count, extra = total % count;
  const int64_t begin = index * base + std::min(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

c10::Device resolve_device(const std::string& device) {
  if (device == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  c10::Device dev(c10::kCPU);
  try {
    dev = c10::Device(device);
  } catch (const c10::Error&) {
    throw InputError(fmt::format("unknown --device '{}' (auto, cpu, cuda, cuda:N)", device));
  }
  if (dev.is_cuda() && !torch::cuda::is_available()) {
    throw InputError(fmt::format("--device {}: CUDA is not available (this LibTorch {} build is CPU-only or no GPU "
                                 "is visible)",
                                 device, TORCH_VERSION));
  }
  return dev;
}

c10::ScalarType resolve_dtype(Dtype dtype, const std::string& device) {
  switch (dtype) {
    case Dtype::kFloat64: return torch::kDouble;
    case Dtype::kFloat32: return torch::kFloat;
    case Dtype::kAuto: break;
  }
  return resolve_device(device).is_cuda() ? torch::kFloat : torch::kDouble;
}

SweepSummary run_sweep(const SweepOptions& options) {
  SweepOptions o = options;
  std::string invalid;
  if (!o.IsValid(&invalid)) throw InputError(invalid);
  const auto device = resolve_device(o.device);
  const auto dtype = resolve_dtype(o.dtype, o.device);
  o.method_options.budget = {resolve_memory_budget(o.memory_budget, device), o.max_output_units};
  o.engines.max_output_units = o.max_output_units;
  std::vector<std::unique_ptr<solvers::UpdateMethod>> methods;
  for (const auto& name : o.methods) methods.push_back(solvers::make_method(name, o.method_options));

  const auto dataset = open_dataset(o.batches.data);
  const auto plan =
      plan_batches(dataset->size(), o.batches.batch_size, o.batches.num_batches, o.batches.sampling, o.batches.seed);
  const RunInfo info = make_run_info(o, plan);

  auto metadata = o.output.metadata;
  for (const auto& [key, value] : build_info()) metadata[key] = value;
  metadata["device"] = device.str();
  metadata["dtype_resolved"] = dtype == torch::kDouble ? "float64" : "float32";
  metadata["shard"] = fmt::format("{}/{}", o.output.shard_index + 1, o.output.shard_count);
  metadata["memory_budget_gib"] = fmt::format("{:.3g}", o.method_options.budget.memory_bytes / (1024.0 * 1024 * 1024));
  metadata["max_output_units"] = std::to_string(o.max_output_units);
  metadata["data_description"] = dataset->description();
  ResultStore store(o.output.out, info, metadata, o.output.overwrite);

  const int64_t C = info.num_checkpoints(), B = info.num_batches();
  const auto [begin, end] = shard_range(C * B, o.output.shard_index, o.output.shard_count);
  SweepSummary summary;
  summary.out = o.output.out;
  summary.units_total = end - begin;
  for (int64_t u = begin; u < end; ++u) summary.units_imported += store.done(u / B, u % B) ? 1 : 0;
  Progress progress("eval", summary.units_total, o.output.progress);
  if (summary.units_imported > 0) {
    progress.message(fmt::format("fisheval: resuming: {} of {} units already in '{}' or its .parts folder",
                                 summary.units_imported, summary.units_total, o.output.out));
  }
  UnitRunner runner(o, info, methods, progress, summary.warnings);
  int64_t finished = summary.units_imported;
  for (int64_t c = 0; c < C; ++c) {
    std::vector<int64_t> todo;
    bool in_shard = false;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t u = c * B + b;
      in_shard = in_shard || (u >= begin && u < end);
      if (u >= begin && u < end && !store.done(c, b)) todo.push_back(b);
    }
    if (todo.empty()) {
      // Every unit of this checkpoint in this shard was imported from disk (resume):
      // the same status as when they were computed here.
      if (in_shard) store.set_checkpoint_status(c, "ok");
      continue;
    }
    LoadedCheckpoint ckpt;
    try {
      ckpt = load_checkpoint(o.checkpoints[c].path, o.params, device, dtype);
    } catch (const InputError& e) {
      store.set_checkpoint_status(c, std::string("failed: ") + error_text(e));
      ++summary.checkpoints_failed;
      progress.message(fmt::format("fisheval: warning: checkpoint {} ({}) failed and is skipped: {}", c,
                                   o.checkpoints[c].path, error_text(e)));
      finished += static_cast<int64_t>(todo.size());
      continue;
    }
    bool failed = false;
    for (const int64_t b : todo) {
      const auto batch = dataset->get(plan[b]);
      UnitResult unit;
      try {
        unit = runner.run(ckpt, batch, device, dtype, c, b);
      } catch (const InputError& e) {
        store.set_checkpoint_status(c, std::string("failed: ") + error_text(e));
        ++summary.checkpoints_failed;
        progress.message(fmt::format("fisheval: warning: checkpoint {} ({}) failed on batch {} and is skipped: {}", c,
                                     o.checkpoints[c].path, b, error_text(e)));
        failed = true;
        break;
      }
      store.put(unit);
      ++summary.units_computed;
      progress.update(++finished, fmt::format("checkpoint {}/{} (step {}) batch {}/{}", c + 1, C,
                                              o.checkpoints[c].step, b + 1, B));
    }
    if (failed) {
      finished = std::max(finished, static_cast<int64_t>(0));
      continue;
    }
    store.set_checkpoint_status(c, "ok");
  }
  store.finish();
  summary.seconds = progress.elapsed();
  return summary;
}

}  // namespace fisheval
