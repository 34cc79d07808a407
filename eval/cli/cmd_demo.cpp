// fisheval demo: train the default model on Fashion-MNIST, score every update method on
// its stages, print the summary table (eval/demo.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <iostream>

#include "eval/cli/cli.h"
#include "eval/demo.h"
#include "eval/progress.h"

namespace fisheval::cli {

int run_demo(const std::vector<std::string>& args) {
  const DemoOptions d0;
  po::options_description options("Options");
  options.add_options()
      ("out", po::value<std::string>()->default_value(d0.out),
       "output folder (series/, results.h5, summary.txt); the demo replaces its own outputs there")
      ("model", po::value<std::string>()->default_value(d0.model), "built-in model to train: mlp | cnn | vit-lora")
      ("epochs", po::value<int64_t>()->default_value(d0.epochs), "training epochs (iEF)")
      ("save-epochs", po::value<double>()->default_value(d0.save_epochs), "a stage every E epochs")
      ("train-samples", po::value<int64_t>()->default_value(d0.train_samples),
       "train on the first K Fashion-MNIST training samples (0 = all 60000)")
      ("num-batches", po::value<int64_t>()->default_value(d0.num_batches), "evaluation batches per stage")
      ("batch-size", po::value<int64_t>()->default_value(d0.batch_size), "samples per evaluation batch")
      ("damping-grid", po::value<std::string>()->default_value(d0.damping_grid),
       "relative damping grid START:STOP:COUNT (λ × max_n ‖∇θ l_n‖²)")
      ("cg-max-iter", po::value<int64_t>()->default_value(d0.cg_max_iter), "ng-cg's iteration cap")
      ("seed", po::value<uint64_t>()->default_value(d0.seed), "seed of training and evaluation batches")
      ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0 = LibTorch's default)")
      ("no-report", po::bool_switch(), "skip the HTML report (OUT/report/, made by `fisheval report`)")
      ("quiet", po::bool_switch(), "no progress on stderr");
  po::positional_options_description positional;
  po::variables_map vm;
  if (!parse("demo", "[--out DIR] [OPTIONS]", options, positional, args, vm)) return kExitOk;
  DemoOptions d;
  d.out = vm["out"].as<std::string>();
  d.model = vm["model"].as<std::string>();
  d.epochs = vm["epochs"].as<int64_t>();
  d.save_epochs = vm["save-epochs"].as<double>();
  d.train_samples = vm["train-samples"].as<int64_t>();
  d.num_batches = vm["num-batches"].as<int64_t>();
  d.batch_size = vm["batch-size"].as<int64_t>();
  d.damping_grid = vm["damping-grid"].as<std::string>();
  d.cg_max_iter = vm["cg-max-iter"].as<int64_t>();
  d.seed = vm["seed"].as<uint64_t>();
  d.progress = !vm["quiet"].as<bool>();
  d.command_line = command_line();
  if (vm["threads"].as<int>() > 0) torch::set_num_threads(vm["threads"].as<int>());

  const auto s = fisheval::run_demo(d, std::cout);
  // The report (figures and tables, fisheval report) of the demo's results.
  const std::string report_dir = d.out + "/report";
  bool reported = false;
  if (!vm["no-report"].as<bool>()) {
    std::cout.flush();
    reported = run_report({s.results, "--out", report_dir}) == kExitOk;
    if (!reported) std::cerr << "fisheval demo: the report could not be made (see above); the results are complete\n";
  }
  std::cout << fmt::format(
      "\nfisheval demo: trained in {}, evaluated {} method(s) in {}{}.\n"
      "outputs in {}:\n"
      "  series   {}  (checkpoints, curve.csv)\n"
      "  results  {}  (HDF5; fisheval show {} --measure gamma)\n"
      "  table    {}\n"
      "{}",
      format_duration(s.train_seconds), s.methods.size(), format_duration(s.eval_seconds),
      s.skipped.empty() ? "" : fmt::format(" ({} left out, see above)", s.skipped.size()), d.out, s.series, s.results,
      s.results, s.summary,
      reported ? fmt::format("  report   {}/index.html  (open in a browser)\n", report_dir) : "");
  return s.checkpoints_failed > 0 ? kExitPartial : kExitOk;
}

}  // namespace fisheval::cli
