#include "support.h"

#include <cstdlib>

#include "checkpoints/load.h"

namespace fisheval::test {

std::string fixtures_dir() {
  const char* env = std::getenv("FISHEVAL_FIXTURES");
  return env && *env ? env : FISHEVAL_FIXTURES_DEFAULT;
}

std::string fixture(const std::string& name) { return fixtures_dir() + "/" + name; }

std::string fisheval_binary() {
  const char* env = std::getenv("FISHEVAL_BINARY");
  return env && *env ? env : FISHEVAL_BINARY_DEFAULT;
}

const char* loss_name(LossKind loss) {
  switch (loss) {
    case LossKind::kSquaredError: return "squared-error";
    case LossKind::kCrossEntropy: return "cross-entropy";
    case LossKind::kBinaryCrossEntropy: return "binary-cross-entropy";
  }
  return "?";
}

Fixture load_fixture(const std::string& name, int64_t n, const std::string& globs) {
  Fixture f;
  f.model = load_model(fixture(name + ".pt"));
  f.model->to(torch::kCPU, torch::kDouble);
  f.params = select_parameters(*f.model, globs);
  set_trainable(*f.model, f.params);
  const auto data = load_hdf5_dataset(fixture(name + ".h5"));
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  f.batch = data->get(idx);
  f.batch.inputs = f.batch.inputs.to(torch::kCPU, torch::kDouble);
  f.cross_entropy = !f.batch.targets.is_floating_point();
  f.loss = f.cross_entropy                                        ? LossKind::kCrossEntropy
           : f.model->loss_hint() == "binary-cross-entropy" ? LossKind::kBinaryCrossEntropy
                                                            : LossKind::kSquaredError;
  if (!f.cross_entropy) f.batch.targets = f.batch.targets.to(torch::kDouble);
  return f;
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const double denom = std::max(b.to(torch::kDouble).norm().item<double>(), 1e-300);
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).norm().item<double>() / denom;
}

namespace oracle {
namespace {

std::vector<at::Tensor> tensors(Model& m, const std::vector<std::string>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(m.parameter(p));
  return out;
}

at::Tensor flat(const std::vector<at::Tensor>& grads, const std::vector<at::Tensor>& like) {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < grads.size(); ++i) {
    parts.push_back(grads[i].defined() ? grads[i].reshape(-1) : torch::zeros({like[i].numel()}, like[i].options()));
  }
  return torch::cat(parts);
}

}  // namespace

at::Tensor per_sample_loss(const at::Tensor& z, const at::Tensor& y, LossKind loss) {
  const int64_t N = z.size(0);
  namespace F = torch::nn::functional;
  if (loss == LossKind::kSquaredError) return 0.5 * (z - y).square().reshape({N, -1}).sum(1);
  if (loss == LossKind::kBinaryCrossEntropy) {
    return F::binary_cross_entropy_with_logits(z, y, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone))
        .reshape({N, -1})
        .sum(1);
  }
  const int64_t C = z.size(-1);
  const auto l = F::cross_entropy(z.reshape({-1, C}), y.reshape({-1}),
                                  F::CrossEntropyFuncOptions().reduction(torch::kNone).ignore_index(-100));
  return l.reshape({N, -1}).sum(1);
}

at::Tensor per_sample_grads(Model& m, const std::vector<std::string>& params, const Batch& b, LossKind loss) {
  const auto ps = tensors(m, params);
  std::vector<at::Tensor> rows;
  for (int64_t n = 0; n < b.inputs.size(0); ++n) {
    const auto z = m.forward(b.inputs.narrow(0, n, 1));
    const auto l = per_sample_loss(z, b.targets.narrow(0, n, 1), loss).sum();
    rows.push_back(flat(torch::autograd::grad({l}, ps, {}, false, false, true), ps));
  }
  return torch::stack(rows);
}

at::Tensor logit_jacobian(Model& m, const std::vector<std::string>& params, const Inputs& x) {
  const auto ps = tensors(m, params);
  std::vector<at::Tensor> per_n;
  for (int64_t n = 0; n < x.size(0); ++n) {
    const auto z = m.forward(x.narrow(0, n, 1)).reshape({-1});
    std::vector<at::Tensor> rows;
    for (int64_t k = 0; k < z.numel(); ++k) {
      rows.push_back(flat(torch::autograd::grad({z[k]}, ps, {}, true, false, true), ps));
    }
    per_n.push_back(torch::stack(rows));
  }
  return torch::stack(per_n);
}

at::Tensor loss_hessian(const at::Tensor& z, const at::Tensor& y, LossKind loss) {
  std::vector<at::Tensor> out;
  for (int64_t n = 0; n < z.size(0); ++n) {
    auto zn = z.narrow(0, n, 1).detach().clone().requires_grad_(true);
    const auto l = per_sample_loss(zn, y.narrow(0, n, 1), loss).sum();
    const auto grad = torch::autograd::grad({l}, {zn}, {}, true, true)[0].reshape({-1});
    std::vector<at::Tensor> rows;
    for (int64_t k = 0; k < grad.numel(); ++k) {
      auto h = torch::autograd::grad({grad[k]}, {zn}, {}, true, false, true)[0];
      rows.push_back(h.defined() ? h.reshape({-1}) : torch::zeros({grad.numel()}, z.options()));
    }
    out.push_back(torch::stack(rows));
  }
  return torch::stack(out);
}

at::Tensor fisher(Model& m, const std::vector<std::string>& params, const Batch& b, LossKind loss) {
  const auto J = logit_jacobian(m, params, b.inputs);  // [N, Z, P]
  at::Tensor z;
  {
    torch::NoGradGuard ng;
    z = m.forward(b.inputs);
  }
  const auto H = loss_hessian(z, b.targets, loss);  // [N, Z, Z]
  return torch::einsum("nzp,nzw,nwq->pq", {J, H, J});
}

at::Tensor gradient(Model& m, const std::vector<std::string>& params, const Batch& b, LossKind loss) {
  const auto ps = tensors(m, params);
  const auto l = per_sample_loss(m.forward(b.inputs), b.targets, loss).sum();
  return flat(torch::autograd::grad({l}, ps, {}, false, false, true), ps);
}

}  // namespace oracle
}  // namespace fisheval::test
