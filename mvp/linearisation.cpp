#include "mvp/linearisation.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/autograd/forward_grad.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <map>
#include <optional>

#include "base/text.h"
#include "base/error.h"
#include "mvp/taps.h"

namespace fisheval::mvp {
namespace {

// Gradients with undefined entries (parameters that do not influence z) as zeros.
std::vector<at::Tensor> grads_or_zeros(const at::Tensor& out, const std::vector<at::Tensor>& wrt,
                                       const at::Tensor& seed, bool create_graph = false) {
  auto grads = torch::autograd::grad({out}, wrt, {seed}, /*retain_graph=*/true, create_graph,
                                     /*allow_unused=*/true);
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) grads[i] = torch::zeros_like(wrt[i]);
  }
  return grads;
}

}  // namespace

Linearisation::Linearisation(Model& model, std::vector<std::string> params, const Inputs& inputs,
                             LinearisationOptions options)
    : model_(model), layout_(model, std::move(params)), inputs_(inputs) {
  torch::AutoGradMode grad_on(true);
  graph_logits_ = model_.forward(inputs_);
  if (!graph_logits_.requires_grad()) {
    throw InputError("the model's output does not depend on the selected parameters");
  }
  if (graph_logits_.size(0) != inputs_.size(0)) {
    throw InputError(fmt::format("the model maps {} inputs to {} outputs; the first axis must be the batch",
                                 inputs_.size(0), graph_logits_.size(0)));
  }
  logits_ = graph_logits_.detach();
  taps_ = model_.taps();

  // Which selected parameter each tapped layer owns; taps serve per-sample gradients
  // only when every selected parameter is owned by exactly one tapped layer and used
  // nowhere else (a shared parameter has other uses, which its taps do not see).
  std::map<std::string, std::string> first_name;  // any name of a shared parameter -> its θ name
  for (const auto& name : layout_.names()) {
    for (const auto& alias : model_.aliases(name)) first_name[alias] = name;
  }
  const auto index_of = [&](const std::string& name) {
    const auto it = first_name.find(name);
    return layout_.index_of(it == first_name.end() ? name : it->second);
  };
  std::vector<int> owners(layout_.count(), 0);
  const auto& specs = model_.layers();
  for (size_t l = 0; l < specs.size(); ++l) {
    const bool usable = taps_[l].output.defined() && specs[l].groups == 1;
    const int w = usable ? index_of(specs[l].weight) : -1;
    const int b = usable && !specs[l].bias.empty() ? index_of(specs[l].bias) : -1;
    coverage_.emplace_back(w, b);
    if (w >= 0) ++owners[w];
    if (b >= 0) ++owners[b];
  }
  std::string uncovered;  // why the taps do not serve, naming the first parameter concerned
  for (size_t i = 0; i < owners.size() && uncovered.empty(); ++i) {
    const auto& name = layout_.names()[i];
    if (!model_.aliases(name).empty()) {
      uncovered = fmt::format("'{}' is shared with '{}'", name, fmt::join(model_.aliases(name), "', '"));
    } else if (owners[i] != 1) {
      uncovered = fmt::format("'{}' is not the weight or bias of a tapped Linear/Conv2d layer", name);
    }
  }
  const bool covered = uncovered.empty();
  engine_ = options.per_sample;
  if (engine_ == PerSampleEngine::kAuto) engine_ = covered ? PerSampleEngine::kTaps : PerSampleEngine::kLoop;
  if (engine_ == PerSampleEngine::kTaps && !covered) {
    throw InputError("per-sample engine 'taps' needs every selected parameter to be the weight or bias of "
                     "exactly one tapped Linear/Conv2d layer (see scripts/export_checkpoint.py)");
  }
  if (engine_ == PerSampleEngine::kLoop && !covered && options.per_sample == PerSampleEngine::kAuto) {
    engine_note_ = "per-sample gradients by a per-sample loop (" + uncovered + ")";
  }
  jvp_engine_ = options.jvp == JvpEngine::kAuto ? options.auto_single : options.jvp;
  jvp_auto_ = options.jvp == JvpEngine::kAuto;
  max_output_units_ = options.max_output_units;
  if (jvp_engine_ == JvpEngine::kTaps && !covered) {
    throw InputError("JVP engine 'taps' needs every selected parameter to belong to a tapped Linear/Conv2d layer");
  }
}

Linearisation::~Linearisation() = default;

std::vector<at::Tensor> Linearisation::param_tensors() const {
  std::vector<at::Tensor> out;
  for (const auto& name : layout_.names()) out.push_back(model_.parameter(name));
  return out;
}

at::Tensor Linearisation::seeds_with_axis(const at::Tensor& u) const {
  if (u.dim() == logits_.dim()) return u.unsqueeze(0);
  if (u.dim() == logits_.dim() + 1) return u;
  throw Error(fmt::format("seed of shape {} does not fit logits {}", fmt::join(u.sizes(), "x"),
                          fmt::join(logits_.sizes(), "x")));
}

at::Tensor Linearisation::vjp(const at::Tensor& u) {
  const auto grads = grads_or_zeros(graph_logits_, param_tensors(), u.to(logits_.options()));
  return layout_.flatten(grads);
}

at::Tensor Linearisation::jvp(const at::Tensor& v) {
  if (jvp_engine_ == JvpEngine::kTaps) return jvp_many_taps(v.to(logits_.options()).unsqueeze(0))[0];
  if (jvp_engine_ == JvpEngine::kForward) {
    try {
      return jvp_forward(v);
    } catch (const std::exception& e) {  // c10::Error, or InputError from the model's forward
      if (!jvp_auto_) {
        // The wording is asserted by tests/test_pytorch2.cpp (JvpProbe), flag names included.
        throw InputError(fmt::format("--jvp-engine forward: forward-mode AD failed on this model ({}); use "
                                     "--jvp-engine auto or double-backward",
                                     first_line(e.what())));
      }
      // Some operation of the model has no forward-mode derivative: fall back for good.
      jvp_engine_ = JvpEngine::kDoubleBackward;
      engine_note_ += (engine_note_.empty() ? "" : "; ") +
                      std::string("JVPs by double backward (forward mode unsupported by the model)");
    }
  }
  return jvp_double_backward(v);
}

JvpEngine Linearisation::probe_jvp_engine(std::string* why) {
  // A fixed direction: the probe's outcome does not depend on a global random state.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(20240607);
  const auto v = at::randn({layout_.size()}, gen, torch::TensorOptions().dtype(torch::kDouble)).to(logits_.options());
  const double tol = logits_.scalar_type() == torch::kDouble ? 1e-8 : 1e-3;
  const auto rel_diff = [](const at::Tensor& a, const at::Tensor& b) {
    return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-30);
  };
  at::Tensor reference;
  std::string reference_failure;
  try {
    reference = jvp_double_backward(v);
  } catch (const std::exception& e) {
    reference_failure = first_line(e.what());
  }
  at::Tensor first;
  for (int call = 1; call <= 2; ++call) {
    at::Tensor tangent;
    try {
      tangent = jvp_forward(v);
    } catch (const std::exception& e) {
      if (!reference.defined()) {
        throw InputError(fmt::format("no way to take Jacobian-vector products of this model: forward-mode AD fails "
                                     "({}) and so does double backward ({})",
                                     first_line(e.what()), reference_failure));
      }
      // The cause without the model's "forward failed on inputs ..." preamble.
      const auto what = first_line(e.what());
      const auto cause = what.rfind("Error: ");
      *why = fmt::format("forward-mode AD fails on this model ({})",
                         cause == std::string::npos ? what : what.substr(what.rfind(' ', cause) + 1));
      return JvpEngine::kDoubleBackward;
    }
    // Against double backward, or (where that has no formula) the first call against the second.
    const auto& against = reference.defined() ? reference : first;
    const double err = against.defined() ? rel_diff(tangent, against) : 0.0;
    if (!(err <= tol) || tangent.norm().item<double>() == 0.0) {
      if (!reference.defined()) {
        throw InputError(fmt::format("no reliable way to take Jacobian-vector products of this model: double "
                                     "backward fails ({}) and forward mode gives different tangents on repeated "
                                     "calls (relative difference {:.3g})",
                                     reference_failure, err));
      }
      *why = fmt::format("forward-mode tangents differ from double backward on call {} (relative difference {:.3g})",
                         call, err);
      return JvpEngine::kDoubleBackward;
    }
    first = tangent;
  }
  return JvpEngine::kForward;
}

at::Tensor Linearisation::jvp_forward(const at::Tensor& v) {
  const auto originals = param_tensors();
  const auto parts = layout_.split(v.to(logits_.options()));
  const uint64_t level = torch::autograd::ForwardADLevel::get_next_idx();
  at::Tensor tangent;
  try {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < originals.size(); ++i) {
      model_.set_parameter(layout_.names()[i], at::_make_dual(originals[i].detach(), parts[i], level));
    }
    const auto out = model_.forward(inputs_);
    tangent = std::get<1>(at::_unpack_dual(out, level));
    if (tangent.defined()) tangent = tangent.clone();
  } catch (...) {
    for (size_t i = 0; i < originals.size(); ++i) model_.set_parameter(layout_.names()[i], originals[i]);
    torch::autograd::ForwardADLevel::release_idx(level);
    throw;
  }
  for (size_t i = 0; i < originals.size(); ++i) model_.set_parameter(layout_.names()[i], originals[i]);
  torch::autograd::ForwardADLevel::release_idx(level);
  return tangent.defined() ? tangent : torch::zeros_like(logits_);
}

at::Tensor Linearisation::jvp_double_backward(const at::Tensor& v) {
  // J v = ∂/∂u ⟨J_zᵀ u, v⟩ with a dummy u.
  auto u = torch::zeros_like(logits_).requires_grad_(true);
  const auto params = param_tensors();
  auto grads = torch::autograd::grad({graph_logits_}, params, {u}, /*retain_graph=*/true,
                                     /*create_graph=*/true, /*allow_unused=*/true);
  const auto parts = layout_.split(v.to(logits_.options()));
  std::vector<at::Tensor> outs, seeds;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].defined() && grads[i].requires_grad()) {
      outs.push_back(grads[i]);
      seeds.push_back(parts[i]);
    }
  }
  if (outs.empty()) return torch::zeros_like(logits_);
  auto jv = torch::autograd::grad(outs, {u}, seeds, /*retain_graph=*/false, false, /*allow_unused=*/true);
  return jv[0].defined() ? jv[0] : torch::zeros_like(logits_);
}

std::vector<at::Tensor> Linearisation::output_grads(const at::Tensor& u) {
  std::vector<at::Tensor> outs;
  std::vector<size_t> which;
  for (size_t l = 0; l < taps_.size(); ++l) {
    if (coverage_[l].first >= 0 || coverage_[l].second >= 0) {
      outs.push_back(taps_[l].output);
      which.push_back(l);
    }
  }
  std::vector<at::Tensor> result(taps_.size());
  if (outs.empty()) return result;
  auto grads = torch::autograd::grad({graph_logits_}, outs, {u}, /*retain_graph=*/true, false,
                                     /*allow_unused=*/true);
  for (size_t i = 0; i < which.size(); ++i) {
    result[which[i]] = grads[i].defined() ? grads[i] : torch::zeros_like(outs[i]);
  }
  return result;
}

at::Tensor Linearisation::layer_input_tokens(size_t l) const {
  const auto& spec = model_.layers()[l];
  return tokens_of_input(spec, model_.parameter(spec.weight).detach(), taps_[l].input.detach());
}

at::Tensor Linearisation::layer_output_tokens(size_t l) const {
  return tokens_of_output(model_.layers()[l], taps_[l].output.detach());
}

at::Tensor Linearisation::from_unit_grads(size_t l, const at::Tensor& seeds) const {
  // The VJP is linear in its seed: with the output-unit taps b_z = ∂z_{n,z}/∂o_l [Z, N, T, d],
  //   b_{s,n,t} = Σ_z u_{s,n,z} b_{z,n,t}    (a product per sample, no backward pass).
  const auto& units = unit_grads_->per_layer[l];
  const int64_t Z = units.size(0), N = units.size(1), T = units.size(2), d = units.size(3), S = seeds.size(0);
  const auto u = seeds.reshape({S, N, Z}).permute({1, 0, 2});                     // [N, S, Z]
  const auto b = torch::bmm(u, units.reshape({Z, N, T * d}).permute({1, 0, 2}));  // [N, S, T·d]
  return b.permute({1, 0, 2}).reshape({S, N, T, d}).contiguous();                 // [S, N, T, d]
}

std::optional<std::vector<at::Tensor>> Linearisation::from_unit_grads(const at::Tensor& seeds) const {
  if (!unit_grads_) return std::nullopt;
  std::vector<at::Tensor> result(taps_.size());
  for (size_t l = 0; l < taps_.size(); ++l) {
    const bool covered = coverage_[l].first >= 0 || coverage_[l].second >= 0;
    if (!covered) continue;
    if (!unit_grads_->per_layer[l].defined()) return std::nullopt;
    result[l] = from_unit_grads(l, seeds);
  }
  return result;
}

std::vector<at::Tensor> Linearisation::layer_output_grad_tokens(const at::Tensor& u) {
  const auto seeds = seeds_with_axis(u.to(logits_.options()));
  if (auto combined = from_unit_grads(seeds)) return std::move(*combined);
  std::vector<std::vector<at::Tensor>> per_seed;
  for (int64_t s = 0; s < seeds.size(0); ++s) per_seed.push_back(output_grads(seeds[s]));
  std::vector<at::Tensor> result(taps_.size());
  for (size_t l = 0; l < taps_.size(); ++l) {
    if (!per_seed[0][l].defined()) continue;
    std::vector<at::Tensor> stack;
    for (auto& g : per_seed) stack.push_back(tokens_of_output(model_.layers()[l], g[l]));
    result[l] = torch::stack(stack);
  }
  return result;
}

std::vector<at::Tensor> Linearisation::layer_output_grads_from(size_t source, const at::Tensor& v,
                                                               const std::vector<size_t>& layers) {
  const auto& specs = model_.layers();
  std::vector<at::Tensor> outs;
  for (const size_t l : layers) outs.push_back(taps_[l].output);
  std::vector<std::vector<at::Tensor>> per_layer(layers.size());
  const auto& src = taps_[source].output;
  for (int64_t s = 0; s < v.size(0); ++s) {
    const auto seed = output_of_tokens(specs[source], v[s].to(src.options()), src.sizes());
    const auto grads = torch::autograd::grad({src}, outs, {seed}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    for (size_t i = 0; i < layers.size(); ++i) {
      per_layer[i].push_back(tokens_of_output(specs[layers[i]], grads[i].defined() ? grads[i] : torch::zeros_like(outs[i])));
    }
  }
  std::vector<at::Tensor> result;
  for (auto& g : per_layer) result.push_back(torch::stack(g));
  return result;
}

at::Tensor Linearisation::per_sample(const at::Tensor& u) {
  const auto seeds = seeds_with_axis(u.to(logits_.options()));
  return engine_ == PerSampleEngine::kTaps ? per_sample_taps(seeds) : per_sample_loop(seeds);
}

at::Tensor Linearisation::per_sample_taps(const at::Tensor& seeds) { return per_sample(tap_grads(seeds)); }

void Linearisation::require_taps(const char* what) const {
  if (engine_ != PerSampleEngine::kTaps) throw Error(fmt::format("internal: {} needs the taps engine", what));
}

TapGrads Linearisation::tap_grads(const at::Tensor& u) {
  require_taps("tap_grads");
  const auto seeds = seeds_with_axis(u.to(logits_.options()));
  TapGrads out;
  out.sets = seeds.size(0);
  out.per_layer.resize(taps_.size());
  if (auto combined = from_unit_grads(seeds)) {
    out.per_layer = std::move(*combined);
    return out;
  }
  std::vector<std::vector<at::Tensor>> per_layer(taps_.size());
  for (int64_t s = 0; s < out.sets; ++s) {
    const auto grads = output_grads(seeds[s]);
    for (size_t l = 0; l < taps_.size(); ++l) {
      if (grads[l].defined()) per_layer[l].push_back(tokens_of_output(model_.layers()[l], grads[l]));
    }
  }
  for (size_t l = 0; l < taps_.size(); ++l) {
    if (!per_layer[l].empty()) out.per_layer[l] = torch::stack(per_layer[l]);
  }
  return out;
}

at::Tensor Linearisation::per_sample(const TapGrads& b) {
  require_taps("per_sample");
  const int64_t S = b.sets, N = num_samples();
  auto rows = torch::zeros({S * N, layout_.size()}, logits_.options());
  for (size_t l = 0; l < taps_.size(); ++l) {
    const auto [w, bi] = coverage_[l];
    if (w < 0 && bi < 0) continue;
    const auto a = w >= 0 ? layer_input_tokens(l) : at::Tensor();
    for (int64_t s = 0; s < S; ++s) {
      auto block = rows.narrow(0, s * N, N);
      const auto& bt = b.per_layer[l][s];
      if (w >= 0) {
        block.narrow(1, layout_.offset(w), layout_.numel(w))
            .copy_(per_sample_weight_grad(a, bt, layout_.shape(w)).reshape({N, -1}));
      }
      if (bi >= 0) block.narrow(1, layout_.offset(bi), layout_.numel(bi)).copy_(per_sample_bias_grad(bt));
    }
  }
  return rows;
}

at::Tensor Linearisation::gram(const TapGrads& b, const TapGrads& c) {
  require_taps("gram");
  const int64_t N = num_samples();
  auto result = torch::zeros({b.sets * N, c.sets * N}, logits_.options());
  for (size_t l = 0; l < taps_.size(); ++l) {
    const auto [wi, bi] = coverage_[l];
    if (wi < 0 && bi < 0) continue;
    const auto& bl = b.per_layer[l];  // [S, N, T, d_out]
    const auto& cl = c.per_layer[l];  // [R, N, T, d_out]
    if (wi >= 0) result.add_(weight_gram_sets(layer_input_tokens(l), bl, cl));
    // Bias: (Σ_t b_snt)·(Σ_u c_rmu) for every pair of sets at once.
    if (bi >= 0) result.add_(torch::mm(bl.sum(2).reshape({b.sets * N, -1}), cl.sum(2).reshape({c.sets * N, -1}).t()));
  }
  return result;
}

at::Tensor Linearisation::combine(const TapGrads& b, const at::Tensor& w) {
  require_taps("combine");
  const int64_t N = num_samples();
  const auto weights = w.to(logits_.options()).reshape({b.sets, N, 1, 1});
  std::vector<at::Tensor> parts(layout_.count());
  for (size_t i = 0; i < parts.size(); ++i) parts[i] = torch::zeros(layout_.shape(i), logits_.options());
  for (size_t l = 0; l < taps_.size(); ++l) {
    const auto [wi, bi] = coverage_[l];
    if (wi < 0 && bi < 0) continue;
    // Σ_{s,n} w_sn Σ_t b_snt a_ntᵀ = (Σ_s w_s ⊙ b_s)ᵀ a over (n, t)
    const auto bw = (b.per_layer[l] * weights).sum(0);  // [N, T, d_out]
    if (wi >= 0) {
      const auto a = layer_input_tokens(l);
      parts[wi] = torch::mm(bw.reshape({-1, bw.size(-1)}).t(), a.reshape({-1, a.size(-1)})).reshape(layout_.shape(wi));
    }
    if (bi >= 0) parts[bi] = bw.sum(at::IntArrayRef{0, 1});
  }
  return layout_.flatten(parts);
}

bool Linearisation::unit_grads_affordable() const {
  if (engine_ != PerSampleEngine::kTaps) return false;
  const int64_t N = num_samples(), Z = logits_.numel() / std::max<int64_t>(N, 1);
  if (Z > max_output_units_) return false;
  double entries = 0;
  for (size_t l = 0; l < taps_.size(); ++l) {
    if (coverage_[l].first >= 0 || coverage_[l].second >= 0) entries += double(Z) * taps_[l].output.numel();
  }
  return entries <= 1e8;
}

const TapGrads& Linearisation::unit_grads() {
  if (!unit_grads_) {
    const int64_t N = num_samples(), Z = logits_.numel() / N;
    // Seed k is one at output unit k of every sample: [Z, N, Z] → [Z, *z].
    auto seeds = torch::zeros({Z, N, Z}, logits_.options());
    seeds.diagonal(0, 0, 2).fill_(1.0);
    std::vector<int64_t> shape{Z};
    for (auto s : logits_.sizes()) shape.push_back(s);
    unit_grads_ = std::make_unique<TapGrads>(tap_grads(seeds.reshape(shape)));
  }
  return *unit_grads_;
}

at::Tensor Linearisation::jvp_many(const at::Tensor& D) {
  const auto d = D.to(logits_.options());
  const bool taps = jvp_engine_ == JvpEngine::kTaps || (jvp_auto_ && unit_grads_affordable());
  if (taps) return jvp_many_taps(d);
  std::vector<at::Tensor> out;
  for (int64_t k = 0; k < d.size(0); ++k) out.push_back(jvp(d[k]));
  return torch::stack(out);
}

at::Tensor Linearisation::jvp_many_taps(const at::Tensor& D) {
  // (J_z d)_{n,k} = Σ_layers Σ_t ⟨∂z_{n,k}/∂out_{n,t}, ΔW ā_{n,t}⟩: the layer's output
  // perturbation under d, paired with the output-unit gradients (unit_grads).
  const auto& U = unit_grads();
  const int64_t K = D.size(0), N = num_samples(), Z = logits_.numel() / N;
  auto jd = torch::zeros({K, N, Z}, logits_.options());
  for (size_t l = 0; l < taps_.size(); ++l) {
    const auto [wi, bi] = coverage_[l];
    if (wi < 0 && bi < 0) continue;
    const auto& u = U.per_layer[l];  // [Z, N, T, d_out]
    const int64_t T = u.size(2), dout = u.size(3);
    at::Tensor a;
    if (wi >= 0) a = layer_input_tokens(l);  // [N, T, d_in]
    // Directions in chunks so that the [k, N, T, d_out] perturbation stays small.
    const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(2e7 / double(N * T * dout)));
    for (int64_t k0 = 0; k0 < K; k0 += chunk) {
      const int64_t k = std::min(chunk, K - k0);
      auto delta = torch::zeros({k, N, T, dout}, logits_.options());
      if (wi >= 0) {
        const auto dW = D.narrow(0, k0, k).narrow(1, layout_.offset(wi), layout_.numel(wi)).reshape({k, dout, -1});
        delta.add_(torch::matmul(a.reshape({1, N * T, a.size(2)}), dW.transpose(1, 2)).reshape({k, N, T, dout}));
      }
      if (bi >= 0) delta.add_(D.narrow(0, k0, k).narrow(1, layout_.offset(bi), dout).reshape({k, 1, 1, dout}));
      // Σ_t ⟨u_{z,n,t}, δ_{k,n,t}⟩ → [k, N, Z]
      jd.narrow(0, k0, k).add_(torch::einsum("knto,znto->knz", {delta, u}));
    }
  }
  std::vector<int64_t> shape{K};
  for (auto s : logits_.sizes()) shape.push_back(s);
  return jd.reshape(shape);
}

at::Tensor Linearisation::per_sample_loop(const at::Tensor& seeds) {
  const int64_t S = seeds.size(0), N = num_samples();
  torch::AutoGradMode grad_on(true);
  if (sample_logits_.empty()) {
    for (int64_t n = 0; n < N; ++n) sample_logits_.push_back(model_.forward(inputs_.narrow(0, n, 1)));
  }
  const auto params = param_tensors();
  auto rows = torch::empty({S * N, layout_.size()}, logits_.options());
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t n = 0; n < N; ++n) {
      const auto grads = grads_or_zeros(sample_logits_[n], params, seeds[s].narrow(0, n, 1));
      rows[s * N + n].copy_(layout_.flatten(grads));
    }
  }
  return rows;
}

at::Tensor Linearisation::gram(const at::Tensor& u, const at::Tensor& w) {
  const auto su = seeds_with_axis(u.to(logits_.options()));
  const auto sw = seeds_with_axis(w.to(logits_.options()));
  if (engine_ != PerSampleEngine::kTaps) {
    const auto ru = per_sample(su);
    return u.is_same(w) ? torch::mm(ru, ru.t()) : torch::mm(ru, per_sample(sw).t());
  }
  const auto bu = tap_grads(su);
  return u.is_same(w) ? gram(bu, bu) : gram(bu, tap_grads(sw));
}

}  // namespace fisheval::mvp
