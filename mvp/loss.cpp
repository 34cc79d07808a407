#include "mvp/loss.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "base/error.h"

namespace fisheval::mvp {
namespace {

constexpr int64_t kIgnoreIndex = -100;

// Sum over every axis but the first: [N, ...] -> [N].
at::Tensor sum_per_sample(const at::Tensor& t) {
  return t.dim() <= 1 ? t : t.reshape({t.size(0), -1}).sum(1);
}

class CrossEntropy final : public Loss {
 public:
  std::string name() const override { return "cross-entropy"; }

  void check(const at::Tensor& z, const at::Tensor& y) const override {
    if (y.is_floating_point()) {
      throw InputError("cross-entropy needs integer class targets, the data has floating-point targets "
                       "(the squared-error loss is for regression)");
    }
    if (z.dim() < 2 || y.sizes() != z.sizes().slice(0, z.dim() - 1)) {
      throw InputError(fmt::format("targets of shape {} do not fit logits of shape {} (expected {})",
                                   fmt::join(y.sizes(), "x"), fmt::join(z.sizes(), "x"),
                                   fmt::join(z.sizes().slice(0, std::max<int64_t>(z.dim() - 1, 0)), "x")));
    }
    const int64_t classes = z.size(-1);
    const auto valid = y.ne(kIgnoreIndex);
    const auto bad = valid.logical_and(y.lt(0).logical_or(y.ge(classes)));
    if (bad.any().item<bool>()) {
      const auto value = y.masked_select(bad)[0].item<int64_t>();
      throw InputError(fmt::format("target {} is out of range: the model has {} classes (0..{}), "
                                   "and -100 marks ignored tokens",
                                   value, classes, classes - 1));
    }
  }

  at::Tensor per_sample(const at::Tensor& z, const at::Tensor& y) const override {
    const auto mask = y.ne(kIgnoreIndex);
    const auto logp = torch::log_softmax(z, -1);
    const auto picked = logp.gather(-1, safe(y).unsqueeze(-1)).squeeze(-1);
    return sum_per_sample(-picked * mask.to(z.scalar_type()));
  }

  // ∇_z l = (p − e_y) on valid tokens.
  at::Tensor logit_grad(const at::Tensor& z, const at::Tensor& y) const override {
    const auto p = torch::softmax(z, -1);
    const auto onehot = torch::one_hot(safe(y), z.size(-1)).to(z.scalar_type());
    return (p - onehot) * mask_of(y, z);
  }

  // H v = diag(p) v − p (pᵀ v).
  at::Tensor hessian_vp(const at::Tensor& z, const at::Tensor& y, const at::Tensor& v) const override {
    const auto p = torch::softmax(z, -1);
    const auto pv = (p * v).sum(-1, /*keepdim=*/true);
    return (p * v - p * pv) * mask_of(y, z);
  }

  // S = diag(√p) − p √pᵀ; column j is √p_j (e_j − p).
  at::Tensor hessian_sqrt(const at::Tensor& z, const at::Tensor& y) const override {
    const auto p = torch::softmax(z, -1);
    const int64_t C = z.size(-1);
    const auto sqrt_p = p.sqrt();
    auto eye = torch::eye(C, z.options());  // eye[j] = e_j
    // cols[j, ..., i] = √p_j (δ_ij − p_i)
    std::vector<int64_t> view_shape(z.dim() + 1, 1);
    view_shape[0] = C;
    view_shape.back() = C;
    const auto e = eye.view(view_shape);                                  // [C, 1.., C]
    const auto sp = sqrt_p.movedim(-1, 0).unsqueeze(-1);                  // [C, ..., 1]
    return sp * (e - p.unsqueeze(0)) * mask_of(y, z).unsqueeze(0);
  }

  at::Tensor sampled_logit_grad(const at::Tensor& z, const at::Tensor& y, int64_t K,
                                uint64_t seed) const override {
    const int64_t C = z.size(-1);
    auto gen = at::detail::createCPUGenerator(seed);
    const auto p_cpu = torch::softmax(z.detach().to(torch::kCPU, torch::kDouble), -1).reshape({-1, C});
    // [rows, K] labels, one row per token.
    const auto labels = at::multinomial(p_cpu, K, /*replacement=*/true, gen);
    const auto onehot = torch::one_hot(labels.t().contiguous(), C).to(torch::kDouble);  // [K, rows, C]
    auto grads = (p_cpu.unsqueeze(0) - onehot).to(z.device(), z.scalar_type());
    std::vector<int64_t> shape{K};
    for (auto s : z.sizes()) shape.push_back(s);
    return grads.reshape(shape) * mask_of(y, z).unsqueeze(0);
  }

  at::Tensor target_prob(const at::Tensor& z, const at::Tensor& y) const override {
    const auto count = sum_per_sample(y.ne(kIgnoreIndex).to(z.scalar_type())).clamp_min(1);
    return torch::exp(-per_sample(z, y) / count);
  }

 private:
  static at::Tensor safe(const at::Tensor& y) { return y.clamp_min(0); }
  static at::Tensor mask_of(const at::Tensor& y, const at::Tensor& z) {
    return y.ne(kIgnoreIndex).to(z.scalar_type()).unsqueeze(-1);
  }
};

// Targets of a loss with one target per output unit: floating point (else `integer_message`),
// shaped like the outputs (`shape_note` appended to that message), finite.
void check_unit_targets(const at::Tensor& z, const at::Tensor& y, const std::string& integer_message,
                        const std::string& shape_note) {
  if (!y.is_floating_point()) throw InputError(integer_message);
  if (y.sizes() != z.sizes()) {
    throw InputError(fmt::format("targets of shape {} do not fit outputs of shape {}{}", fmt::join(y.sizes(), "x"),
                                 fmt::join(z.sizes(), "x"), shape_note));
  }
  if (!torch::isfinite(y).all().item<bool>()) throw InputError("targets contain NaN or infinite values");
}

class SquaredError final : public Loss {
 public:
  std::string name() const override { return "squared-error"; }

  void check(const at::Tensor& z, const at::Tensor& y) const override {
    check_unit_targets(z, y,
                       "squared-error needs floating-point targets, the data has integer targets "
                       "(the cross-entropy loss is for classification)",
                       "");
  }

  // l_n = ½ ‖y_n − z_n‖².
  at::Tensor per_sample(const at::Tensor& z, const at::Tensor& y) const override {
    return sum_per_sample(0.5 * (z - y.to(z.scalar_type())).square());
  }
  at::Tensor logit_grad(const at::Tensor& z, const at::Tensor& y) const override {
    return z - y.to(z.scalar_type());
  }
  at::Tensor hessian_vp(const at::Tensor&, const at::Tensor&, const at::Tensor& v) const override { return v; }

  // S = I: column j is e_j over the flattened output of each sample.
  at::Tensor hessian_sqrt(const at::Tensor& z, const at::Tensor&) const override {
    const int64_t N = z.size(0);
    const int64_t R = z.numel() / std::max<int64_t>(N, 1);
    auto eye = torch::eye(R, z.options());  // [R, R]
    std::vector<int64_t> shape{R, N};
    for (int64_t d = 1; d < z.dim(); ++d) shape.push_back(z.size(d));
    return eye.unsqueeze(1).expand({R, N, R}).reshape(shape).contiguous();
  }

  // ŷ = z + ε, ε ~ N(0, I): ∇_z(−log p(ŷ|z)) = z − ŷ = −ε.
  at::Tensor sampled_logit_grad(const at::Tensor& z, const at::Tensor&, int64_t K, uint64_t seed) const override {
    auto gen = at::detail::createCPUGenerator(seed);
    std::vector<int64_t> shape{K};
    for (auto s : z.sizes()) shape.push_back(s);
    auto eps = at::normal(0.0, 1.0, shape, gen, torch::TensorOptions().dtype(torch::kDouble));
    return (-eps).to(z.device(), z.scalar_type());
  }

  at::Tensor target_prob(const at::Tensor& z, const at::Tensor&) const override {
    return torch::full({z.size(0)}, std::numeric_limits<double>::quiet_NaN(), z.options());
  }
};

// Bernoulli likelihood per output unit (multi-label classification, reconstruction of
// intensities): targets y ∈ [0, 1], p(y | z) = σ(z)^y (1 − σ(z))^(1 − y) per unit,
//   l_n = Σ_units softplus(z) − y z,   ∇_z l = σ(z) − y,   H = diag(σ(1 − σ)).
class BinaryCrossEntropy final : public Loss {
 public:
  std::string name() const override { return "binary-cross-entropy"; }

  void check(const at::Tensor& z, const at::Tensor& y) const override {
    check_unit_targets(z, y,
                       "binary-cross-entropy needs floating-point targets in [0, 1] (one per output unit), the data "
                       "has integer targets (the cross-entropy loss is for class labels)",
                       " (binary-cross-entropy needs one target in [0, 1] per output unit)");
    if (y.numel() > 0 && (y.min().item<double>() < 0 || y.max().item<double>() > 1)) {
      throw InputError(fmt::format("binary-cross-entropy targets must lie in [0, 1], found values in [{:g}, {:g}]",
                                   y.min().item<double>(), y.max().item<double>()));
    }
  }

  // softplus(z) − y z with softplus(z) = max(z, 0) + log1p(exp(−|z|)), exact for large |z|.
  at::Tensor per_sample(const at::Tensor& z, const at::Tensor& y) const override {
    const auto softplus = z.clamp_min(0) + torch::log1p(torch::exp(-z.abs()));
    return sum_per_sample(softplus - y.to(z.scalar_type()) * z);
  }
  at::Tensor logit_grad(const at::Tensor& z, const at::Tensor& y) const override {
    return torch::sigmoid(z) - y.to(z.scalar_type());
  }
  at::Tensor hessian_vp(const at::Tensor& z, const at::Tensor&, const at::Tensor& v) const override {
    const auto s = torch::sigmoid(z);
    return s * (1 - s) * v;
  }

  // S = diag(√(σ(1 − σ))): column j is √h_j e_j over the flattened output of each sample.
  at::Tensor hessian_sqrt(const at::Tensor& z, const at::Tensor&) const override {
    const int64_t N = z.size(0);
    const int64_t R = z.numel() / std::max<int64_t>(N, 1);
    const auto s = torch::sigmoid(z).reshape({N, R});
    const auto root = (s * (1 - s)).sqrt();                       // [N, R]
    const auto eye = torch::eye(R, z.options());                  // [R, R]
    std::vector<int64_t> shape{R, N};
    for (int64_t d = 1; d < z.dim(); ++d) shape.push_back(z.size(d));
    return (eye.unsqueeze(1) * root.unsqueeze(0)).reshape(shape).contiguous();  // [j, n, i] = δ_ij √h_ni
  }

  // ŷ ~ Bernoulli(σ(z)) per unit: ∇_z(−log p(ŷ|z)) = σ(z) − ŷ.
  at::Tensor sampled_logit_grad(const at::Tensor& z, const at::Tensor&, int64_t K, uint64_t seed) const override {
    auto gen = at::detail::createCPUGenerator(seed);
    const auto p = torch::sigmoid(z.detach().to(torch::kCPU, torch::kDouble));
    std::vector<int64_t> shape{K};
    for (auto s : z.sizes()) shape.push_back(s);
    const auto mean = p.unsqueeze(0).expand(shape).contiguous();
    return (mean - at::bernoulli(mean, gen)).to(z.device(), z.scalar_type());
  }

  // The geometric mean over the units of p(y_i | z_i) = σ^y (1 − σ)^(1 − y): exp(−l_n / units).
  at::Tensor target_prob(const at::Tensor& z, const at::Tensor& y) const override {
    const double units = static_cast<double>(z.numel() / std::max<int64_t>(z.size(0), 1));
    return torch::exp(-per_sample(z, y) / std::max(units, 1.0));
  }
};

}  // namespace

std::unique_ptr<Loss> make_loss(const std::string& name) {
  switch (kLosses.parse(name)) {
    case LossKind::kCrossEntropy: return std::make_unique<CrossEntropy>();
    case LossKind::kSquaredError: return std::make_unique<SquaredError>();
    case LossKind::kBinaryCrossEntropy: return std::make_unique<BinaryCrossEntropy>();
  }
  throw std::logic_error("make_loss: a loss kind without a class");
}

std::string resolve_loss_name(const std::string& requested, const std::string& hint, const at::Tensor& targets) {
  if (requested != "auto") return requested;
  if (!hint.empty()) return hint;
  // Never binary-cross-entropy: floating targets mean squared error unless the checkpoint
  // or the requested loss says otherwise.
  return kLosses.text(targets.is_floating_point() ? LossKind::kSquaredError : LossKind::kCrossEntropy);
}

}  // namespace fisheval::mvp
