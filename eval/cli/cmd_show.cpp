// fisheval show: a summary table of a result file — mean ± std over batches of a
// measure (default γ/γ_sgd) per checkpoint × method, one table per damping value.
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "checkpoints/error.h"
#include "eval/cli/cli.h"
#include "reports/results.h"

namespace fisheval::cli {

int run_show(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("file", po::value<std::string>(), "result file (positional)")(
      "measure", po::value<std::string>()->default_value("gamma_rel_sgd"),
      "cell measure to tabulate: gamma_rel_sgd, gamma, gamma_rel_ng, cosine_sgd, update_norm, d_dot_g, seconds");
  po::positional_options_description positional;
  positional.add("file", 1);
  po::variables_map vm;
  if (!parse("show", "RESULTS.h5 [--measure NAME]", options, positional, args, vm)) return kExitOk;
  if (!vm.count("file")) throw InputError("no result file given");
  const auto path = vm["file"].as<std::string>();
  const auto r = read_result_file(path);
  const auto measure = vm["measure"].as<std::string>();
  if (!r.measures.count(measure) || measure_spec(measure).shape != MeasureShape::kCell) {
    throw InputError(fmt::format("'{}' is not a cell measure of the file", measure));
  }
  const auto& info = r.info;
  const auto& a = r.measures.at(measure);
  const int64_t B = info.num_batches(), M = info.num_methods(), D = info.num_dampings();
  std::cout << fmt::format("{}: {} checkpoint(s) × {} batch(es) of {} × {} method(s) × {} damping(s); damping {}\n",
                           path, info.num_checkpoints(), B, info.num_samples(), M, D,
                           info.settings.count("damping_mode") ? info.settings.at("damping_mode") : "?");
  std::cout << fmt::format("{}: mean ± std over batches\n", measure);
  for (int64_t j = 0; j < D; ++j) {
    std::cout << fmt::format("\nλ = {:g}\n{:>10}", info.dampings[j], "step");
    for (const auto& m : info.methods) std::cout << fmt::format(" {:>20}", m);
    std::cout << "\n";
    for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
      std::cout << fmt::format("{:>10}", info.checkpoint_steps[c]);
      for (int64_t m = 0; m < M; ++m) {
        double sum = 0, sq = 0;
        int64_t n = 0;
        for (int64_t b = 0; b < B; ++b) {
          const double v = a.data[((c * B + b) * M + m) * D + j];
          if (!r.is_done(c, b) || !std::isfinite(v)) continue;
          sum += v;
          sq += v * v;
          ++n;
        }
        if (n == 0) {
          std::cout << fmt::format(" {:>20}", "—");
          continue;
        }
        const double mean = sum / n;
        const double sd = n > 1 ? std::sqrt(std::max(0.0, (sq - n * mean * mean) / (n - 1))) : 0.0;
        std::cout << fmt::format(" {:>20}", fmt::format("{:.4g} ± {:.2g}", mean, sd));
      }
      const auto& status = r.checkpoint_status[c];
      if (!status.empty() && status != "ok") std::cout << "  [" << status.substr(0, 60) << "]";
      std::cout << "\n";
    }
  }
  return kExitOk;
}

}  // namespace fisheval::cli
