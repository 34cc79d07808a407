#include "eval/unit.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <numeric>

#include "base/numeric.h"
#include "base/text.h"
#include "base/error.h"
#include "checkpoints/load.h"
#include "eval/indicator.h"
#include "mvp/loss.h"
#include "solvers/direction_algebra.h"

namespace fisheval {
namespace {

std::vector<double> to_vector(const at::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

}  // namespace

std::vector<std::string> reference_methods(const SweepOptions& o) {
  if (o.ng_reference != "auto") return o.ng_reference == "none" ? std::vector<std::string>{} : std::vector{o.ng_reference};
  std::vector<std::string> out;
  for (const auto* name : {"ng-dense", "ng-cg"}) {
    if (std::find(o.methods.begin(), o.methods.end(), name) != o.methods.end()) out.emplace_back(name);
  }
  return out;
}

LoadedCheckpoint load_checkpoint(const std::string& path, const std::string& params, c10::Device device,
                                 c10::ScalarType dtype) {
  LoadedCheckpoint out;
  out.path = path;
  out.model = load_model(path);
  out.model->to(device, dtype);
  out.params = select_parameters(*out.model, params);
  check_finite_parameters(*out.model, out.params);
  set_trainable(*out.model, out.params);
  return out;
}


UnitRunner::UnitRunner(const SweepOptions& o, const RunInfo& info, std::vector<std::unique_ptr<solvers::UpdateMethod>>& methods,
                       Progress& progress, int64_t& warnings)
    : o_(o), info_(info), methods_(methods), progress_(progress), warnings_(warnings) {}

UnitResult UnitRunner::run(LoadedCheckpoint& ckpt, const Batch& batch, c10::Device device, c10::ScalarType dtype, int64_t c,
               int64_t b) {
  const auto t_shared = std::chrono::steady_clock::now();
  const auto on_device = batch.to(device, dtype);
  const auto& inputs = on_device.inputs;
  const auto& targets = on_device.targets;
  const auto loss_name = mvp::resolve_loss_name(o_.loss, ckpt.model->loss_hint(), targets);
  const auto loss = mvp::make_loss(loss_name);
  auto engines = o_.engines;
  if (ckpt.jvp_single) engines.auto_single = *ckpt.jvp_single;
  mvp::Linearisation lin(*ckpt.model, ckpt.params, inputs, engines);
  loss->check(lin.logits(), targets);
  if (engines.jvp == mvp::JvpEngine::kAuto && !ckpt.jvp_single) {
    std::string why;
    ckpt.jvp_single = lin.probe_jvp_engine(&why);
    lin.use_single_jvp_engine(*ckpt.jvp_single);
    if (!why.empty()) {
      progress_.message(fmt::format("fisheval: note: checkpoint {} ({}): JVPs by double backward: {}", c, ckpt.path,
                                    why));
    }
  }
  solvers::BatchState state(lin, *loss, targets,
                            {o_.mc_samples, batch_seed(o_.seed, b), o_.dedup_cosine, o_.block_products});
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
  v["num_params"] = {static_cast<double>(state.num_params())};
  u.parameters = describe_parameters(*ckpt.model, ckpt.params);
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

  solvers::Direction gdir;
  gdir.d = g;
  gdir.true_weights = torch::ones({state.num_samples()}, torch::kDouble);  // g = Jᵀ1
  const double gamma_sgd = indicator(g, g, solvers::fisher_quad(state, {gdir})[0].item<double>()).gamma;
  v["gamma_sgd"] = {gamma_sgd};
  double gamma_ng = kNaN;
  const auto refs = reference_methods(o_);
  for (size_t r = 0; r < refs.size(); ++r) {
    const auto& ref = refs[r];
    auto method = solvers::make_method(ref, o_.method_options);
    solvers::Direction dir;
    bool failed = false;
    try {
      dir = method->direction(state, 0.0);
    } catch (const InputError& e) {
      // A reference that does not fit this checkpoint (ng-dense past --dense-max-params or the
      // memory budget): the next candidate (auto: ng-cg), else γ/γ_ng is NaN.
      if (r + 1 < refs.size()) {
        if (skip_warned_.insert({c, -1 - static_cast<int64_t>(r)}).second) {
          warn(fmt::format("checkpoint {}: the natural-gradient reference {} does not apply ({}); using {}", c, ref,
                           first_line(e.what()), refs[r + 1]));
        }
        continue;
      }
      failed = true;
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) does not apply: {}; "
                       "gamma_rel_ng is NaN",
                       c, b, ref, first_line(e.what())));
    } catch (const std::exception& e) {
      // A numerical failure (an eigensolver that did not converge): γ/γ_ng is NaN, nothing else is lost.
      failed = true;
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) failed: {}; gamma_rel_ng is NaN",
                       c, b, ref, first_line(e.what())));
    }
    if (failed) {
      dir.status = solvers::SolveStatus::kNotConverged;
      dir.residual = kNaN;
    }
    const bool converged = dir.status != solvers::SolveStatus::kNotConverged;
    v["ng_converged"] = {converged ? 1.0 : 0.0};
    v["ng_iterations"] = {static_cast<double>(dir.iterations)};
    v["ng_residual"] = {dir.residual};
    if (converged) {
      gamma_ng = indicator(dir.d, g, solvers::fisher_quad(state, {dir})[0].item<double>()).gamma;
    } else if (!failed) {
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) did not converge "
                       "(relative residual {:.3g}); gamma_rel_ng is NaN",
                       c, b, ref, dir.residual));
    }
    break;
  }
  v["gamma_ng"] = {gamma_ng};
  v["seconds_shared"] = {seconds_since(t_shared)};

  for (int64_t m = 0; m < M; ++m) {
    auto& method = *methods_[m];
    // Every damping's direction first, then their dᵀFd in one batched product.
    const int64_t count = method.damped() ? D : 1;
    std::vector<solvers::Direction> dirs;
    std::vector<int64_t> computed;  // dampings whose direction exists
    std::vector<double> seconds(count, 0.0);
    // The directions of the dampings `js`, in one call or one each; false when the method
    // does not apply to this checkpoint.
    const auto attempt = [&](const std::vector<int64_t>& js) {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        std::vector<double> lambdas;
        for (const auto j : js) lambdas.push_back(v["damping_effective"][j]);
        auto got = js.size() == 1 ? std::vector<solvers::Direction>{method.weights_only(state, lambdas[0])}
                                  : method.directions(state, lambdas);
        for (size_t k = 0; k < js.size(); ++k) {
          dirs.push_back(std::move(got[k]));
          computed.push_back(js[k]);
        }
      } catch (const InputError& e) {
        // The method does not apply to this checkpoint (no layer blocks, too large for the
        // memory budget, ...): its cells stay NaN, the reason is recorded, the others go on.
        u.method_status[m] = std::string("skipped: ") + first_line(e.what());
        if (skip_warned_.insert({c, m}).second) {
          warn(fmt::format("checkpoint {}: method {} skipped: {}", c, method.name(), first_line(e.what())));
        }
        return false;
      } catch (const c10::Error& e) {
        // A numerical failure of these cells only (an eigensolver or factorisation that
        // did not converge on an ill-conditioned matrix): NaN, solve_status -1, a warning.
        warn(fmt::format("checkpoint {} batch {} method {} damping {:g}: the direction could not be computed "
                         "({}); recorded as NaN",
                         c, b, method.name(), o_.dampings[js.front()], first_line(e.what())));
      }
      const double each = seconds_since(t0) / static_cast<double>(js.size());
      for (const auto j : js) seconds[j] = each;
      return true;
    };
    if (method.solves_dampings_together() && count > 1) {
      std::vector<int64_t> all(count);
      std::iota(all.begin(), all.end(), 0);
      attempt(all);
    } else {
      for (int64_t j = 0; j < count && attempt({j}); ++j) {
      }
    }
    if (dirs.empty()) continue;
    // An iterative solve that stopped at its cap is reported, not only recorded (solve_status 2).
    for (size_t k = 0; k < dirs.size(); ++k) {
      if (dirs[k].status == solvers::SolveStatus::kNotConverged && skip_warned_.insert({c, m}).second) {
        warn(fmt::format("checkpoint {} batch {}: {} did not converge at λ = {:g} within {} iterations (relative "
                         "residual {:.3g}); its cells have solve_status 2 (raise --cg-max-iter or the damping)",
                         c, b, method.name(), v["damping_effective"][computed[k]], dirs[k].iterations,
                         dirs[k].residual));
      }
    }
    const auto t_quad = std::chrono::steady_clock::now();
    const auto quads = solvers::fisher_quad(state, dirs);
    const double quad_seconds = seconds_since(t_quad) / static_cast<double>(dirs.size());
    for (int64_t j = 0; j < D; ++j) {
      const int64_t cell = m * D + j;
      const int64_t jj = std::min(j, count - 1);  // undamped methods: one direction for every damping
      const auto at = std::find(computed.begin(), computed.end(), jj);
      if (at == computed.end()) continue;
      const auto k = static_cast<size_t>(at - computed.begin());
      const auto& dir = dirs[k];
      const double quad = quads[k].item<double>();
      IndicatorValues iv;
      if (dir.d.defined()) {
        iv = indicator(dir.d, g, quad);
      } else {  // given by weights or basis blocks: dᵀg and ‖d‖² without forming d
        const auto [dg, dd] = solvers::products(state, dir);
        iv = indicator(dg, dd, v["grad_norm"][0], quad);
      }
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
      v["seconds"][cell] = seconds[jj] + quad_seconds;
      if (method.name() == "ng-cg" && info_.cg_history_length > 0) {
        for (size_t i = 0; i < dir.residual_history.size() && i < size_t(info_.cg_history_length); ++i) {
          v["cg_residual_history"][j * info_.cg_history_length + i] = dir.residual_history[i];
        }
      }
      if (!std::isfinite(iv.gamma) && j < count) {
        warn(fmt::format("checkpoint {} batch {} method {} damping {:g}: γ is not finite (dᵀg = {:g}, dᵀFd = {:g})",
                         c, b, method.name(), o_.dampings[j], iv.d_dot_g, iv.d_fisher_d));
      }
    }
  }
  return u;
}

void UnitRunner::warn(const std::string& what) {
  ++warnings_;
  progress_.message("fisheval: warning: " + what);
}

}  // namespace fisheval
