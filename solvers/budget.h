// What one method may spend on one batch: memory, and backward passes per output unit of
// a sample (the exact expectation over C classes needs C of them). A method that would go
// past its budget is refused up front with an InputError that says what it needs and which
// flag raises the limit; the sweep records the method as skipped for that checkpoint and
// scores the others (eval/unit.cpp), so a large output space never ends a run.
#pragma once
#include <cstdint>
#include <string>

namespace fisheval::solvers {

struct Budget {
  double memory_bytes = 0;          // 0 = no limit (--memory-budget, GiB)
  int64_t max_output_units = 1024;  // --max-output-units
};

// InputError "METHOD needs about X GiB for WHAT, over the memory budget of Y GiB ..." when
// `bytes` exceeds the budget.
void require_memory(const Budget& budget, const std::string& method, const std::string& what, double bytes);
// InputError when `units` backward passes per batch (one per output unit) exceed the limit.
void require_output_units(const Budget& budget, const std::string& method, const std::string& what, int64_t units);

}  // namespace fisheval::solvers
