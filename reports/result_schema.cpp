#include "reports/result_schema.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <sstream>

#include "base/error.h"
#include "base/numeric.h"

namespace fisheval {
namespace {

std::string format_double(double v) { return fmt::format("{:.17g}", v); }

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::string settings_text(const std::map<std::string, std::string>& settings) {
  std::string text;
  for (const auto& [k, v] : settings) text += k + "=" + v + "\n";
  return text;
}

std::map<std::string, std::string> parse_settings_text(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

const std::vector<MeasureSpec>& result_measures() {
  using S = MeasureShape;
  static const std::vector<MeasureSpec> specs = {
      {"gamma", S::kCell, false, "indicator γ(d) = sqrt(dᵀFd)/|dᵀg| (the paper's Eq. 15); lower is better"},
      {"gamma_rel_sgd", S::kCell, false, "γ(d)/γ(g); below 1 beats SGD"},
      {"gamma_rel_ng", S::kCell, false,
       "γ(d)/γ(natural gradient at λ=0) when a converged reference exists (≥ 1; 1 is exact), else NaN"},
      {"cosine_sgd", S::kCell, false, "cos(d, g)"},
      {"update_norm", S::kCell, false, "‖d‖"},
      {"d_dot_g", S::kCell, false, "dᵀg"},
      {"d_fisher_d", S::kCell, false, "dᵀFd (exact Fisher / GGN)"},
      {"seconds", S::kCell, false, "wall-clock seconds for the direction and its indicator"},
      {"solve_status", S::kCell, true,
       "0 exact, 1 pseudo-inverse (rank-deficient system), 2 not converged (CG cap), 3 λ→0 limit, -1 not computed"},
      {"cg_iterations", S::kCell, true, "CG iterations (ng-cg), else 0"},
      {"cg_residual", S::kCell, false, "final relative residual of CG (ng-cg), else NaN"},
      {"damping_effective", S::kDamping, false, "λ used: the requested damping times the relative-damping scale"},
      {"loss", S::kBatch, false, "batch loss L = Σ_n l_n"},
      {"grad_norm", S::kBatch, false, "‖g‖"},
      {"gamma_sgd", S::kBatch, false, "γ(g)"},
      {"gamma_ng", S::kBatch, false, "γ of the natural-gradient reference at λ=0 (NaN without one)"},
      {"ng_converged", S::kBatch, true, "1 when the natural-gradient reference converged, 0 when not, -1 without one"},
      {"ng_iterations", S::kBatch, true, "iterations of the natural-gradient reference (ng-cg; 0 for ng-dense)"},
      {"ng_residual", S::kBatch, false,
       "final relative residual ‖g − F d‖/‖g‖ of the natural-gradient reference (ng-cg), else NaN"},
      {"grad_norm_imbalance", S::kBatch, false, "max_n‖∇θl_n‖ / min_n‖∇θl_n‖"},
      {"logit_grad_norm_imbalance", S::kBatch, false, "max_n‖∇z l_n‖ / min_n‖∇z l_n‖"},
      {"kept_samples", S::kBatch, true, "samples kept by the near-duplicate filter (all nonzero when it is off)"},
      {"num_params", S::kBatch, true, "P, the number of evaluated parameters (scalars; a tied weight counts once)"},
      {"seconds_shared", S::kBatch, false, "seconds of shared per-batch work (forward, gradients, Gram matrices)"},
      {"per_sample_loss", S::kSample, false, "l_n"},
      {"target_prob", S::kSample, false, "p(y_n|x_n) (geometric mean over target tokens; NaN for squared error)"},
      {"logit_grad_norm_sq", S::kSample, false, "s_n = ‖∇_{z_n} l_n‖²"},
      {"per_sample_grad_norm", S::kSample, false, "‖∇θ l_n‖"},
      {"cg_residual_history", S::kCgHistory, false, "ng-cg relative residual per iteration (first entry 1)"},
  };
  return specs;
}

const MeasureSpec& measure_spec(const std::string& name) {
  for (const auto& m : result_measures()) {
    if (m.name == name) return m;
  }
  throw Error("unknown measure " + name);
}

int64_t RunInfo::unit_size(MeasureShape shape) const {
  int64_t n = 1;
  for (auto s : unit_shape(shape)) n *= s;
  return n;
}

std::vector<int64_t> RunInfo::unit_shape(MeasureShape shape) const {
  switch (shape) {
    case MeasureShape::kCell: return {num_methods(), num_dampings()};
    case MeasureShape::kDamping: return {num_dampings()};
    case MeasureShape::kBatch: return {};
    case MeasureShape::kSample: return {num_samples()};
    case MeasureShape::kCgHistory: return {num_dampings(), cg_history_length};
  }
  return {};
}

std::string RunInfo::fingerprint() const {
  std::string text = "fisheval-results-v1\n";
  for (size_t i = 0; i < checkpoint_paths.size(); ++i) text += fmt::format("ckpt {} {}\n", checkpoint_paths[i], checkpoint_steps[i]);
  for (const auto& b : batches) text += fmt::format("batch {}\n", fmt::join(b, ","));
  text += fmt::format("methods {}\n", fmt::join(methods, ","));
  for (double d : dampings) text += "damping " + format_double(d) + "\n";
  text += fmt::format("cg_history {}\n", cg_history_length);
  text += settings_text(settings);
  return fmt::format("{:016x}", fnv1a(text));
}

ResultFile empty_result(const RunInfo& info) {
  ResultFile r;
  r.info = info;
  r.checkpoint_status.assign(info.num_checkpoints(), "");
  r.checkpoint_parameters.assign(info.num_checkpoints(), "");
  r.method_status.assign(info.num_checkpoints() * info.num_methods(), "");
  r.done.assign(info.num_checkpoints() * info.num_batches(), 0);
  for (const auto& m : result_measures()) {
    if (m.shape == MeasureShape::kCgHistory && info.cg_history_length == 0) continue;
    h5::Array a;
    a.shape = {info.num_checkpoints(), info.num_batches()};
    for (auto s : info.unit_shape(m.shape)) a.shape.push_back(s);
    a.data.assign(a.size(), m.integer ? -1.0 : kNaN);
    r.measures[m.name] = std::move(a);
  }
  return r;
}

UnitResult ResultFile::unit(int64_t c, int64_t b) const {
  UnitResult u;
  u.checkpoint = c;
  u.batch = b;
  u.parameters = checkpoint_parameters[c];
  for (int64_t m = 0; m < info.num_methods(); ++m) {
    const auto& status = method_status[c * info.num_methods() + m];
    if (!status.empty()) u.method_status[m] = status;
  }
  for (const auto& [name, a] : measures) {
    const int64_t n = info.unit_size(measure_spec(name).shape);
    const int64_t start = (c * info.num_batches() + b) * n;
    u.values[name].assign(a.data.begin() + start, a.data.begin() + start + n);
  }
  return u;
}

void ResultFile::put(const UnitResult& unit) {
  for (auto& [name, a] : measures) {
    const int64_t n = info.unit_size(measure_spec(name).shape);
    const auto it = unit.values.find(name);
    if (it == unit.values.end()) continue;
    if (static_cast<int64_t>(it->second.size()) != n) {
      throw Error(fmt::format("internal: measure {} has {} values, expected {}", name, it->second.size(), n));
    }
    std::copy(it->second.begin(), it->second.end(), a.data.begin() + (unit.checkpoint * info.num_batches() + unit.batch) * n);
  }
  done[unit.checkpoint * info.num_batches() + unit.batch] = 1;
  if (!unit.parameters.empty()) checkpoint_parameters[unit.checkpoint] = unit.parameters;
  for (const auto& [m, status] : unit.method_status) {
    if (m >= 0 && m < info.num_methods()) method_status[unit.checkpoint * info.num_methods() + m] = status;
  }
}

}  // namespace fisheval
