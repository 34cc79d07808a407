#include "mvp/taps.h"

#include <torch/torch.h>

namespace fisheval::mvp {

at::Tensor tokens_of_input(const LayerSpec& layer, const at::Tensor& weight, const at::Tensor& input) {
  if (layer.kind == LayerKind::kLinear) {
    return input.reshape({input.size(0), -1, input.size(-1)});
  }
  // Conv2d: patches [N, C_in·kh·kw, L] → [N, L, C_in·kh·kw].
  namespace F = torch::nn::functional;
  const auto patches = F::unfold(input, F::UnfoldFuncOptions({weight.size(2), weight.size(3)})
                                            .dilation(layer.dilation)
                                            .padding(layer.padding)
                                            .stride(layer.stride));
  return patches.transpose(1, 2);
}

at::Tensor tokens_of_output(const LayerSpec& layer, const at::Tensor& output_grad) {
  if (layer.kind == LayerKind::kLinear) {
    return output_grad.reshape({output_grad.size(0), -1, output_grad.size(-1)});
  }
  // Conv2d: [N, C_out, H, W] → [N, H·W, C_out].
  return output_grad.reshape({output_grad.size(0), output_grad.size(1), -1}).transpose(1, 2);
}

at::Tensor output_of_tokens(const LayerSpec& layer, const at::Tensor& tokens, at::IntArrayRef sizes) {
  if (layer.kind == LayerKind::kLinear) return tokens.reshape(sizes);
  // Conv2d: [N, H·W, C_out] → [N, C_out, H, W].
  return tokens.transpose(1, 2).reshape(sizes);
}

at::Tensor per_sample_weight_grad(const at::Tensor& a, const at::Tensor& b, at::IntArrayRef weight_shape) {
  // ∇W_n = Σ_t b_nt a_ntᵀ = b_nᵀ a_n : [N, d_out, d_in]
  const auto g = torch::bmm(b.transpose(1, 2), a);
  std::vector<int64_t> shape{a.size(0)};
  for (auto s : weight_shape) shape.push_back(s);
  return g.reshape(shape);
}

at::Tensor per_sample_bias_grad(const at::Tensor& b) { return b.sum(1); }

at::Tensor weight_gram(const at::Tensor& a, const at::Tensor& b, const at::Tensor& a2, const at::Tensor& b2) {
  const int64_t N = a.size(0), M = a2.size(0), T = a.size(1), U = a2.size(1);
  const int64_t din = a.size(2), dout = b.size(2);
  if (T == 1 && U == 1) {
    // (a_n·a'_m)(b_n·b'_m)
    return torch::mm(a.squeeze(1), a2.squeeze(1).t()) * torch::mm(b.squeeze(1), b2.squeeze(1).t());
  }
  // Kernel form costs (NT)(MU)(d_in + d_out); explicit per-sample gradients cost
  // (NT + MU) d_in d_out + N M d_in d_out.
  const double kernel_cost = double(N * T) * double(M * U) * double(din + dout);
  const double explicit_cost = double(N * T + M * U) * din * dout + double(N) * M * din * dout;
  if (kernel_cost < explicit_cost) {
    const auto ka = torch::mm(a.reshape({N * T, din}), a2.reshape({M * U, din}).t());
    const auto kb = torch::mm(b.reshape({N * T, dout}), b2.reshape({M * U, dout}).t());
    return (ka * kb).reshape({N, T, M, U}).sum({1, 3});
  }
  const auto g1 = torch::bmm(b.transpose(1, 2), a).reshape({N, -1});
  const auto g2 = torch::bmm(b2.transpose(1, 2), a2).reshape({M, -1});
  return torch::mm(g1, g2.t());
}

at::Tensor weight_gram_sets(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
  const int64_t S = b.size(0), R = c.size(0), N = a.size(0), T = a.size(1);
  const int64_t din = a.size(2), dout = b.size(3);
  const double kernel_cost = double(N * T) * double(N * T) * double(din + dout);
  const double explicit_cost = double(2 * N * T) * din * dout + double(N) * N * din * dout;
  const double kernel_entries = double(S) * R * double(N * T) * double(N * T);
  if ((T == 1 || kernel_cost < explicit_cost) && kernel_entries <= double(1 << 24)) {
    // Σ_{t,u} (a_nt·a_mu)(b_snt·c_rmu): [S, N, T] × [R, N, T] kernels of b and c, times a's.
    const auto ka = torch::mm(a.reshape({N * T, din}), a.reshape({N * T, din}).t()).reshape({1, N, T, 1, N, T});
    const auto kb = torch::mm(b.reshape({S * N * T, dout}), c.reshape({R * N * T, dout}).t());
    return (kb.reshape({S, N, T, R, N, T}) * ka).sum(at::IntArrayRef{2, 5}).reshape({S * N, R * N});
  }
  if (double(S + R) * N * din * dout <= double(1 << 24)) {
    // Per-sample gradients Σ_t b_snt a_ntᵀ of every set at once, then one product.
    const auto grads = [&](const at::Tensor& x, int64_t sets) {
      const auto ax = a.unsqueeze(0).expand({sets, N, T, din}).reshape({sets * N, T, din});
      return torch::bmm(x.reshape({sets * N, T, dout}).transpose(1, 2), ax).reshape({sets * N, -1});
    };
    return torch::mm(grads(b, S), grads(c, R).t());
  }
  auto out = torch::empty({S * N, R * N}, b.options());
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t r = 0; r < R; ++r) out.narrow(0, s * N, N).narrow(1, r * N, N).copy_(weight_gram(a, b[s], a, c[r]));
  }
  return out;
}


}  // namespace fisheval::mvp
