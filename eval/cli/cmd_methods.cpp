// fisheval methods: the registry, one line per method.
#include <fmt/format.h>

#include <iostream>

#include "eval/cli/cli.h"
#include "solvers/update_method.h"

namespace fisheval::cli {

int run_methods(const std::vector<std::string>& args) {
  po::options_description none("Options");
  po::variables_map vm;
  if (!parse("methods", "", none, {}, args, vm)) return kExitOk;
  for (const auto& m : solvers::list_methods()) std::cout << fmt::format("{:<12} {}\n", m.name, m.summary);
  return kExitOk;
}

}  // namespace fisheval::cli
