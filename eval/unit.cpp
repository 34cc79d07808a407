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
#include "eval/error_text.h"
#include "mvp/loss.h"
#include "solvers/direction_algebra.h"
#include "solvers/one_thread.h"

namespace fisheval {
namespace {

std::vector<double> to_vector(const at::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kDouble).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

// The measures of one (method, damping) cell.
struct CellMeasures {
  IndicatorValues iv;
  double gamma_sgd = 0, gamma_ng = 0;  // γ of SGD and of the natural-gradient reference
  solvers::SolveStatus status = solvers::SolveStatus::kExact;
  int64_t iterations = 0;
  double residual = 0;
  double seconds = 0;
};

void write_cell(UnitResult& u, int64_t cell, const CellMeasures& m) {
  auto& v = u.values;
  v["gamma"][cell] = m.iv.gamma;
  v["gamma_rel_sgd"][cell] = m.iv.gamma / m.gamma_sgd;
  v["gamma_rel_ng"][cell] = m.iv.gamma / m.gamma_ng;
  v["cosine_sgd"][cell] = m.iv.cosine;
  v["update_norm"][cell] = m.iv.update_norm;
  v["d_dot_g"][cell] = m.iv.d_dot_g;
  v["d_fisher_d"][cell] = m.iv.d_fisher_d;
  v["solve_status"][cell] = static_cast<double>(m.status);
  v["cg_iterations"][cell] = static_cast<double>(m.iterations);
  v["cg_residual"][cell] = m.residual;
  v["seconds"][cell] = m.seconds;
}

}  // namespace

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



// One unit's shared state, built by run() and read by its steps.
struct UnitRunner::Unit {
  LoadedCheckpoint& ckpt;
  mvp::Linearisation& lin;
  const mvp::Loss& loss;
  const at::Tensor& targets;
  solvers::BatchState& state;
  int64_t c, b;
  UnitResult u;
  double gamma_sgd = kNaN, gamma_ng = kNaN;
};

// One method's directions: those computed, the dampings they belong to, their solve seconds.
struct UnitRunner::Computed {
  int64_t count = 1;                 // directions the method makes (1 for an undamped method)
  std::vector<solvers::Direction> dirs;
  std::vector<int64_t> dampings;     // damping index of each direction
  std::vector<double> seconds;       // per damping index
};

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
  solvers::BatchState state(lin, *loss, targets, o_.batch_state(batch_seed(o_.batches.seed, b)));
  if (!lin.engine_note().empty() && !noted_) {
    progress_.message("fisheval: note: " + lin.engine_note());
    noted_ = true;
  }

  Unit x{ckpt, lin, *loss, targets, state, c, b, {}};
  x.u.checkpoint = c;
  x.u.batch = b;
  for (const auto& m : result_measures()) {
    if (m.shape == MeasureShape::kCgHistory && info_.cg_history_length == 0) continue;
    x.u.values[m.name].assign(info_.unit_size(m.shape), m.integer ? -1.0 : kNaN);
  }
  if (!batch_statistics(x)) return std::move(x.u);
  natural_gradient_reference(x);
  x.u.values["seconds_shared"] = {seconds_since(t_shared)};
  // Small layer blocks (LoRA factors): the methods' work is on small matrices, which runs
  // faster on one thread (solvers/one_thread.h).
  const solvers::OneThread one_thread(x.state.small_blocks());
  for (int64_t m = 0; m < info_.num_methods(); ++m) {
    const auto got = method_directions(x, m);
    if (!got.dirs.empty()) score(x, m, got);
  }
  return std::move(x.u);
}

// Per-batch statistics, the effective dampings and γ of SGD.
bool UnitRunner::batch_statistics(Unit& x) {
  auto& v = x.u.values;
  auto& state = x.state;
  // The output-unit taps first when the indicator will use them (logit_jvp): every later
  // set of layer output gradients (true and sampled labels, the Kronecker statistics) and g
  // itself are then combinations of them instead of backward passes.
  if (x.lin.unit_grads_affordable()) x.lin.unit_grads();
  const solvers::OneThread one_thread(state.small_blocks());  // the statistics of small blocks
  const auto& g = state.grad();
  v["loss"] = {state.loss()};
  v["grad_norm"] = {g.norm().item<double>()};
  v["per_sample_loss"] = to_vector(state.per_sample_loss());
  v["target_prob"] = to_vector(x.loss.target_prob(x.lin.logits(), x.targets));
  v["logit_grad_norm_sq"] = to_vector(state.logit_grad_norm_sq());
  v["per_sample_grad_norm"] = to_vector(state.per_sample_grad_norm());
  v["grad_norm_imbalance"] = {imbalance(state.per_sample_grad_norm())};
  v["logit_grad_norm_imbalance"] = {imbalance(state.logit_grad_norm_sq().sqrt())};
  v["kept_samples"] = {static_cast<double>(state.kept().numel())};
  v["num_params"] = {static_cast<double>(state.num_params())};
  x.u.parameters = describe_parameters(*x.ckpt.model, x.ckpt.params);
  if (!std::isfinite(v["loss"][0]) || !std::isfinite(v["grad_norm"][0])) {
    warn(fmt::format("checkpoint {} batch {}: the loss or gradient is not finite (loss {}); the batch's measures are "
                     "recorded as NaN",
                     x.c, x.b, v["loss"][0]));
    return false;
  }
  // ‖∇θ l_n‖ = sqrt(C_nn): infinite when the squared per-sample gradient norms overflow,
  // and then every Gram solve would be of an infinite matrix.
  const auto& norms = v["per_sample_grad_norm"];
  if (!std::all_of(norms.begin(), norms.end(), [](double n) { return std::isfinite(n); })) {
    warn(fmt::format("checkpoint {} batch {}: the per-sample gradients overflow (‖∇θ l_n‖² is not finite; loss {}); "
                     "the batch's directions and γ are recorded as NaN",
                     x.c, x.b, v["loss"][0]));
    return false;
  }
  const double scale = solvers::damping_scale(o_.damping.mode, o_.damping.reference, state);
  for (int64_t j = 0; j < info_.num_dampings(); ++j) v["damping_effective"][j] = o_.damping.values[j] * scale;

  solvers::Direction gdir;
  gdir.d = g;
  gdir.true_weights = torch::ones({state.num_samples()}, torch::kDouble);  // g = Jᵀ1
  x.gamma_sgd = indicator(g, g, solvers::fisher_quad(state, {gdir})[0].item<double>()).gamma;
  v["gamma_sgd"] = {x.gamma_sgd};
  return true;
}

// γ of the natural-gradient reference at λ = 0 (ng_converged, ng_iterations, ng_residual,
// gamma_ng): the first candidate that applies; NaN when none does or it fails numerically.
void UnitRunner::natural_gradient_reference(Unit& x) {
  auto& v = x.u.values;
  const auto& g = x.state.grad();
  const auto refs = reference_methods(o_);
  for (size_t r = 0; r < refs.size(); ++r) {
    const auto& ref = refs[r];
    auto method = solvers::make_method(ref, o_.method_options);
    solvers::Direction dir;
    bool failed = false;
    try {
      dir = method->direction(x.state, 0.0);
    } catch (const InputError& e) {
      // A reference that does not fit this checkpoint (ng-dense past --dense-max-params or the
      // memory budget): the next candidate (auto: ng-cg), else γ/γ_ng is NaN.
      if (r + 1 < refs.size()) {
        if (skip_warned_.insert({x.c, -1 - static_cast<int64_t>(r)}).second) {
          warn(fmt::format("checkpoint {}: the natural-gradient reference {} does not apply ({}); using {}", x.c, ref,
                           error_line(e), refs[r + 1]));
        }
        continue;
      }
      failed = true;
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) does not apply: {}; "
                       "gamma_rel_ng is NaN",
                       x.c, x.b, ref, error_line(e)));
    } catch (const NumericalError& e) {
      failed = true;
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) failed: {}; gamma_rel_ng is NaN",
                       x.c, x.b, ref, error_line(e)));
    } catch (const c10::LinAlgError& e) {
      // An eigensolver or factorisation that did not converge: γ/γ_ng is NaN, nothing else is lost.
      failed = true;
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) failed: {}; gamma_rel_ng is NaN",
                       x.c, x.b, ref, error_line(e)));
    } catch (const c10::OutOfMemoryError& e) {
      // The device ran out of memory for it: likewise.
      failed = true;
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) ran out of memory: {}; "
                       "gamma_rel_ng is NaN",
                       x.c, x.b, ref, error_line(e)));
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
      x.gamma_ng = indicator(dir.d, g, solvers::fisher_quad(x.state, {dir})[0].item<double>()).gamma;
    } else if (!failed) {
      warn(fmt::format("checkpoint {} batch {}: the natural-gradient reference ({}) did not converge "
                       "(relative residual {:.3g}); gamma_rel_ng is NaN",
                       x.c, x.b, ref, dir.residual));
    }
    break;
  }
  v["gamma_ng"] = {x.gamma_ng};
}

// Method m's direction at every damping, in one call (solves_dampings_together) or one
// each. InputError: the method does not apply (skipped, its reason in method_status);
// a numerical failure: those cells stay NaN with a warning; anything else propagates.
UnitRunner::Computed UnitRunner::method_directions(Unit& x, int64_t m) {
  auto& method = *methods_[m];
  const auto& lambda = x.u.values["damping_effective"];
  Computed out;
  out.count = solvers::method_info(method.name()).damped ? info_.num_dampings() : 1;
  out.seconds.assign(out.count, 0.0);
  // The directions of the dampings `js`; false when the method does not apply to this checkpoint.
  const auto attempt = [&](const std::vector<int64_t>& js) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto numerical_failure = [&](const std::exception& what) {
      warn(fmt::format("checkpoint {} batch {} method {} damping {:g}: the direction could not be computed "
                       "({}); recorded as NaN",
                       x.c, x.b, method.name(), o_.damping.values[js.front()], error_line(what)));
    };
    try {
      std::vector<double> lambdas;
      for (const auto j : js) lambdas.push_back(lambda[j]);
      auto got = js.size() == 1 ? std::vector<solvers::Direction>{method.weights_only(x.state, lambdas[0])}
                                : method.directions(x.state, lambdas);
      for (size_t k = 0; k < js.size(); ++k) {
        out.dirs.push_back(std::move(got[k]));
        out.dampings.push_back(js[k]);
      }
    } catch (const InputError& e) {
      // The method does not apply to this checkpoint (no layer blocks, too large for the
      // memory budget, ...): its cells stay NaN, the reason is recorded, the others go on.
      x.u.method_status[m] = std::string("skipped: ") + error_line(e);
      if (skip_warned_.insert({x.c, m}).second) {
        warn(fmt::format("checkpoint {}: method {} skipped: {}", x.c, method.name(), error_line(e)));
      }
      return false;
    } catch (const NumericalError& e) {
      numerical_failure(e);  // these cells only: NaN, solve_status -1, a warning
    } catch (const c10::LinAlgError& e) {
      numerical_failure(e);  // an eigensolver or factorisation that did not converge
    } catch (const c10::OutOfMemoryError& e) {
      numerical_failure(e);  // the device ran out of memory for these cells
    }
    const double each = seconds_since(t0) / static_cast<double>(js.size());
    for (const auto j : js) out.seconds[j] = each;
    return true;
  };
  if (method.solves_dampings_together() && out.count > 1) {
    std::vector<int64_t> all(out.count);
    std::iota(all.begin(), all.end(), 0);
    attempt(all);
  } else {
    for (int64_t j = 0; j < out.count && attempt({j}); ++j) {
    }
  }
  return out;
}

// The indicator of each direction of method m (their dᵀFd in one batched product) into
// the method's cells; an undamped method's one direction fills every damping.
void UnitRunner::score(Unit& x, int64_t m, const Computed& got) {
  auto& method = *methods_[m];
  auto& v = x.u.values;
  const auto& g = x.state.grad();
  const int64_t D = info_.num_dampings();
  // An iterative solve that stopped at its cap is reported, not only recorded (solve_status 2).
  for (size_t k = 0; k < got.dirs.size(); ++k) {
    if (got.dirs[k].status == solvers::SolveStatus::kNotConverged && skip_warned_.insert({x.c, m}).second) {
      warn(fmt::format("checkpoint {} batch {}: {} did not converge at λ = {:g} within {} iterations (relative "
                       "residual {:.3g}); its cells have solve_status 2 (raise --cg-max-iter or the damping)",
                       x.c, x.b, method.name(), v["damping_effective"][got.dampings[k]], got.dirs[k].iterations,
                       got.dirs[k].residual));
    }
  }
  const auto t_quad = std::chrono::steady_clock::now();
  const auto quads = solvers::fisher_quad(x.state, got.dirs);
  const double quad_seconds = seconds_since(t_quad) / static_cast<double>(got.dirs.size());
  const int64_t H = info_.cg_history_length;
  const bool history = H > 0 && solvers::method_info(method.name()).records_residuals;
  for (int64_t j = 0; j < D; ++j) {
    const int64_t jj = std::min(j, got.count - 1);  // undamped methods: one direction for every damping
    const auto at = std::find(got.dampings.begin(), got.dampings.end(), jj);
    if (at == got.dampings.end()) continue;
    const auto k = static_cast<size_t>(at - got.dampings.begin());
    const auto& dir = got.dirs[k];
    const double quad = quads[k].item<double>();
    CellMeasures cell;
    if (dir.d.defined()) {
      cell.iv = indicator(dir.d, g, quad);
    } else {  // given by weights or basis blocks: dᵀg and ‖d‖² without forming d
      const auto [dg, dd] = solvers::products(x.state, dir);
      cell.iv = indicator(dg, dd, v["grad_norm"][0], quad);
    }
    cell.gamma_sgd = x.gamma_sgd;
    cell.gamma_ng = x.gamma_ng;
    cell.status = dir.status;
    cell.iterations = dir.iterations;
    cell.residual = dir.residual;
    cell.seconds = got.seconds[jj] + quad_seconds;
    write_cell(x.u, m * D + j, cell);
    // An iterative method's residual after each iteration (cg_residual_history).
    if (history) {
      for (size_t i = 0; i < dir.residual_history.size() && i < size_t(H); ++i) {
        v["cg_residual_history"][j * H + i] = dir.residual_history[i];
      }
    }
    if (!std::isfinite(cell.iv.gamma) && j < got.count) {
      warn(fmt::format("checkpoint {} batch {} method {} damping {:g}: γ is not finite (dᵀg = {:g}, dᵀFd = {:g})",
                       x.c, x.b, method.name(), o_.damping.values[j], cell.iv.d_dot_g, cell.iv.d_fisher_d));
    }
  }
}

void UnitRunner::warn(const std::string& what) {
  ++warnings_;
  progress_.message("fisheval: warning: " + what);
}

}  // namespace fisheval
