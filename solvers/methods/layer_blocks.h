// The base of the block-diagonal families (K-FAC in kronecker.cpp, Shampoo in shampoo.cpp):
// one block per tapped layer, d's block in the eigenbases of the block's two factors,
//   d_block = U_out X U_inᵀ   (+ with thin bases, G's parts outside them, scaled: direction.h),
// X = a per-family scaling of the rotated gradient Ĝ = U_outᵀ G U_in; the parameters no
// tapped layer owns get a remainder of the family's own. The loop, the memoised rotation,
// the thin-basis parts, the singular policy and the status live here once; a family fills
// the hooks below (kfac-jax's style: one base, a few methods per block).
#pragma once
#include <string>
#include <vector>

#include "solvers/kronecker.h"
#include "solvers/update_method.h"

namespace fisheval::solvers {

class LayerBlockMethod : public UpdateMethod {
 public:
  std::string name() const override { return name_; }

 protected:
  LayerBlockMethod(std::string name, const MethodOptions& options, Factorisation factorisation);

  // The eigen-decomposed factors of every block (output side, input side), memoised by the
  // family; `values` optionally replaces σ_out σ_inᵀ per block (KFE's re-estimated eigenvalues).
  struct Factors {
    const std::vector<kron::Eigen>* out = nullptr;
    const std::vector<kron::Eigen>* in = nullptr;
    const std::vector<at::Tensor>* values = nullptr;
  };
  // One block at λ: X, and for thin bases the scales of G's parts outside them
  // (left_scale [r_out], right_scale [r_in], perp_coef); lost: an entry was dropped
  // (pseudo-inverse).
  struct BlockScale {
    at::Tensor X, left_scale, right_scale;
    double perp_coef = 0;
    bool lost = false;
  };

  // The statistic whose output gradients the budget check counts.
  virtual kron::Statistic budget_statistic() const = 0;
  virtual Factors factors(BatchState& state) = 0;
  // Distinguishes this method's memoised rotations from other methods' (the bases differ).
  virtual std::string memo_tag() const = 0;
  virtual BlockScale scale_block(const Factors& f, size_t i, const at::Tensor& rotated, double damping) const = 0;
  // The direction on the uncovered parameters, concatenated as uncovered_of() lays them
  // out (float64; undefined when there are none); sets lost when an entry was dropped.
  virtual at::Tensor solve_uncovered(BatchState& state, const kron::BlockPlan& plan, const at::Tensor& g64,
                                     double damping, bool& lost) = 0;
  // The refusal under the `error` singular policy (thrown as a SingularSystemError).
  virtual std::string singular_message(double damping) const = 0;

  Direction solve(BatchState& state, double damping) final;

  std::string name_;
  Factorisation factorisation_;
  SingularPolicy policy_;
  Budget budget_;
};

}  // namespace fisheval::solvers
