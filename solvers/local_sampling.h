// Fishy's local sampling (Peirson et al.): every layer gets a predictive distribution of
// its own, the exponential family whose mean is the layer's activation f(o) of its
// pre-activation output o, and the layer's sampled output gradient is f(o) − y with y
// drawn from it:
//
//   identity, relu, gelu, other  y ~ N(f(o), I)                     f(o) − y = −ε, ε ~ N(0, I)
//   sigmoid                      y ~ Bernoulli(σ(o)) per unit       σ(o) − y
//   tanh                         y ∈ {−1, +1}, P(+1) = (1 + tanh o)/2  tanh(o) − y
//   softmax                      y ~ Categorical(softmax(o)) over the last axis, one-hot   softmax(o) − y
//
// E[f(o) − y] = 0 in every case; the covariances are I, σ(1 − σ), 1 − tanh², and
// diag(p) − ppᵀ. Draws are made on the CPU in float64 from a generator seeded with
// `seed` (so results do not depend on the device), then moved to o's device.
//
// Which layers sample (the "Fishy classifier" variant samples only in some): a layer that
// does not sample takes its output gradients from the nearest sampling layer downstream
// of it (later in the model's layer order), its local draws backpropagated through the
// network in between; the output layer always samples, with the model's own predictive
// distribution (the loss's sampled labels). All layers sampling is Fishy; the output layer
// alone is FIM-Shampoo's statistic.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fisheval::solvers {

class BatchState;
namespace kron {
struct BlockPlan;
}

// K sampled output gradients for pre-activations o [N, T, d]: [K, N, T, d], float64, on o's device.
at::Tensor local_output_grad_samples(const std::string& activation, const at::Tensor& o, int64_t K, uint64_t seed);

// The seed of layer l's local draws in a batch seeded with `batch_seed` (splitmix64 of both).
uint64_t layer_seed(uint64_t batch_seed, size_t layer);

// Whether layer l's output is the model's output (the same tensor as the logits).
bool is_output_layer(BatchState& state, size_t l);

// The layers that sample, per layer of the model: the named ones (InputError naming the
// layers for an unknown name), or with no names those of `fallback`: "all" (Fishy), or
// "classifier" (the Linear layers after the last Conv2d: the final fully connected ones).
std::vector<bool> sampling_layers(BatchState& state, const std::vector<std::string>& names,
                                  const std::string& fallback);

// Output gradients b [K, N, T, rows] (float64) per block of the plan for the layer choice
// `sampling` (see above), K = the batch's mc_samples; memoised per batch and choice.
const std::vector<at::Tensor>& local_output_grads(BatchState& state, const kron::BlockPlan& plan,
                                                  const std::vector<bool>& sampling, const std::string& method);

}  // namespace fisheval::solvers
