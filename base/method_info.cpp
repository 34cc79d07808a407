#include "base/method_info.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "base/text.h"

namespace fisheval {

std::vector<std::string> need_names(unsigned needs) {
  static const std::pair<Need, const char*> table[] = {
      {kNeedsGradient, "gradient"},           {kNeedsPerSampleGradients, "per-sample-gradients"},
      {kNeedsSampledGradients, "sampled-gradients"}, {kNeedsFisherProducts, "fisher-products"},
      {kNeedsDenseFisher, "dense-fisher"},     {kNeedsLayerTaps, "layer-taps"}};
  std::vector<std::string> out;
  for (const auto& [flag, text] : table) {
    if (needs & flag) out.emplace_back(text);
  }
  return out;
}

std::string methods_json(const std::vector<MethodInfo>& methods) {
  std::string out = "[\n";
  for (size_t i = 0; i < methods.size(); ++i) {
    const auto& m = methods[i];
    std::vector<std::string> needs;
    for (const auto& n : need_names(m.needs)) needs.push_back(json_string(n));
    out += fmt::format(
        "  {{\"name\": {}, \"summary\": {}, \"label\": {}, \"colour\": {}, \"linestyle\": {}, \"marker\": {}, "
        "\"linewidth\": {}, \"alpha\": {}, \"damped\": {}, \"reference\": {}, \"records_residuals\": {}, \"needs\": [{}]}}{}\n",
        json_string(m.name), json_string(m.summary), json_string(m.label),
        json_string(m.colour), json_string(m.linestyle), json_string(m.marker), m.linewidth,
        m.alpha, m.damped, m.reference, m.records_residuals, fmt::join(needs, ", "), i + 1 < methods.size() ? "," : "");
  }
  return out + "]\n";
}

}  // namespace fisheval
