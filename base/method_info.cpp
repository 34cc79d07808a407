#include "base/method_info.h"

#include <utility>

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

}  // namespace fisheval
