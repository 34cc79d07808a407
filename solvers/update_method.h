// One interface for every approximate natural-gradient update (curvlinops' style:
// a new method is one class). A method turns the shared per-batch state and a
// damping λ into a descent direction d (applied as θ ← θ − η d). Damping-independent
// work is memoised in the BatchState so a damping sweep pays for it once.
#pragma once
#include <ATen/core/Tensor.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "solvers/batch_state.h"
#include "solvers/budget.h"
#include "solvers/factorisation.h"
#include "solvers/cg.h"
#include "solvers/direction.h"
#include "solvers/gram_solve.h"

namespace fisheval::solvers {

// What a method needs from the batch (for up-front checks and documentation).
enum Need : unsigned {
  kNeedsGradient = 1u << 0,
  kNeedsPerSampleGradients = 1u << 1,  // J and C = JJᵀ
  kNeedsSampledGradients = 1u << 2,    // Ĵ (sampled labels)
  kNeedsFisherProducts = 1u << 3,      // F v
  kNeedsDenseFisher = 1u << 4,         // F as a matrix (small P only)
  kNeedsLayerTaps = 1u << 5,           // layer inputs / output gradients (Kronecker, Shampoo)
};


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
};

class UpdateMethod {
 public:
  virtual ~UpdateMethod() = default;
  virtual std::string name() const = 0;
  virtual unsigned needs() const = 0;
  // False for methods the damping axis does not apply to (sgd): one direction for all λ.
  virtual bool damped() const { return true; }
  // The direction for effective damping λ ≥ 0.
  virtual Direction direction(BatchState& state, double damping) = 0;
  // What the indicator needs: a method may return its direction in a cheaper form
  // (sample-space weights, or layer blocks in a basis; see direction.h) and leave d
  // undefined; the default is direction().
  virtual Direction weights_only(BatchState& state, double damping) { return direction(state, damping); }
  // Methods that solve every damping value at once (ng-cg: one Krylov sequence for all
  // shifts) say so and return one direction per damping, in order.
  virtual bool solves_dampings_together() const { return false; }
  virtual std::vector<Direction> directions(BatchState& state, const std::vector<double>& dampings) {
    std::vector<Direction> out;
    for (double d : dampings) out.push_back(weights_only(state, d));
    return out;
  }
};

// Everything the rest of the program knows about a method: its registry entry. The
// report, the plots (through `fisheval methods --json`), the demo and the tests read these
// fields and nothing else; a method is one file under solvers/methods/ and one line of
// solvers/methods/method_list.h.
struct MethodInfo {
  std::string name;               // the --methods name
  std::string summary;            // one line, for --help, `fisheval methods` and reports
  std::string label;              // legend label in reports and figures
  std::string colour;             // #rrggbb, the same in the HTML report and every figure
  std::string linestyle = "-";    // matplotlib line style of its curves
  std::string marker = "o";       // matplotlib marker of its curves ("" for none)
  double linewidth = 1.8;         // points; wide and pale (alpha < 1) to stay visible under a coinciding curve
  double alpha = 1.0;
  bool reference = false;         // an exact natural-gradient solve (γ/γ_ng's candidates, in registry order)
  unsigned needs = kNeedsGradient;  // Need flags: what it takes from the batch
};

// The names of the Need flags set in `needs`, in flag order ("gradient", "per-sample-gradients", ...).
std::vector<std::string> need_names(unsigned needs);

std::unique_ptr<UpdateMethod> make_method(const std::string& name, const MethodOptions& options);
std::vector<MethodInfo> list_methods();
// The entry of `name` (InputError naming the available methods when unknown).
const MethodInfo& method_info(const std::string& name);

}  // namespace fisheval::solvers
