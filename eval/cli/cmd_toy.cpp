// fisheval toy: the toy least-squares problem of the paper's Figure 1 (f(x) = θ₀ + θ₁x,
// data (0, 0) and (1, 0), squared error) solved with fisheval's own update methods:
// their vector fields on a grid and training trajectories, to DIR/toy.h5, drawn by
// scripts/plot_results.py as DIR/toy.png.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "base/error.h"
#include "eval/cli/cli.h"
#include "eval/cli/plot_script.h"
#include "eval/toy.h"

namespace fs = std::filesystem;

namespace fisheval::cli {
namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int run_toy(const std::vector<std::string>& args) {
  const ToyOptions defaults;
  po::options_description options("Options");
  options.add_options()
      ("out", po::value<std::string>(), "output folder (created): toy.h5 and toy.png")
      ("methods", po::value<std::string>()->default_value(fmt::format("{}", fmt::join(defaults.methods, ","))),
       "comma-separated update methods")
      ("damping", po::value<double>()->default_value(defaults.damping, fmt::format("{:g}", defaults.damping)),
       "absolute damping λ of the damped methods")
      ("lr", po::value<double>()->default_value(defaults.learning_rate, fmt::format("{:g}", defaults.learning_rate)),
       "learning rate η of the trajectories")
      ("steps", po::value<int64_t>()->default_value(defaults.steps), "updates per trajectory")
      ("grid", po::value<int64_t>()->default_value(defaults.grid), "grid points per axis of the vector fields")
      ("no-plot", po::bool_switch(), "write toy.h5 only (no Python needed)");
  po::positional_options_description positional;
  po::variables_map vm;
  if (!parse("toy", "--out DIR [--damping LAMBDA] [--lr ETA] [--steps T]", options, positional, args, vm)) {
    return kExitOk;
  }
  if (!vm.count("out")) throw InputError("--out DIR is required");
  ToyOptions o;
  o.methods = split_commas(vm["methods"].as<std::string>());
  o.damping = vm["damping"].as<double>();
  o.learning_rate = vm["lr"].as<double>();
  o.steps = vm["steps"].as<int64_t>();
  o.grid = vm["grid"].as<int64_t>();
  const bool plot = !vm["no-plot"].as<bool>();
  const auto dir = vm["out"].as<std::string>();

  PlotScript script;
  if (plot) script = find_plot_script();
  const auto result = fisheval::run_toy(o);  // validates the options before anything is written
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("cannot create '{}': {}", dir, ec.message()));
  const auto file = (fs::path(dir) / "toy.h5").string();
  write_toy_file(file, result, {{"command_line", command_line()}, {"fisheval_version", FISHEVAL_VERSION}});
  std::cout << file << "\n";
  if (plot) run_plot_script(script, {"toy", file, "--out", dir});
  return kExitOk;
}

}  // namespace fisheval::cli
