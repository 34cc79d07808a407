// One interface for every approximate natural-gradient update (curvlinops' style:
// a new method is one class). A method turns the shared per-batch state and a
// damping λ into a descent direction d (applied as θ ← θ − η d). Damping-independent
// work is memoised in the BatchState so a damping sweep pays for it once.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "base/method_info.h"
#include "solvers/batch_state.h"
#include "solvers/budget.h"
#include "solvers/factorisation.h"
#include "solvers/cg.h"
#include "solvers/direction.h"
#include "solvers/gram_solve.h"

namespace fisheval::solvers {

// Options of every method (a method reads the ones it needs).
struct MethodOptions {
  SingularPolicy singular = SingularPolicy::kPseudoInverse;
  CgOptions cg{};                  // ng-cg
  int64_t dense_max_params = 20000;  // ng-dense refuses larger P
  bool kfac_reduce = false;        // Kronecker methods: KFAC-reduce instead of KFAC-expand for tokens
  Factorisation factorisation = Factorisation::kAuto;  // Kronecker factors: thin when their rank bound is smaller
  double shampoo_epsilon = 1e-12;  // Shampoo family: ε relative to the largest eigenvalue (plus λ)
  std::vector<std::string> local_layers;  // fishy-classifier: the layers that sample (empty: the final FC layers)
  Budget budget{};                 // memory and output units a method may use per batch

  // Every check of these options, in one place (make_method refuses options that fail it);
  // false with the reason in *error.
  bool IsValid(std::string* error) const;
};

class UpdateMethod {
 public:
  virtual ~UpdateMethod() = default;
  virtual std::string name() const = 0;
  // Methods that solve every damping value at once (ng-cg: one Krylov sequence for all
  // shifts) say so; directions() then makes one call for all of them.
  virtual bool solves_dampings_together() const { return false; }

  // The direction for effective damping λ ≥ 0, with d formed. λ is checked here, once for
  // every method (InputError for a negative or NaN λ), before the method's solve runs.
  Direction direction(BatchState& state, double damping);
  // What the indicator needs: a method may return its direction in a cheaper form
  // (sample-space weights, or layer blocks in a basis; see direction.h) and leave d
  // undefined.
  Direction weights_only(BatchState& state, double damping);
  // One direction per damping, in order (in the weights_only form).
  std::vector<Direction> directions(BatchState& state, const std::vector<double>& dampings);

 protected:
  // What a method implements, for a λ already checked: solve() gives the direction in any
  // form (the public direction() forms d from it); solve_all() defaults to one solve() per
  // damping.
  virtual Direction solve(BatchState& state, double damping) = 0;
  virtual std::vector<Direction> solve_all(BatchState& state, const std::vector<double>& dampings);
  // d formed from solve()'s form (default: materialised(), direction_algebra.h; a method that has a
  // cheaper or exact way, such as sgd's d = g, says so).
  virtual Direction formed(BatchState& state, Direction dir);
};

// A registry entry: the method's data and its factory. Each file under solvers/methods/
// defines one function per method returning its entry; solvers/methods/method_list.h lists
// them, one line each.
struct MethodEntry {
  MethodInfo info;
  std::function<std::unique_ptr<UpdateMethod>(const MethodOptions&)> make;
};

// Adds a method to the registry at run time (an extension, or a test's own method); the
// built-in ones come from method_list.h. InputError when the name is taken.
void register_method(MethodEntry entry);

std::unique_ptr<UpdateMethod> make_method(const std::string& name, const MethodOptions& options);
std::vector<MethodInfo> list_methods();
// The entry of `name` (InputError naming the available methods when unknown).
const MethodInfo& method_info(const std::string& name);
// The same, or nullptr for a name this build does not know (an older result file's method).
const MethodInfo* find_method(const std::string& name);

}  // namespace fisheval::solvers
