// fisheval methods: the registry, one line per method; with --json every field of each
// entry (base/method_info.h), which scripts/plot_results.py reads for its styles.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>

#include "base/method_info.h"
#include "eval/cli/cli.h"
#include "solvers/update_method.h"

namespace fisheval::cli {
int run_methods(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("json", po::bool_switch(),
                        "print every registry field of each method as a JSON array: name, summary, label, colour, "
                        "linestyle, marker, linewidth, alpha, damped, reference, records_residuals, needs (list of names); "
                        "scripts/plot_results.py reads its styles from it");
  po::variables_map vm;
  if (!parse("methods", "[--json]", options, {}, args, vm)) return kExitOk;
  if (vm["json"].as<bool>()) {
    std::cout << methods_json(solvers::list_methods());
    return kExitOk;
  }
  for (const auto& m : solvers::list_methods()) std::cout << fmt::format("{:<12} {}\n", m.name, m.summary);
  return kExitOk;
}

}  // namespace fisheval::cli
