#include "solvers/local_sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <optional>

#include "base/error.h"
#include "solvers/batch_state.h"
#include "solvers/kronecker.h"

namespace fisheval::solvers {

uint64_t layer_seed(uint64_t batch_seed, size_t layer) {
  // splitmix64 of (batch seed, layer), distinct from the batch's own label draws.
  uint64_t z = batch_seed ^ (0xd1b54a32d192ed03ull * static_cast<uint64_t>(layer + 1));
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

at::Tensor local_output_grad_samples(const std::string& activation, const at::Tensor& o, int64_t K, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto x = o.detach().to(torch::kCPU, torch::kDouble);
  std::vector<int64_t> shape{K};
  for (auto s : x.sizes()) shape.push_back(s);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor out;
  if (activation == "sigmoid") {
    // y ~ Bernoulli(σ(o)): σ(o) − y.
    const auto mean = torch::sigmoid(x).unsqueeze(0).expand(shape).contiguous();
    out = mean - at::bernoulli(mean, gen);
  } else if (activation == "tanh") {
    // y = 2·Bernoulli((1 + tanh o)/2) − 1 ∈ {±1}, E[y] = tanh o: tanh(o) − y.
    const auto mean = torch::tanh(x).unsqueeze(0).expand(shape).contiguous();
    out = mean - (2.0 * at::bernoulli((1.0 + mean) / 2.0, gen) - 1.0);
  } else if (activation == "softmax") {
    // y ~ Categorical(softmax(o)) over the last axis (one-hot): p − y.
    const int64_t C = x.size(-1);
    const auto p = torch::softmax(x, -1).reshape({-1, C});
    const auto labels = at::multinomial(p, K, /*replacement=*/true, gen);          // [rows, K]
    const auto onehot = torch::one_hot(labels.t().contiguous(), C).to(torch::kDouble);  // [K, rows, C]
    out = (p.unsqueeze(0) - onehot).reshape(shape);
  } else {
    // identity, relu, gelu and anything else: y ~ N(f(o), I), f(o) − y = −ε.
    out = -at::normal(0.0, 1.0, shape, gen, opts);
  }
  return out.to(o.device());
}

bool is_output_layer(BatchState& state, size_t l) {
  auto& lin = state.lin();
  if (!lin.has_tap(l)) return false;
  const auto o = lin.layer_output_tokens(l);
  const auto& z = lin.logits();
  return o.numel() == z.numel() && o.data_ptr() == z.data_ptr();
}

std::vector<bool> sampling_layers(BatchState& state, const std::vector<std::string>& names,
                                  const std::string& fallback) {
  const auto& layers = state.lin().layers();
  std::vector<bool> out(layers.size(), false);
  if (!names.empty()) {
    for (const auto& name : names) {
      const auto it = std::find_if(layers.begin(), layers.end(), [&](const LayerSpec& s) { return s.name == name; });
      if (it == layers.end()) {
        std::vector<std::string> known;
        for (const auto& s : layers) known.push_back(s.name);
        throw InputError(fmt::format("local sampling layers: the model has no tapped layer '{}' (its layers: {})",
                                     name, fmt::join(known, ", ")),
                         "local_layers");
      }
      out[it - layers.begin()] = true;
    }
    return out;
  }
  if (fallback == "all") return std::vector<bool>(layers.size(), true);
  // The final fully connected layers: the Linear layers after the last Conv2d.
  size_t first = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    if (layers[l].kind == LayerKind::kConv2d) first = l + 1;
  }
  for (size_t l = first; l < layers.size(); ++l) out[l] = layers[l].kind == LayerKind::kLinear;
  return out;
}

const std::vector<at::Tensor>& local_output_grads(BatchState& state, const kron::BlockPlan& plan,
                                                  const std::vector<bool>& sampling, const std::string& method) {
  std::string key = "local/b/";
  for (const bool b : sampling) key += b ? '1' : '0';
  return state.memo<std::vector<at::Tensor>>(key, [&] {
    auto& lin = state.lin();
    const int64_t K = state.options().mc_samples;
    const auto samples_at = [&](size_t l) {
      return local_output_grad_samples(lin.layers()[l].activation, lin.layer_output_tokens(l), K,
                                       layer_seed(state.options().seed, l));
    };
    // The sampling layer each block takes its gradients from: itself, or the nearest
    // downstream one; the output layer (or none downstream) means the model's own draws.
    const size_t L = lin.layers().size();
    const auto source_of = [&](size_t l) -> std::optional<size_t> {
      for (size_t s = l; s < L; ++s) {
        if (is_output_layer(state, s)) return std::nullopt;
        if (sampling[s] && lin.has_tap(s)) return s;
      }
      return std::nullopt;
    };
    std::vector<at::Tensor> out(plan.blocks.size());
    std::map<size_t, std::vector<size_t>> inherit;  // source layer → blocks that inherit its draws
    for (size_t i = 0; i < plan.blocks.size(); ++i) {
      const size_t l = plan.blocks[i].layer;
      const auto source = source_of(l);
      if (!source) {
        out[i] = kron::output_grads(state, kron::Statistic::kSampled, method)[i];
      } else if (*source == l) {
        out[i] = samples_at(l);
      } else {
        inherit[*source].push_back(i);
      }
    }
    for (const auto& [source, blocks] : inherit) {
      std::vector<size_t> layers;
      for (const size_t i : blocks) layers.push_back(plan.blocks[i].layer);
      const auto b = lin.layer_output_grads_from(source, samples_at(source), layers);
      for (size_t j = 0; j < blocks.size(); ++j) out[blocks[j]] = b[j].to(torch::kDouble);
    }
    return out;
  });
}

}  // namespace fisheval::solvers
