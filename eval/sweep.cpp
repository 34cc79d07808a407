#include "eval/sweep.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "checkpoints/error.h"
#include "checkpoints/load.h"
#include "eval/indicator.h"
#include "eval/progress.h"
#include "mvp/loss.h"
#include "reports/results.h"

namespace fisheval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::vector<double> to_vector(const at::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

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
  return info;
}

// The natural-gradient reference for γ/γ_ng: at λ = 0.
std::string reference_method(const SweepOptions& o) {
  if (o.ng_reference != "auto") return o.ng_reference == "none" ? "" : o.ng_reference;
  for (const auto* name : {"ng-dense", "ng-cg"}) {
    if (std::find(o.methods.begin(), o.methods.end(), name) != o.methods.end()) return name;
  }
  return "";
}

struct LoadedCheckpoint {
  std::unique_ptr<Model> model;
  std::vector<std::string> params;
};

LoadedCheckpoint load_checkpoint(const CheckpointEntry& entry, const SweepOptions& o, c10::Device device,
                                 c10::ScalarType dtype) {
  LoadedCheckpoint out;
  out.model = load_model(entry.path);
  out.model->to(device, dtype);
  out.params = select_parameters(*out.model, o.params);
  check_finite_parameters(*out.model, out.params);
  set_trainable(*out.model, out.params);
  return out;
}

class UnitRunner {
 public:
  UnitRunner(const SweepOptions& o, const RunInfo& info, std::vector<std::unique_ptr<solvers::UpdateMethod>>& methods,
             Progress& progress, int64_t& warnings)
      : o_(o), info_(info), methods_(methods), progress_(progress), warnings_(warnings) {}

  UnitResult run(LoadedCheckpoint& ckpt, const Batch& batch, c10::Device device, c10::ScalarType dtype, int64_t c,
                 int64_t b) {
    const auto t_shared = std::chrono::steady_clock::now();
    auto inputs = batch.inputs.is_floating_point() ? batch.inputs.to(device, dtype) : batch.inputs.to(device);
    auto targets = batch.targets.is_floating_point() ? batch.targets.to(device, dtype) : batch.targets.to(device);
    const auto loss_name = mvp::resolve_loss_name(o_.loss, ckpt.model->loss_hint(), targets);
    const auto loss = mvp::make_loss(loss_name);
    mvp::Linearisation lin(*ckpt.model, ckpt.params, inputs, o_.engines);
    loss->check(lin.logits(), targets);
    solvers::BatchState state(lin, *loss, targets,
                              {o_.mc_samples, batch_seed(o_.seed, b), o_.dedup_cosine});
    if (!lin.engine_note().empty() && !noted_) {
      progress_.message("fisheval: note: " + lin.engine_note());
      noted_ = true;
    }

    UnitResult u;
    u.checkpoint = c;
    u.batch = b;
    const int64_t M = info_.num_methods(), D = info_.num_dampings();
    for (const auto& m : result_measures()) {
      if (m.shape == MeasureShape::kCgHistory && info_.cg_history_length == 0) continue;
      u.values[m.name].assign(info_.unit_size(m.shape), m.integer ? -1.0 : kNaN);
    }
    auto& v = u.values;

    // Per-batch statistics.
    const auto& g = state.grad();
    v["loss"] = {state.loss()};
    v["grad_norm"] = {g.norm().item<double>()};
    v["per_sample_loss"] = to_vector(state.per_sample_loss());
    v["target_prob"] = to_vector(loss->target_prob(lin.logits(), targets));
    v["logit_grad_norm_sq"] = to_vector(state.logit_grad_norm_sq());
    v["per_sample_grad_norm"] = to_vector(state.per_sample_grad_norm());
    v["grad_norm_imbalance"] = {imbalance(state.per_sample_grad_norm())};
    v["logit_grad_norm_imbalance"] = {imbalance(state.logit_grad_norm_sq().sqrt())};
    v["kept_samples"] = {static_cast<double>(state.kept().numel())};
    if (!std::isfinite(v["loss"][0]) || !std::isfinite(v["grad_norm"][0])) {
      warn(fmt::format("checkpoint {} batch {}: the loss or gradient is not finite (loss {}); the batch's measures are "
                       "recorded as NaN",
                       c, b, v["loss"][0]));
      return u;
    }
    // ‖∇θ l_n‖ = sqrt(C_nn): infinite when the squared per-sample gradient norms overflow,
    // and then every Gram solve would be of an infinite matrix.
    const auto& norms = v["per_sample_grad_norm"];
    if (!std::all_of(norms.begin(), norms.end(), [](double x) { return std::isfinite(x); })) {
      warn(fmt::format("checkpoint {} batch {}: the per-sample gradients overflow (‖∇θ l_n‖² is not finite; loss {}); "
                       "the batch's directions and γ are recorded as NaN",
                       c, b, v["loss"][0]));
      return u;
    }
    const double scale = solvers::damping_scale(o_.damping_mode, o_.damping_reference, state);
    for (int64_t j = 0; j < D; ++j) v["damping_effective"][j] = o_.dampings[j] * scale;

    const double gamma_sgd = indicator(g, g, state.fisher().quad(g)).gamma;
    v["gamma_sgd"] = {gamma_sgd};
    double gamma_ng = kNaN;
    const auto ref = reference_method(o_);
    if (!ref.empty()) {
      auto method = solvers::make_method(ref, o_.method_options);
      solvers::Direction dir;
      try {
        dir = method->direction(state, 0.0);
      } catch (const c10::Error& e) {  // a numerical failure (e.g. an eigensolver that did not converge)
        dir.status = solvers::SolveStatus::kNotConverged;
        dir.residual = kNaN;
        warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) failed: {}", c, b, ref,
                         first_line(e.what())));
      }
      const bool converged = dir.status != solvers::SolveStatus::kNotConverged;
      v["ng_converged"] = {converged ? 1.0 : 0.0};
      if (converged) {
        gamma_ng = indicator(dir.d, g, state.fisher().quad(dir.d)).gamma;
      } else {
        warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) did not converge "
                         "(relative residual {:.3g}); gamma_rel_ng is NaN",
                         c, b, ref, dir.residual));
      }
    }
    v["gamma_ng"] = {gamma_ng};
    v["seconds_shared"] = {seconds_since(t_shared)};

    for (int64_t m = 0; m < M; ++m) {
      auto& method = *methods_[m];
      for (int64_t j = 0; j < D; ++j) {
        const int64_t cell = m * D + j;
        if (!method.damped() && j > 0) {  // one direction for every damping
          for (const auto& spec : result_measures()) {
            if (spec.shape == MeasureShape::kCell) v[spec.name][cell] = v[spec.name][m * D];
          }
          continue;
        }
        const auto t0 = std::chrono::steady_clock::now();
        solvers::Direction dir;
        try {
          dir = method.direction(state, v["damping_effective"][j]);
        } catch (const c10::Error& e) {
          // A numerical failure of this cell only (an eigensolver or factorisation that
          // did not converge on an ill-conditioned matrix): NaN, solve_status -1, a warning.
          warn(fmt::format("checkpoint {} batch {} method {} damping {:g}: the direction could not be computed "
                           "({}); recorded as NaN",
                           c, b, method.name(), o_.dampings[j], first_line(e.what())));
          continue;
        }
        const auto iv = indicator(dir.d, g, state.fisher().quad(dir.d));
        v["gamma"][cell] = iv.gamma;
        v["gamma_rel_sgd"][cell] = iv.gamma / gamma_sgd;
        v["gamma_rel_ng"][cell] = iv.gamma / gamma_ng;
        v["cosine_sgd"][cell] = iv.cosine;
        v["update_norm"][cell] = iv.update_norm;
        v["d_dot_g"][cell] = iv.d_dot_g;
        v["d_fisher_d"][cell] = iv.d_fisher_d;
        v["solve_status"][cell] = static_cast<double>(dir.status);
        v["cg_iterations"][cell] = static_cast<double>(dir.iterations);
        v["cg_residual"][cell] = dir.residual;
        v["seconds"][cell] = seconds_since(t0);
        if (method.name() == "ng-cg" && info_.cg_history_length > 0) {
          for (size_t i = 0; i < dir.residual_history.size() && i < size_t(info_.cg_history_length); ++i) {
            v["cg_residual_history"][j * info_.cg_history_length + i] = dir.residual_history[i];
          }
        }
        if (!std::isfinite(iv.gamma)) {
          warn(fmt::format("checkpoint {} batch {} method {} damping {:g}: γ is not finite (dᵀg = {:g}, dᵀFd = {:g})",
                           c, b, method.name(), o_.dampings[j], iv.d_dot_g, iv.d_fisher_d));
        }
      }
    }
    return u;
  }

 private:
  void warn(const std::string& what) {
    ++warnings_;
    progress_.message("fisheval: warning: " + what);
  }

  const SweepOptions& o_;
  const RunInfo& info_;
  std::vector<std::unique_ptr<solvers::UpdateMethod>>& methods_;
  Progress& progress_;
  int64_t& warnings_;
  bool noted_ = false;
};

}  // namespace

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
  c10::Device dev(c10::kCPU);
  try {
    dev = c10::Device(device);
  } catch (const c10::Error&) {
    throw InputError(fmt::format("unknown --device '{}' (cpu, cuda, cuda:N)", device));
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

SweepSummary run_sweep(const SweepOptions& o) {
  if (o.checkpoints.empty()) throw InputError("no checkpoints given (--checkpoints or --series)");
  if (o.methods.empty()) throw InputError("no methods given (--methods)");
  if (o.dampings.empty()) throw InputError("no damping values given (--damping or --damping-grid)");
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count) {
    throw InputError(fmt::format("--shard {}/{}: need 1 ≤ I ≤ N", o.shard_index + 1, o.shard_count));
  }
  if (o.mc_samples < 1) throw InputError("--mc-samples must be at least 1");
  const auto device = resolve_device(o.device);
  const auto dtype = resolve_dtype(o.dtype, o.device);
  std::vector<std::unique_ptr<solvers::UpdateMethod>> methods;
  for (const auto& name : o.methods) methods.push_back(solvers::make_method(name, o.method_options));
  const auto ref = reference_method(o);
  if (!ref.empty()) solvers::make_method(ref, o.method_options);  // validates the name

  const auto dataset = open_dataset(o.data);
  const auto plan = plan_batches(dataset->size(), o.batch_size, o.num_batches, o.sampling, o.seed);
  const RunInfo info = make_run_info(o, plan);

  auto metadata = o.metadata;
  metadata["fisheval_version"] = FISHEVAL_VERSION;
  metadata["torch_version"] = TORCH_VERSION;
  metadata["device"] = device.str();
  metadata["dtype_resolved"] = dtype == torch::kDouble ? "float64" : "float32";
  metadata["shard"] = fmt::format("{}/{}", o.shard_index + 1, o.shard_count);
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
      ckpt = load_checkpoint(o.checkpoints[c], o, device, dtype);
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
