// sgd: d = g. The reference every γ is compared with; the damping axis does not apply.
#include <torch/torch.h>

#include "solvers/update_method.h"

namespace fisheval::solvers {
namespace {

class Sgd final : public UpdateMethod {
 public:
  std::string name() const override { return "sgd"; }

 protected:
  // g = Jᵀ1: the weights are all ones.
  Direction solve(BatchState& state, double) override {
    Direction out;
    out.true_weights = torch::ones({state.num_samples()}, torch::kDouble);
    return out;
  }
  Direction formed(BatchState& state, Direction dir) override {
    dir.d = state.grad().clone();
    return dir;
  }
};

}  // namespace

MethodEntry sgd_entry() {
  return {{.name = "sgd", .summary = "the gradient g (undamped reference)", .label = "SGD", .colour = "#4d4d4d",
           .linestyle = ":", .marker = "", .damped = false,
           .needs = kNeedsGradient},
          [](const MethodOptions&) { return std::make_unique<Sgd>(); }};
}

}  // namespace fisheval::solvers
