// fisheval report: a self-contained HTML report of a result file — the paper's figures
// (drawn by scripts/plot_results.py), tables of γ/γ_sgd per method and stage, timing
// and run metadata, and the toy problem of the paper's Figure 1 as background.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "base/error.h"
#include "eval/cli/cli.h"
#include "eval/cli/plot_script.h"
#include "eval/toy.h"
#include "reports/report.h"
#include "reports/results.h"
#include "solvers/update_method.h"

namespace fs = std::filesystem;

namespace fisheval::cli {
namespace {

bool method_is_damped(const std::string& name) {
  const auto* m = solvers::find_method(name);
  return m ? m->damped : true;  // a method this build does not know: count every damping
}

}  // namespace

int run_report(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()
      ("file", po::value<std::string>(), "result file of fisheval eval or merge (positional)")
      ("out", po::value<std::string>(), "report folder (created): index.html, PNG figures, report.json, quality.csv")
      ("damping", po::value<double>(),
       "damping of the quality-over-training figure and an extra table column: a value on the file's damping axis "
       "(default: the smallest)")
      ("title", po::value<std::string>(), "page title (default: from the file name)")
      ("no-toy", po::bool_switch(), "leave out the toy problem of the paper's Figure 1");
  add_read_timeout_option(options);
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse("report", "RESULTS.h5 --out DIR [--damping LAMBDA] [--title TEXT] [--no-toy]", options, positional, args,
             vm)) {
    return kExitOk;
  }
  apply_read_timeout(vm);
  if (!vm.count("file")) throw InputError("no result file given (fisheval report RESULTS.h5 --out DIR)");
  if (!vm.count("out")) throw InputError("--out DIR is required");
  const auto path = vm["file"].as<std::string>();
  const auto dir = vm["out"].as<std::string>();

  // Everything that can refuse the input is checked before anything is written.
  const auto result = read_result_file(path);
  const auto& info = result.info;
  if (std::none_of(result.done.begin(), result.done.end(), [](uint8_t d) { return d != 0; })) {
    throw InputError(fmt::format("'{}' has no finished (checkpoint, batch) units: nothing to report", path));
  }
  const int64_t chosen = vm.count("damping") ? damping_index(info, vm["damping"].as<double>())
                                             : smallest_damping_index(info);
  const auto plot = find_plot_script();
  const auto tables = make_report_tables(result, chosen, method_is_damped);

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("cannot create the report folder '{}': {}", dir, ec.message()));
  run_plot_script(plot, {"results", path, "--out", dir, "--damping", fmt::format("{:.17g}", info.dampings[chosen])});

  ReportInput in;
  in.source = path;
  in.title = vm.count("title") ? vm["title"].as<std::string>()
                               : fmt::format("fisheval report: {}", fs::path(path).filename().string());
  in.result = &result;
  in.tables = &tables;
  in.generated_by = command_line();
  in.methods = solvers::list_methods();
  in.figures = read_figure_manifest((fs::path(dir) / "figures-results.tsv").string());
  if (!vm["no-toy"].as<bool>()) {
    const auto toy_file = (fs::path(dir) / "toy.h5").string();
    write_toy_file(toy_file, fisheval::run_toy(ToyOptions{}), {{"command_line", command_line()},
                                                     {"fisheval_version", FISHEVAL_VERSION}});
    run_plot_script(plot, {"toy", toy_file, "--out", dir});
    in.toy_figures = read_figure_manifest((fs::path(dir) / "figures-toy.tsv").string());
  }
  write_report(dir, in);
  std::cout << (fs::path(dir) / "index.html").string() << "\n";
  return kExitOk;
}

}  // namespace fisheval::cli
