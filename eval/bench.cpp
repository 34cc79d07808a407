#include "eval/bench.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>

#include "checkpoints/dataset.h"
#include "base/error.h"
#include "eval/sweep.h"
#include "eval/unit.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "solvers/batch_state.h"
#include "solvers/direction_algebra.h"
#include "solvers/damping.h"
#include "solvers/one_thread.h"
#include "solvers/update_method.h"

namespace fisheval {
namespace {

// Host memory: the current and peak resident set (kB) from /proc, and a peak reset.
int64_t proc_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::string(key).size()));
  }
  return 0;
}
void reset_peak() { std::ofstream("/proc/self/clear_refs") << "5"; }

struct Timing {
  std::vector<double> ms;
  double peak_mb = 0;
};

// Runs setup() (untimed) then stage(context) `repeats` times; device-synchronised.
template <class Setup, class Stage>
Timing measure(int64_t repeats, c10::Device device, Setup&& setup, Stage&& stage) {
  Timing t;
  for (int64_t r = 0; r < repeats; ++r) {
    auto context = setup();
    if (device.is_cuda()) torch::cuda::synchronize();
    const int64_t rss = proc_status_kb("VmRSS:");
    reset_peak();
    const auto t0 = std::chrono::steady_clock::now();
    stage(context);
    if (device.is_cuda()) torch::cuda::synchronize();
    t.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    t.peak_mb = std::max(t.peak_mb, (proc_status_kb("VmHWM:") - rss) / 1024.0);
  }
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

}  // namespace

std::string BenchReport::table() const {
  std::string out = fmt::format(
      "fisheval bench: {} on {}: N = {}, P = {}, outputs per sample {}, {} on {} ({} threads), per-sample engine {}\n\n",
      model, data, samples, params, outputs, dtype, device, threads, per_sample_engine);
  out += fmt::format("{:<58} {:>11} {:>11} {:>10} {:>12}\n", "stage", "median ms", "min ms", "× fwd+bwd", "peak +MiB");
  for (const auto& r : rows) {
    out += fmt::format("{:<58} {:>11.3f} {:>11.3f} {:>10.2f} {:>12.1f}{}\n", r.stage, r.median_ms, r.min_ms, r.ratio,
                       r.peak_mb, r.note.empty() ? "" : "  " + r.note);
  }
  return out;
}

std::string BenchReport::json() const {
  std::string rows_json;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    rows_json += fmt::format(
        "{}    {{\"stage\": \"{}\", \"median_ms\": {:.6f}, \"min_ms\": {:.6f}, \"ratio\": {:.6f}, \"peak_mb\": {:.3f}}}",
        i ? ",\n" : "", r.stage, r.median_ms, r.min_ms, r.ratio, r.peak_mb);
  }
  return fmt::format(
      "{{\n  \"model\": \"{}\", \"data\": \"{}\", \"samples\": {}, \"params\": {}, \"outputs\": {}, \"dtype\": \"{}\",\n"
      "  \"device\": \"{}\", \"threads\": {}, \"per_sample_engine\": \"{}\",\n  \"rows\": [\n{}\n  ]\n}}\n",
      model, data, samples, params, outputs, dtype, device, threads, per_sample_engine, rows_json);
}

BenchReport run_bench(const BenchOptions& o) {
  if (o.checkpoint.empty()) throw InputError("bench: --checkpoint FILE is required");
  if (o.repeats < 1 || o.dampings < 1) throw InputError("bench: --repeats and --dampings must be positive");
  const auto device = resolve_device(o.device);
  const auto dtype = resolve_dtype(kDtypes.parse(o.dtype), o.device);
  auto ckpt = load_checkpoint(o.checkpoint, o.params, device, dtype);
  auto& model = *ckpt.model;
  const auto dataset = open_dataset(o.data);
  const auto plan = plan_batches(dataset->size(), o.batch_size, 1, BatchSampling::kSequential, 0);
  const auto batch = dataset->get(plan[0]);
  const auto on_device = batch.to(device, dtype);
  const auto& inputs = on_device.inputs;
  const auto& targets = on_device.targets;
  const auto loss = mvp::make_loss(mvp::resolve_loss_name(o.loss, model.loss_hint(), targets));

  std::vector<std::string> methods = o.methods;
  if (methods.empty()) {
    for (const auto& m : solvers::list_methods()) {
      if (!m.reference) methods.push_back(m.name);
    }
  }
  const auto dampings = solvers::log_grid(fmt::format("1e-6:1:{}", o.dampings));

  BenchReport report;
  report.model = o.checkpoint;
  report.data = o.data;
  report.dtype = dtype == torch::kDouble ? "float64" : "float32";
  report.device = device.str();
  report.threads = torch::get_num_threads();
  report.samples = o.batch_size;
  std::vector<at::Tensor> params;
  for (const auto& p : ckpt.params) params.push_back(model.parameter(p));
  {
    mvp::Linearisation lin(model, ckpt.params, inputs);
    loss->check(lin.logits(), targets);
    report.params = lin.layout().size();
    report.outputs = lin.logits().numel() / o.batch_size;
    report.per_sample_engine = lin.per_sample_engine() == mvp::PerSampleEngine::kTaps ? "taps" : "loop";
  }
  const auto add = [&](const std::string& stage, const Timing& t, const std::string& note = "") {
    BenchRow row{stage, median(t.ms), *std::min_element(t.ms.begin(), t.ms.end()), 0, t.peak_mb, note};
    row.ratio = report.rows.empty() ? 1.0 : row.median_ms / report.rows.front().median_ms;
    report.rows.push_back(row);
  };
  const int64_t R = o.repeats;
  const auto none = [] { return 0; };
  // Warm-up (allocator, first-call costs).
  for (int i = 0; i < 2; ++i) {
    auto l = loss->per_sample(model.forward(inputs), targets).sum();
    torch::autograd::grad({l}, params);
  }

  add("forward+backward (the unit)", measure(R, device, none, [&](int) {
        auto l = loss->per_sample(model.forward(inputs), targets).sum();
        torch::autograd::grad({l}, params);
      }));
  add("forward", measure(R, device, none, [&](int) {
        torch::NoGradGuard ng;
        model.forward(inputs);
      }));
  using Lin = std::unique_ptr<mvp::Linearisation>;
  const auto make_lin = [&] { return std::make_unique<mvp::Linearisation>(model, ckpt.params, inputs); };
  add("gradient g (forward with graph + VJP)", measure(R, device, none, [&](int) {
        auto lin = make_lin();
        lin->vjp(loss->logit_grad(lin->logits(), targets));
      }));
  add("per-sample Gram C = JJᵀ from scratch (no N×P matrix)", measure(R, device, none, [&](int) {
        auto lin = make_lin();
        solvers::BatchState state(*lin, *loss, targets, {});
        state.gram();
      }), fmt::format("N×P would be {:.1f} MiB", double(o.batch_size) * report.params * (dtype == torch::kDouble ? 8 : 4) / 1048576.0));
  add("per-sample gradients J as an N×P matrix", measure(R, device, make_lin, [&](Lin& lin) {
        lin->per_sample(loss->logit_grad(lin->logits(), targets));
      }));
  bool units = false;
  {
    auto lin = make_lin();
    units = lin->unit_grads_affordable();
  }
  if (units) {
    add(fmt::format("output-unit taps ({} backward passes)", report.outputs),
        measure(R, device, make_lin, [&](Lin& lin) { lin->unit_grads(); }));
  }
  const auto v = torch::randn({report.params}, torch::TensorOptions().device(device).dtype(dtype));
  add("JVP J_z v, forward mode (one)", measure(R, device, [&] {
        return std::make_unique<mvp::Linearisation>(model, ckpt.params, inputs,
                                                    mvp::LinearisationOptions{mvp::PerSampleEngine::kAuto, mvp::JvpEngine::kForward});
      }, [&](Lin& lin) { lin->jvp(v); }));
  add("Fisher-vector product F v (JVP + VJP)", measure(R, device, make_lin, [&](Lin& lin) {
        mvp::Fisher(*lin, *loss, targets).mv(v);
      }));
  add("CG iteration (ng-cg, 10 iterations / 10)", [&] {
        auto t = measure(R, device, make_lin, [&](Lin& lin) {
          solvers::BatchState state(*lin, *loss, targets, {});
          solvers::MethodOptions mo;
          mo.cg = {10, 1e-30};
          solvers::make_method("ng-cg", mo)->direction(state, 1e-3);
        });
        for (auto& x : t.ms) x /= 10;
        return t;
      }());
  const int64_t K = static_cast<int64_t>(dampings.size());
  const auto D = torch::randn({K, report.params}, torch::TensorOptions().device(device).dtype(dtype));
  add(fmt::format("indicator dᵀFd for {} generic directions", K), measure(R, device, make_lin, [&](Lin& lin) {
        solvers::BatchState state(*lin, *loss, targets, {});
        solvers::fisher_quad(state, D);
      }));
  // Methods: directions at every damping and their indicator, after the shared work.
  struct Prepared {
    Lin lin;
    std::unique_ptr<solvers::BatchState> state;
  };
  const auto prepared = [&] {
    Prepared p{make_lin(), nullptr};
    p.state = std::make_unique<solvers::BatchState>(*p.lin, *loss, targets, solvers::BatchStateOptions{});
    if (p.lin->unit_grads_affordable()) p.lin->unit_grads();  // first, as the unit does (eval/unit.cpp)
    const solvers::OneThread one_thread(p.state->small_blocks());
    p.state->grad();
    p.state->gram();
    p.state->sampled_gram();
    solvers::sampled_times_grad(*p.state);
    if (p.lin->unit_grads_affordable()) {
      solvers::Direction gdir;
      gdir.d = p.state->grad();
      gdir.true_weights = torch::ones({o.batch_size}, torch::kDouble);
      solvers::fisher_quad(*p.state, {gdir});
    }
    return p;
  };
  add("shared per-batch work (g, C, Ĵ, ĴĴᵀ, Ĵg, output-unit taps)", measure(R, device, none, [&](int) { prepared(); }));
  for (const auto& name : methods) {
    auto method = solvers::make_method(name, {});
    const int64_t count = solvers::method_info(method->name()).damped ? K : 1;
    add(fmt::format("method {}: {} direction(s) + indicator", name, count), measure(R, device, prepared, [&](Prepared& p) {
          const double scale = p.state->gram().diagonal().max().item<double>();
          const solvers::OneThread one_thread(p.state->small_blocks());  // as the unit does
          std::vector<solvers::Direction> dirs;
          for (int64_t j = 0; j < count; ++j) {
            dirs.push_back(method->weights_only(*p.state, dampings[j] * scale));
            solvers::products(*p.state, dirs.back());
          }
          solvers::fisher_quad(*p.state, dirs);
        }));
  }
  // The whole unit as `fisheval eval` computes it.
  SweepOptions so;
  so.methods = methods;
  so.damping.values = dampings;
  so.damping.mode = solvers::DampingMode::kRelative;
  so.loss = o.loss;
  so.ng_reference = "none";
  so.output.progress = false;
  std::vector<std::unique_ptr<solvers::UpdateMethod>> made;
  for (const auto& m : methods) made.push_back(solvers::make_method(m, so.method_options));
  const auto info = make_run_info(so, plan);
  Progress quiet("bench", 1, false);
  int64_t warnings = 0;
  UnitRunner runner(so, info, made, quiet, warnings);
  add(fmt::format("whole unit: {} methods × {} dampings (fisheval eval)", methods.size(), K),
      measure(R, device, none, [&](int) { runner.run(ckpt, batch, device, dtype, 0, 0); }));
  return report;
}

}  // namespace fisheval
