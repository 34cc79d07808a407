// fisheval merge: join the shard files of one run into a file identical to a
// single-process run's (same values, same order).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>

#include "base/error.h"
#include "eval/cli/cli.h"
#include "reports/results.h"

namespace fisheval::cli {

int run_merge(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("out", po::value<std::string>(), "merged result file (HDF5), written atomically")(
      "inputs", po::value<std::vector<std::string>>()->multitoken(), "shard result files (positional)");
  add_read_timeout_option(options);
  po::positional_options_description positional;
  positional.add("inputs", -1);
  po::variables_map vm;
  if (!parse("merge", "--out MERGED.h5 SHARD.h5...", options, positional, args, vm)) return kExitOk;
  apply_read_timeout(vm);
  if (!vm.count("out")) throw InputError("--out MERGED.h5 is required");
  if (!vm.count("inputs")) throw InputError("no shard files given");
  const auto inputs = vm["inputs"].as<std::vector<std::string>>();
  std::vector<ResultFile> shards;
  for (const auto& path : inputs) shards.push_back(read_result_file(path));
  auto merged = merge_results(shards, inputs);
  merged.metadata["merged_from"] = fmt::format("{}", fmt::join(inputs, " "));
  write_result_file(vm["out"].as<std::string>(), merged);
  int64_t missing = 0;
  for (auto d : merged.done) missing += d ? 0 : 1;
  std::cerr << fmt::format("fisheval merge: {} file(s) → {} ({} of {} units present)\n", inputs.size(),
                           vm["out"].as<std::string>(), merged.done.size() - missing, merged.done.size());
  return missing == 0 ? kExitOk : kExitPartial;
}

}  // namespace fisheval::cli
