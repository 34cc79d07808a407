// fisheval show: a summary table of a result file — mean ± std over batches of a
// measure (default γ/γ_sgd) per checkpoint × method, one table per damping value
// (eval/summary.h).
#include <iostream>

#include "base/error.h"
#include "eval/cli/cli.h"
#include "eval/summary.h"
#include "reports/results.h"

namespace fisheval::cli {

int run_show(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("file", po::value<std::string>(), "result file (positional)")(
      "measure", po::value<std::string>()->default_value("gamma_rel_sgd"),
      "cell measure to tabulate: gamma_rel_sgd, gamma, gamma_rel_ng, cosine_sgd, update_norm, d_dot_g, seconds");
  add_read_timeout_option(options);
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse("show", "RESULTS.h5 [--measure NAME]", options, positional, args, vm)) return kExitOk;
  apply_read_timeout(vm);
  if (!vm.count("file")) throw InputError("no result file given");
  const auto path = vm["file"].as<std::string>();
  print_summary(std::cout, read_result_file(path), path, vm["measure"].as<std::string>());
  return kExitOk;
}

}  // namespace fisheval::cli
