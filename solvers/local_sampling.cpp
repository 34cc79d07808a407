#include "solvers/local_sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

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

}  // namespace fisheval::solvers
