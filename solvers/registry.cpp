// The registry of update methods by name: the built-in entries of method_list.h (each
// defined in its method's file), plus any registered at run time. λ is checked here for
// every method, before its solve runs.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <deque>

#include "base/error.h"
#include "solvers/direction_algebra.h"
#include "solvers/update_method.h"

namespace fisheval::solvers {

#define FISHEVAL_METHOD(entry) MethodEntry entry();
#include "solvers/methods/method_list.h"
#undef FISHEVAL_METHOD

namespace {

// A deque: entries registered later do not move the earlier ones (method_info's references stay valid).
std::deque<MethodEntry>& registry() {
  static std::deque<MethodEntry> entries = {
#define FISHEVAL_METHOD(entry) entry(),
#include "solvers/methods/method_list.h"
#undef FISHEVAL_METHOD
  };
  return entries;
}

const MethodEntry* find_entry(const std::string& name) {
  for (const auto& e : registry()) {
    if (e.info.name == name) return &e;
  }
  return nullptr;
}

const MethodEntry& entry_of(const std::string& name) {
  if (const auto* e = find_entry(name)) return *e;
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.info.name);
  throw InputError(fmt::format("unknown method '{}' (available: {})", name, fmt::join(names, ", ")));
}

// λ ≥ 0 (+∞ allowed: the limit is the gradient direction scaled to 0). A negative λ is bad
// input; a NaN one comes from a non-finite damping scale (a relative damping on overflowing
// statistics), a numerical failure of these cells.
void check_damping(const std::string& method, double damping) {
  if (std::isnan(damping)) throw NumericalError(fmt::format("{}: the damping λ is NaN", method));
  if (!(damping >= 0)) throw InputError(fmt::format("{}: the damping λ must be ≥ 0, got {}", method, damping));
}

}  // namespace

Direction UpdateMethod::direction(BatchState& state, double damping) {
  check_damping(name(), damping);
  return formed(state, solve(state, damping));
}

Direction UpdateMethod::formed(BatchState& state, Direction dir) { return materialised(state, std::move(dir)); }

Direction UpdateMethod::weights_only(BatchState& state, double damping) {
  check_damping(name(), damping);
  return solve(state, damping);
}

std::vector<Direction> UpdateMethod::directions(BatchState& state, const std::vector<double>& dampings) {
  for (const double d : dampings) check_damping(name(), d);
  return solve_all(state, dampings);
}

std::vector<Direction> UpdateMethod::solve_all(BatchState& state, const std::vector<double>& dampings) {
  std::vector<Direction> out;
  for (const double d : dampings) out.push_back(solve(state, d));
  return out;
}

void register_method(MethodEntry entry) {
  for (const auto& e : registry()) {
    if (e.info.name == entry.info.name) throw InputError(fmt::format("method '{}' is registered already", e.info.name));
  }
  registry().push_back(std::move(entry));
}

bool MethodOptions::IsValid(std::string* error) const {
  const auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (cg.max_iter < 1 || !(cg.rtol > 0)) return fail("CG needs an iteration cap ≥ 1 and a relative tolerance > 0");
  if (dense_max_params < 0) return fail("the dense Fisher's parameter limit must be ≥ 0");
  if (!(shampoo_epsilon >= 0)) return fail(fmt::format("the Shampoo ε must be ≥ 0, got {}", shampoo_epsilon));
  return true;
}

std::unique_ptr<UpdateMethod> make_method(const std::string& name, const MethodOptions& options) {
  const auto& entry = entry_of(name);
  std::string why;
  if (!options.IsValid(&why)) throw InputError(fmt::format("{}: {}", name, why));
  return entry.make(options);
}

const MethodInfo& method_info(const std::string& name) { return entry_of(name).info; }

const MethodInfo* find_method(const std::string& name) {
  const auto* e = find_entry(name);
  return e ? &e->info : nullptr;
}

std::vector<MethodInfo> list_methods() {
  std::vector<MethodInfo> out;
  for (const auto& e : registry()) out.push_back(e.info);
  return out;
}

}  // namespace fisheval::solvers
