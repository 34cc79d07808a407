#include "eval/summary.h"

#include <fmt/format.h>

#include <cmath>

#include "base/error.h"

namespace fisheval {

void print_summary(std::ostream& out, const ResultFile& r, const std::string& path, const std::string& measure) {
  if (!r.measures.count(measure) || measure_spec(measure).shape != MeasureShape::kCell) {
    throw InputError(fmt::format("'{}' is not a cell measure of the file", measure));
  }
  const auto& info = r.info;
  const auto& a = r.measures.at(measure);
  const int64_t B = info.num_batches(), M = info.num_methods(), D = info.num_dampings();
  out << fmt::format("{}: {} checkpoint(s) × {} batch(es) of {} × {} method(s) × {} damping(s); damping {}\n", path,
                     info.num_checkpoints(), B, info.num_samples(), M, D,
                     info.settings.count("damping_mode") ? info.settings.at("damping_mode") : "?");
  out << fmt::format("{}: mean ± std over batches\n", measure);
  for (int64_t j = 0; j < D; ++j) {
    out << fmt::format("\nλ = {:g}\n{:>10}", info.dampings[j], "step");
    for (const auto& m : info.methods) out << fmt::format(" {:>20}", m);
    out << "\n";
    for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
      out << fmt::format("{:>10}", info.checkpoint_steps[c]);
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
          out << fmt::format(" {:>20}", "—");
          continue;
        }
        const double mean = sum / n;
        const double sd = n > 1 ? std::sqrt(std::max(0.0, (sq - n * mean * mean) / (n - 1))) : 0.0;
        out << fmt::format(" {:>20}", fmt::format("{:.4g} ± {:.2g}", mean, sd));
      }
      const auto& status = r.checkpoint_status[c];
      if (!status.empty() && status != "ok") out << "  [" << status.substr(0, 60) << "]";
      out << "\n";
    }
  }
}

}  // namespace fisheval
