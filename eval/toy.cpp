#include "eval/toy.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "base/numeric.h"
#include "base/error.h"
#include "checkpoints/model.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "reports/h5.h"
#include "solvers/batch_state.h"
#include "solvers/update_method.h"

namespace fisheval {
namespace {

// f(x; θ) = θ₀ + θ₁x on inputs [N, 1] → outputs [N, 1]. Two scalar parameters
// ("theta0", "theta1", shape [1]); no layer taps (per-sample gradients by the loop).
class ToyModel final : public Model {
 public:
  ToyModel(double theta0, double theta1) {
    params_[0] = torch::full({1}, theta0, torch::kDouble).requires_grad_(true);
    params_[1] = torch::full({1}, theta1, torch::kDouble).requires_grad_(true);
  }
  std::string format() const override { return "native:toy-linear"; }
  std::vector<std::string> parameter_names() const override { return {"theta0", "theta1"}; }
  at::Tensor parameter(const std::string& name) const override { return params_[index(name)]; }
  void set_parameter(const std::string& name, const at::Tensor& value) override { params_[index(name)] = value; }
  bool saved_trainable(const std::string&) const override { return true; }
  at::Tensor forward(const Inputs& inputs) override { return params_[0] + params_[1] * inputs.get(); }
  const std::vector<LayerSpec>& layers() const override { return layers_; }
  std::vector<LayerTap> taps() const override { return {}; }
  void to(c10::Device device, c10::ScalarType dtype) override {
    for (auto& p : params_) p = p.detach().to(device, dtype).requires_grad_(true);
  }
  std::string loss_hint() const override { return "squared-error"; }

 private:
  static size_t index(const std::string& name) {
    if (name == "theta0") return 0;
    if (name == "theta1") return 1;
    throw Error("toy model: no parameter " + name);
  }
  at::Tensor params_[2];
  std::vector<LayerSpec> layers_;
};

// The toy batch: inputs x = [[0], [1]], targets y = [[0], [0]].
struct ToyBatch {
  at::Tensor inputs, targets;
};

ToyBatch toy_batch(const ToyResult& r) {
  return {torch::tensor({r.data_x[0], r.data_x[1]}, torch::kDouble).reshape({2, 1}),
          torch::tensor({r.data_y[0], r.data_y[1]}, torch::kDouble).reshape({2, 1})};
}

struct ToyDirection {
  std::array<double, 2> d{kNaN, kNaN};
  solvers::SolveStatus status = solvers::SolveStatus::kExact;
};

// d(θ) of one method: the toy model at θ, linearised on the toy batch, one BatchState.
ToyDirection direction_at(solvers::UpdateMethod& method, const mvp::Loss& loss, const ToyBatch& batch, double theta0,
                          double theta1, double damping) {
  ToyModel model(theta0, theta1);
  mvp::Linearisation lin(model, {"theta0", "theta1"}, batch.inputs);
  solvers::BatchState state(lin, loss, batch.targets, {});
  const auto dir = method.direction(state, damping);
  const auto d = dir.d.to(torch::kCPU, torch::kDouble).contiguous();
  ToyDirection out;
  out.d = {d[0].item<double>(), d[1].item<double>()};
  out.status = dir.status;
  return out;
}

void check_options(const ToyOptions& o) {
  if (o.methods.empty()) throw InputError("toy: no methods given");
  if (!(o.damping >= 0) || !std::isfinite(o.damping)) throw InputError("toy: --damping must be a finite λ ≥ 0");
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate)) throw InputError("toy: --lr must be > 0");
  if (o.steps < 1 || o.steps > 100000) throw InputError("toy: --steps must be in [1, 100000]");
  if (o.grid < 2 || o.grid > 400) throw InputError("toy: --grid must be in [2, 400]");
  if (!(o.theta0_min < o.theta0_max) || !(o.theta1_min < o.theta1_max)) {
    throw InputError("toy: the θ box must have min < max on both axes");
  }
  if (o.starts.empty()) throw InputError("toy: no starting points given");
  for (const auto& s : o.starts) {
    if (!std::isfinite(s[0]) || !std::isfinite(s[1])) throw InputError("toy: starting points must be finite");
  }
}

std::vector<double> linspace(double lo, double hi, int64_t n) {
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n - 1);
  return out;
}

}  // namespace

double toy_loss(double theta0, double theta1) {
  // L = ½ r₁² + ½ r₂² with r₁ = θ₀ + θ₁·0 − 0 and r₂ = θ₀ + θ₁·1 − 0.
  return 0.5 * theta0 * theta0 + 0.5 * (theta0 + theta1) * (theta0 + theta1);
}

std::array<double, 2> toy_direction(const std::string& method, double theta0, double theta1, double damping) {
  const auto m = solvers::make_method(method, {});
  const auto loss = mvp::make_loss("squared-error");
  ToyResult r;
  return direction_at(*m, *loss, toy_batch(r), theta0, theta1, damping).d;
}

ToyResult run_toy(const ToyOptions& o) {
  check_options(o);
  ToyResult r;
  r.options = o;
  const auto batch = toy_batch(r);
  const auto loss = mvp::make_loss("squared-error");
  std::vector<std::unique_ptr<solvers::UpdateMethod>> methods;
  for (const auto& name : o.methods) methods.push_back(solvers::make_method(name, {}));

  const int64_t G = o.grid, M = static_cast<int64_t>(methods.size()), S = static_cast<int64_t>(o.starts.size());
  const int64_t T = o.steps;
  r.theta0 = linspace(o.theta0_min, o.theta0_max, G);
  r.theta1 = linspace(o.theta1_min, o.theta1_max, G);
  for (int64_t i = 0; i < G; ++i) {
    for (int64_t j = 0; j < G; ++j) r.loss.push_back(toy_loss(r.theta0[j], r.theta1[i]));
  }

  // Vector field: d(θ) on the grid, row i = θ₁, column j = θ₀.
  r.field.assign(M * G * G * 2, kNaN);
  r.field_status.assign(M * G * G, -1);
  for (int64_t m = 0; m < M; ++m) {
    const double lambda = solvers::method_info(methods[m]->name()).damped ? o.damping : 0.0;
    for (int64_t i = 0; i < G; ++i) {
      for (int64_t j = 0; j < G; ++j) {
        const auto dir = direction_at(*methods[m], *loss, batch, r.theta0[j], r.theta1[i], lambda);
        const int64_t cell = (m * G + i) * G + j;
        r.field[cell * 2] = dir.d[0];
        r.field[cell * 2 + 1] = dir.d[1];
        r.field_status[cell] = static_cast<double>(dir.status);
      }
    }
  }

  // Trajectories: θ_{t+1} = θ_t − η d(θ_t); stop (NaN afterwards) if θ leaves the finite numbers.
  r.trajectory.assign(M * S * (T + 1) * 2, kNaN);
  r.trajectory_loss.assign(M * S * (T + 1), kNaN);
  for (int64_t m = 0; m < M; ++m) {
    const double lambda = solvers::method_info(methods[m]->name()).damped ? o.damping : 0.0;
    for (int64_t s = 0; s < S; ++s) {
      double t0 = o.starts[s][0], t1 = o.starts[s][1];
      for (int64_t t = 0; t <= T; ++t) {
        const int64_t at = (m * S + s) * (T + 1) + t;
        r.trajectory[at * 2] = t0;
        r.trajectory[at * 2 + 1] = t1;
        r.trajectory_loss[at] = toy_loss(t0, t1);
        if (t == T) break;
        const auto dir = direction_at(*methods[m], *loss, batch, t0, t1, lambda);
        t0 -= o.learning_rate * dir.d[0];
        t1 -= o.learning_rate * dir.d[1];
        if (!std::isfinite(t0) || !std::isfinite(t1) || std::abs(t0) > 1e12 || std::abs(t1) > 1e12) break;
      }
    }
  }
  return r;
}

void write_toy_file(const std::string& path, const ToyResult& r, const std::map<std::string, std::string>& metadata) {
  const auto& o = r.options;
  const int64_t G = o.grid, M = static_cast<int64_t>(o.methods.size()), S = static_cast<int64_t>(o.starts.size());
  const int64_t T = o.steps;
  h5::write_file(path, [&](H5::H5File& file) {
    h5::write_attr(file, "fisheval_kind", std::string("toy"));
    h5::write_attr(file, "problem",
                   std::string("f(x) = theta0 + theta1*x; data (x, y) = (0, 0), (1, 0); squared error "
                               "L = 1/2 sum_n (f(x_n) - y_n)^2 (the paper's Figure 1)"));
    h5::write_attr(file, "damping", o.damping);
    h5::write_attr(file, "learning_rate", o.learning_rate);
    h5::write_attr(file, "steps", T);
    for (const auto& [k, v] : metadata) h5::write_attr(file, k, v);
    h5::write_array(file, "data_x", {{2}, {r.data_x[0], r.data_x[1]}}, false, "inputs x_n");
    h5::write_array(file, "data_y", {{2}, {r.data_y[0], r.data_y[1]}}, false, "targets y_n");
    h5::write_strings(file, "method", o.methods, "method axis");
    h5::write_array(file, "theta0", {{G}, r.theta0}, false, "grid axis θ₀ (bias)");
    h5::write_array(file, "theta1", {{G}, r.theta1}, false, "grid axis θ₁ (slope)");
    h5::write_array(file, "loss", {{G, G}, r.loss}, false, "L(θ) on the grid [θ₁, θ₀]");
    h5::write_array(file, "field", {{M, G, G, 2}, r.field}, false,
                    "descent direction d(θ) of each method on the grid [method, θ₁, θ₀, (d₀, d₁)]; update −η d");
    h5::write_array(file, "field_status", {{M, G, G}, r.field_status}, true,
                    "solve status of each direction (0 exact, 1 pseudo-inverse, 2 not converged, 3 λ→0 limit)");
    std::vector<double> starts;
    for (const auto& s : o.starts) starts.insert(starts.end(), {s[0], s[1]});
    h5::write_array(file, "start", {{S, 2}, starts}, false, "starting points of the trajectories (θ₀, θ₁)");
    h5::write_array(file, "trajectory", {{M, S, T + 1, 2}, r.trajectory}, false,
                    "θ after each update θ ← θ − η d [method, start, step, (θ₀, θ₁)]; NaN after a divergence");
    h5::write_array(file, "trajectory_loss", {{M, S, T + 1}, r.trajectory_loss}, false, "L(θ) along each trajectory");
  });
}

}  // namespace fisheval
