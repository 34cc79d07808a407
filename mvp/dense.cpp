#include "mvp/dense.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "base/error.h"

namespace fisheval::mvp {

at::Tensor dense_logit_jacobian(Linearisation& lin) {
  const auto& z = lin.logits();
  const int64_t N = z.size(0), Z = z.numel() / N, P = lin.layout().size();
  if (double(N) * Z * P > kDenseEntryLimit) {
    throw InputError(fmt::format("dense Jacobian of {}x{}x{} entries is too large (limit {:g}); "
                                 "use ng-cg instead of ng-dense",
                                 N, Z, P, kDenseEntryLimit));
  }
  // Seed k selects output unit k of every sample at once: [Z, N, *z].
  auto seeds = torch::zeros({Z, N, Z}, z.options());
  seeds.diagonal(0, 0, 2).fill_(1.0);
  std::vector<int64_t> shape{Z};
  for (auto s : z.sizes()) shape.push_back(s);
  const auto rows = lin.per_sample(seeds.reshape(shape));  // [Z·N, P], row k·N + n
  return rows.reshape({Z, N, P}).transpose(0, 1).contiguous();
}

at::Tensor dense_fisher(Fisher& fisher) {
  auto& lin = fisher.linearisation();
  const auto J = dense_logit_jacobian(lin);  // [N, Z, P]
  const auto& z = lin.logits();
  const int64_t N = J.size(0), Z = J.size(1), P = J.size(2);
  // H J column by column: columns of J as [P, *z].
  std::vector<int64_t> shape{P};
  for (auto s : z.sizes()) shape.push_back(s);
  const auto cols = J.permute({2, 0, 1}).reshape(shape);
  const auto hcols = fisher.loss().hessian_vp(z, fisher.targets(), cols).reshape({P, N * Z});
  return torch::mm(hcols, J.reshape({N * Z, P}));  // Σ_n (H_n J_n)ᵀ J_n = Σ_n J_nᵀ H_n J_n
}

}  // namespace fisheval::mvp
