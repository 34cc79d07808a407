// sgd: d = g. The reference every γ is compared with; the damping axis does not apply.
#include <torch/torch.h>

#include "solvers/methods/families.h"

namespace fisheval::solvers {
namespace {

class Sgd final : public UpdateMethod {
 public:
  std::string name() const override { return "sgd"; }
  unsigned needs() const override { return kNeedsGradient; }
  bool damped() const override { return false; }
  Direction direction(BatchState& state, double damping) override {
    auto out = weights_only(state, damping);
    out.d = state.grad().clone();
    return out;
  }
  // g = Jᵀ1: the weights are all ones.
  Direction weights_only(BatchState& state, double) override {
    Direction out;
    out.true_weights = torch::ones({state.num_samples()}, torch::kDouble);
    return out;
  }
};

}  // namespace

std::unique_ptr<UpdateMethod> make_sgd(const MethodOptions&) { return std::make_unique<Sgd>(); }

}  // namespace fisheval::solvers
