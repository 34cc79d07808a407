#include "eval/sweep.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "base/error.h"
#include "checkpoints/load.h"
#include "eval/build_info.h"
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
  info.dampings = o.dampings;
  const bool has_cg = std::find(o.methods.begin(), o.methods.end(), "ng-cg") != o.methods.end();
  info.cg_history_length = has_cg ? o.method_options.cg.max_iter + 1 : 0;
  auto& s = info.settings;
  s["data"] = o.data;
  s["loss"] = o.loss;
  s["params"] = o.params;
  s["batch_size"] = std::to_string(o.batch_size);
  s["batch_sampling"] = o.sampling == BatchSampling::kRandom ? "random" : "sequential";
  s["seed"] = std::to_string(o.seed);
  s["damping_mode"] = solvers::to_string(o.damping_mode);
  s["damping_reference"] = solvers::to_string(o.damping_reference);
  s["dtype"] = o.dtype;
  s["mc_samples"] = std::to_string(o.mc_samples);
  s["dedup_cosine"] = fmt::format("{:g}", o.dedup_cosine);
  s["ng_reference"] = o.ng_reference;
  s["singular"] = o.method_options.singular == solvers::SingularPolicy::kError ? "error" : "pinv";
  s["cg_max_iter"] = std::to_string(o.method_options.cg.max_iter);
  s["cg_rtol"] = fmt::format("{:g}", o.method_options.cg.rtol);
  s["kfac_approx"] = o.method_options.kfac_reduce ? "reduce" : "expand";
  s["shampoo_epsilon"] = fmt::format("{:g}", o.method_options.shampoo_epsilon);
  if (!o.method_options.local_layers.empty()) {
    s["local_layers"] = fmt::format("{}", fmt::join(o.method_options.local_layers, ","));
  }
  return info;
}

std::pair<int64_t, int64_t> shard_range(int64_t total, int64_t index, int64_t count) {
  const int64_t base = total / count, extra = total % count;
  const int64_t begin = index * base + std::min(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

uint64_t batch_seed(uint64_t seed, int64_t batch) {
  // splitmix64 of (seed, batch)
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(batch + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
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

c10::ScalarType resolve_dtype(const std::string& dtype, const std::string& device) {
  if (dtype == "float64") return torch::kDouble;
  if (dtype == "float32") return torch::kFloat;
  if (dtype == "auto") return resolve_device(device).is_cuda() ? torch::kFloat : torch::kDouble;
  throw InputError(fmt::format("unknown --dtype '{}' (auto, float32, float64)", dtype));
}

SweepSummary run_sweep(const SweepOptions& options) {
  SweepOptions o = options;
  if (o.checkpoints.empty()) throw InputError("no checkpoints given (--checkpoints or --series)");
  if (o.methods.empty()) throw InputError("no methods given (--methods)");
  if (o.dampings.empty()) throw InputError("no damping values given (--damping or --damping-grid)");
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count) {
    throw InputError(fmt::format("--shard {}/{}: need 1 ≤ I ≤ N", o.shard_index + 1, o.shard_count));
  }
  if (o.mc_samples < 1) throw InputError("--mc-samples must be at least 1");
  const auto device = resolve_device(o.device);
  const auto dtype = resolve_dtype(o.dtype, o.device);
  if (o.max_output_units < 1) throw InputError("--max-output-units must be at least 1");
  o.method_options.budget = {resolve_memory_budget(o.memory_budget, device), o.max_output_units};
  o.engines.max_output_units = o.max_output_units;
  std::vector<std::unique_ptr<solvers::UpdateMethod>> methods;
  for (const auto& name : o.methods) methods.push_back(solvers::make_method(name, o.method_options));
  for (const auto& ref : reference_methods(o)) solvers::make_method(ref, o.method_options);  // validates the name

  const auto dataset = open_dataset(o.data);
  const auto plan = plan_batches(dataset->size(), o.batch_size, o.num_batches, o.sampling, o.seed);
  const RunInfo info = make_run_info(o, plan);

  auto metadata = o.metadata;
  for (const auto& [key, value] : build_info()) metadata[key] = value;
  metadata["device"] = device.str();
  metadata["dtype_resolved"] = dtype == torch::kDouble ? "float64" : "float32";
  metadata["shard"] = fmt::format("{}/{}", o.shard_index + 1, o.shard_count);
  metadata["memory_budget_gib"] = fmt::format("{:.3g}", o.method_options.budget.memory_bytes / (1024.0 * 1024 * 1024));
  metadata["max_output_units"] = std::to_string(o.max_output_units);
  metadata["data_description"] = dataset->description();
  ResultStore store(o.out, info, metadata, o.overwrite);

  const int64_t C = info.num_checkpoints(), B = info.num_batches();
  const auto [begin, end] = shard_range(C * B, o.shard_index, o.shard_count);
  SweepSummary summary;
  summary.out = o.out;
  summary.units_total = end - begin;
  for (int64_t u = begin; u < end; ++u) summary.units_imported += store.done(u / B, u % B) ? 1 : 0;
  Progress progress("eval", summary.units_total, o.progress);
  if (summary.units_imported > 0) {
    progress.message(fmt::format("fisheval: resuming: {} of {} units already in '{}' or its .parts folder",
                                 summary.units_imported, summary.units_total, o.out));
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
      store.set_checkpoint_status(c, std::string("failed: ") + e.what());
      ++summary.checkpoints_failed;
      progress.message(fmt::format("fisheval: warning: checkpoint {} ({}) failed and is skipped: {}", c,
                                   o.checkpoints[c].path, e.what()));
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
        store.set_checkpoint_status(c, std::string("failed: ") + e.what());
        ++summary.checkpoints_failed;
        progress.message(fmt::format("fisheval: warning: checkpoint {} ({}) failed on batch {} and is skipped: {}", c,
                                     o.checkpoints[c].path, b, e.what()));
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
