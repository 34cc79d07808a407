// sgd: d = g. The reference every γ is compared with; the damping axis does not apply.
#include "solvers/methods/families.h"

namespace fisheval::solvers {
namespace {

class Sgd final : public UpdateMethod {
 public:
  std::string name() const override { return "sgd"; }
  unsigned needs() const override { return kNeedsGradient; }
  bool damped() const override { return false; }
  Direction direction(BatchState& state, double) override { return Direction{state.grad().clone()}; }
};

}  // namespace

std::unique_ptr<UpdateMethod> make_sgd(const MethodOptions&) { return std::make_unique<Sgd>(); }

}  // namespace fisheval::solvers
