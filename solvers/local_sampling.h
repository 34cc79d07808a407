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
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace fisheval::solvers {

// K sampled output gradients for pre-activations o [N, T, d]: [K, N, T, d], float64, on o's device.
at::Tensor local_output_grad_samples(const std::string& activation, const at::Tensor& o, int64_t K, uint64_t seed);

// The seed of layer l's local draws in a batch seeded with `batch_seed` (splitmix64 of both).
uint64_t layer_seed(uint64_t batch_seed, size_t layer);

}  // namespace fisheval::solvers
