#include "solvers/damping.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "base/error.h"
#include "solvers/batch_state.h"

namespace fisheval::solvers {
namespace {

double parse_number(const std::string& text, const std::string& what) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    throw InputError(fmt::format("{}: '{}' is not a number", what, text));
  }
}

}  // namespace

double damping_scale(DampingMode mode, DampingReference reference, BatchState& state) {
  if (mode == DampingMode::kAbsolute) return 1.0;
  const auto& C = reference == DampingReference::kPerSample ? state.gram() : state.sampled_gram();
  return C.diagonal().max().item<double>();
}

std::vector<double> log_grid(const std::string& spec) {
  std::vector<std::string> parts;
  std::stringstream in(spec);
  std::string item;
  while (std::getline(in, item, ':')) parts.push_back(item);
  if (parts.size() != 3) throw InputError(fmt::format("damping grid '{}' must be START:STOP:COUNT", spec));
  const double start = parse_number(parts[0], "damping grid"), stop = parse_number(parts[1], "damping grid");
  const double count = parse_number(parts[2], "damping grid");
  if (!(start > 0 && stop > 0) || count < 1 || count != std::floor(count)) {
    throw InputError(fmt::format("damping grid '{}': START and STOP must be positive, COUNT a positive integer",
                                 spec));
  }
  std::vector<double> out;
  const int n = static_cast<int>(count);
  for (int i = 0; i < n; ++i) {
    const double t = n == 1 ? 0.0 : double(i) / (n - 1);
    out.push_back(std::exp(std::log(start) + t * (std::log(stop) - std::log(start))));
  }
  return out;
}

std::vector<double> parse_damping_list(const std::string& spec) {
  std::vector<double> out;
  std::stringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const double v = parse_number(item, "damping list");
    if (!(v >= 0) || !std::isfinite(v)) throw InputError(fmt::format("damping {} must be finite and ≥ 0", item));
    out.push_back(v);
  }
  if (out.empty()) throw InputError("no damping values given");
  return out;
}

}  // namespace fisheval::solvers
