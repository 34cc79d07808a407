// The summary table of a result file (what `fisheval show` prints): mean ± std over
// batches of one cell measure (default γ/γ_sgd) per checkpoint × method, one table per
// damping value.
#pragma once
#include <ostream>
#include <string>

#include "reports/results.h"

namespace fisheval {

// Throws InputError when `measure` is not a cell measure of the file.
void print_summary(std::ostream& out, const ResultFile& result, const std::string& path,
                   const std::string& measure = "gamma_rel_sgd");

}  // namespace fisheval
