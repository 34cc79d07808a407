// The exact Fisher (generalised Gauss-Newton) of one batch,
//   F = Σ_n J_{z_n}ᵀ H_n J_{z_n},
// as products: F v costs one JVP and one VJP; dᵀ F d = Σ_n (J_z d)_nᵀ H_n (J_z d)_n one JVP.
#pragma once
#include <ATen/core/Tensor.h>

#include "mvp/linearisation.h"
#include "mvp/loss.h"

namespace fisheval::mvp {

class Fisher {
 public:
  Fisher(Linearisation& lin, const Loss& loss, at::Tensor targets)
      : lin_(lin), loss_(loss), targets_(std::move(targets)) {}

  // F v, [P].
  at::Tensor mv(const at::Tensor& v);
  // dᵀ F d (always ≥ 0 up to rounding).
  double quad(const at::Tensor& d);
  // dᵀ F d = Σ_n (J_z d)_nᵀ H_n (J_z d)_n for K directions given by their J_z d [K, *z]:
  // [K] float64 on the CPU. The one implementation of dᵀFd (quad and
  // solvers::fisher_quad call it).
  at::Tensor quad_of_jvp(const at::Tensor& jd);

  Linearisation& linearisation() { return lin_; }
  const Loss& loss() const { return loss_; }
  const at::Tensor& targets() const { return targets_; }

 private:
  Linearisation& lin_;
  const Loss& loss_;
  at::Tensor targets_;
};

}  // namespace fisheval::mvp
