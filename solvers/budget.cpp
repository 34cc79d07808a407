#include "solvers/budget.h"

#include <fmt/format.h>

#include "base/error.h"

namespace fisheval::solvers {

void require_memory(const Budget& budget, const std::string& method, const std::string& what, double bytes) {
  if (budget.memory_bytes <= 0 || bytes <= budget.memory_bytes) return;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  throw InputError(fmt::format("{} needs about {:.3g} GiB for {}, over the memory budget of {:.3g} GiB",
                               method, bytes / kGiB, what, budget.memory_bytes / kGiB),
                   "memory_budget");
}

void require_output_units(const Budget& budget, const std::string& method, const std::string& what, int64_t units) {
  if (units <= budget.max_output_units) return;
  throw InputError(fmt::format("{} needs one backward pass per output unit for {}: {} of them, over the limit of {}",
                               method, what, units, budget.max_output_units),
                   "max_output_units");
}

}  // namespace fisheval::solvers
