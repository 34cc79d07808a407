#include "solvers/eigh.h"

#include <torch/torch.h>

#include "solvers/one_thread.h"

namespace fisheval::solvers {

std::tuple<at::Tensor, at::Tensor> symmetric_eigh(const at::Tensor& M) {
  const OneThread guard(M.device().is_cpu() && M.size(-1) <= kSmallMatrix);
  return at::linalg_eigh(0.5 * (M + M.transpose(-2, -1)));
}

}  // namespace fisheval::solvers
