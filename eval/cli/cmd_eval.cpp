// fisheval eval: the sweep (checkpoints × batches × methods × dampings) to HDF5.
#include <fmt/format.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "base/error.h"
#include "eval/cli/cli.h"
#include "eval/progress.h"
#include "eval/sweep.h"
#include "mvp/linearisation.h"
#include "solvers/damping.h"
#include "solvers/gram_solve.h"
#include "solvers/update_method.h"

namespace fisheval::cli {
namespace {

// "I/N" (1-based) → (I−1, N); else Slurm's array variables; else (0, 1).
std::pair<int64_t, int64_t> resolve_shard(const std::string& flag) {
  if (!flag.empty()) {
    long long i = 0, n = 0;
    char extra = 0;
    if (std::sscanf(flag.c_str(), "%lld/%lld%c", &i, &n, &extra) != 2 || n < 1 || i < 1 || i > n) {
      throw InputError(fmt::format("--shard '{}' must be I/N with 1 ≤ I ≤ N", flag));
    }
    return {i - 1, n};
  }
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  if (id && count) {
    const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
    const int64_t i = std::atoll(id) - (min ? std::atoll(min) : 0), n = std::atoll(count);
    if (n < 1 || i < 0 || i >= n) {
      throw InputError(fmt::format("SLURM_ARRAY_TASK_ID={} / SLURM_ARRAY_TASK_COUNT={} do not describe a shard "
                                   "(use a contiguous --array=0-{})",
                                   id, count, n - 1));
    }
    return {i, n};
  }
  return {0, 1};
}

// The flag of a sweep_settings() row: its type and default from SweepOptions{}.
void add_setting(po::options_description& group, const char* flag) {
  static const SweepOptions defaults;
  const auto& row = sweep_setting(flag);
  const auto value = row.get(defaults);
  struct Typed {
    po::value_semantic* operator()(const std::string& x) const { return po::value<std::string>()->default_value(x); }
    po::value_semantic* operator()(int64_t x) const { return po::value<int64_t>()->default_value(x); }
    po::value_semantic* operator()(uint64_t x) const { return po::value<uint64_t>()->default_value(x); }
    po::value_semantic* operator()(double x) const { return po::value<double>()->default_value(x); }
  };
  group.add_options()(row.flag, std::visit(Typed{}, value), row.help);
}

// Every sweep_settings() row from its flag; a bad value's message is prefixed by the flag.
void read_settings(const po::variables_map& vm, SweepOptions& o) {
  for (const auto& row : sweep_settings()) {
    const auto& given = vm[row.flag].value();
    SettingValue value;
    if (given.type() == typeid(std::string)) value = boost::any_cast<std::string>(given);
    else if (given.type() == typeid(int64_t)) value = boost::any_cast<int64_t>(given);
    else if (given.type() == typeid(uint64_t)) value = boost::any_cast<uint64_t>(given);
    else if (given.type() == typeid(double)) value = boost::any_cast<double>(given);
    else throw std::logic_error(fmt::format("--{}: a setting flag of a type read_settings cannot read", row.flag));
    try {
      row.set(o, value);
    } catch (const InputError& e) {
      throw InputError(fmt::format("--{}: {}", row.flag, e.what()));
    }
  }
}

// A flag's value through a library parser, its InputError prefixed by the flag.
template <class Parse>
auto with_flag(const char* flag, Parse&& parse) {
  try {
    return parse();
  } catch (const InputError& e) {
    throw InputError(fmt::format("--{}: {}", flag, e.what()));
  }
}

}  // namespace

std::string shard_file_name(const std::string& out, int64_t index, int64_t count) {
  if (count == 1) return out;
  std::filesystem::path p(out);
  const int width = static_cast<int>(std::to_string(count).size());
  const auto stem = p.stem().string();
  return (p.parent_path() / fmt::format("{}.shard-{:0{}}-of-{}{}", stem, index + 1, width, count, p.extension().string()))
      .string();
}

int run_eval(const std::vector<std::string>& args) {
  // The flags of sweep_settings() rows take their type, default and help from the table;
  // the others (inputs, the damping values, the run's plumbing) are declared here.
  po::options_description what("What to evaluate");
  what.add_options()
      ("checkpoints", po::value<std::vector<std::string>>()->multitoken(),
       "checkpoint files (TorchScript archives or native fisheval checkpoints); step = last number in the file name")
      ("series", po::value<std::string>(),
       "a checkpoint series: a manifest CSV (columns path, step, ...) or a folder with manifest.csv or *.pt files");
  for (const char* flag : {"data", "params", "loss"}) add_setting(what, flag);
  po::options_description batches("Batches");
  for (const char* flag : {"batch-size", "num-batches", "batch-sampling", "seed"}) add_setting(batches, flag);
  po::options_description methods("Methods and damping");
  methods.add_options()
      ("methods", po::value<std::string>()->default_value("sgd,ef,ief,sf"),
       "comma-separated update methods ('fisheval methods' lists them)")
      ("damping", po::value<std::string>(), "comma-separated damping values λ ≥ 0 (e.g. 0,1e-6,1e-3)")
      ("damping-grid", po::value<std::string>()->default_value("1e-8:1:9"),
       "log-spaced grid START:STOP:COUNT, used when --damping is not given");
  for (const char* flag : {"damping-mode", "damping-reference", "mc-samples", "dedup-cosine", "singular", "ng-reference",
                           "cg-max-iter", "cg-rtol", "dense-max-params", "memory-budget", "max-output-units",
                           "kfac-approx", "shampoo-epsilon", "local-layers"}) {
    add_setting(methods, flag);
  }
  po::options_description run("Run");
  run.add_options()
      ("out", po::value<std::string>(), "result file (HDF5), required; partial results go to OUT.parts/ until done")
      ("overwrite", po::bool_switch(), "replace an existing OUT (or OUT.parts) of a different configuration");
  for (const char* flag : {"dtype", "device"}) add_setting(run, flag);
  run.add_options()
      ("shard", po::value<std::string>()->default_value(""),
       "I/N: compute shard I of N (1-based) into OUT.shard-I-of-N.h5; default from SLURM_ARRAY_TASK_ID/COUNT")
      ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0 = LibTorch's default)");
  for (const char* flag : {"per-sample-engine", "jvp-engine", "block-products"}) add_setting(run, flag);
  run.add_options()("quiet", po::bool_switch(), "no progress on stderr");
  add_read_timeout_option(run);
  // A row of sweep_settings() that no section above names still gets its flag, under "Run".
  for (const auto& row : sweep_settings()) {
    const bool declared = what.find_nothrow(row.flag, false) || batches.find_nothrow(row.flag, false) ||
                          methods.find_nothrow(row.flag, false) || run.find_nothrow(row.flag, false);
    if (!declared) add_setting(run, row.flag);
  }
  po::options_description all;
  all.add(what).add(batches).add(methods).add(run);
  po::positional_options_description positional;
  po::variables_map vm;
  if (!parse("eval", "--checkpoints FILE... | --series DIR --out RESULTS.h5 [OPTIONS]", all, positional, args, vm)) {
    return kExitOk;
  }
  apply_read_timeout(vm);

  SweepOptions o;
  if (vm.count("checkpoints") && vm.count("series")) throw InputError("give either --checkpoints or --series, not both");
  if (vm.count("checkpoints")) o.checkpoints = series_from_files(vm["checkpoints"].as<std::vector<std::string>>());
  if (vm.count("series")) o.checkpoints = load_series(vm["series"].as<std::string>());
  if (!vm.count("out")) throw InputError("--out RESULTS.h5 is required");
  read_settings(vm, o);
  o.methods = split_list(vm["methods"].as<std::string>());
  o.damping.values = vm.count("damping")
                         ? with_flag("damping", [&] { return solvers::parse_damping_list(vm["damping"].as<std::string>()); })
                         : with_flag("damping-grid", [&] { return solvers::log_grid(vm["damping-grid"].as<std::string>()); });
  o.output.overwrite = vm["overwrite"].as<bool>();
  o.output.progress = !vm["quiet"].as<bool>();
  std::tie(o.output.shard_index, o.output.shard_count) = resolve_shard(vm["shard"].as<std::string>());
  o.output.out = shard_file_name(vm["out"].as<std::string>(), o.output.shard_index, o.output.shard_count);
  if (vm["threads"].as<int>() > 0) torch::set_num_threads(vm["threads"].as<int>());
  o.output.metadata["command_line"] = command_line();
  o.output.metadata["config"] = effective_config(vm);

  const auto summary = run_sweep(o);
  std::cerr << fmt::format(
      "fisheval eval: {} units ({} computed, {} resumed from disk) in {}; {} checkpoint(s) failed, {} warning(s)\n"
      "results: {}\n",
      summary.units_total, summary.units_computed, summary.units_imported, format_duration(summary.seconds),
      summary.checkpoints_failed, summary.warnings, summary.out);
  if (summary.checkpoints_failed > 0 && summary.checkpoints_failed >= static_cast<int64_t>(o.checkpoints.size())) {
    // Every checkpoint was refused (each for bad input: unreadable, wrong shapes, ...).
    std::cerr << fmt::format("fisheval eval: error: every checkpoint failed ({}); see the warnings above\n",
                             summary.checkpoints_failed);
    return kExitBadInput;
  }
  if (summary.checkpoints_failed > 0) return kExitPartial;
  return kExitOk;
}

}  // namespace fisheval::cli
