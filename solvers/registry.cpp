// The registry of update methods by name. Adding a method family: one file under
// solvers/methods/, its factory in families.h, one line here.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <functional>

#include "base/error.h"
#include "solvers/methods/families.h"
#include "solvers/update_method.h"

namespace fisheval::solvers {
namespace {

struct Entry {
  MethodInfo info;
  std::function<std::unique_ptr<UpdateMethod>(const MethodOptions&)> make;
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {{"sgd", "the gradient g (undamped reference)"}, make_sgd},
      {{"ef", "empirical Fisher: Jᵀ(C + λI)⁻¹1 = (JᵀJ + λI)⁻¹g"}, make_ef},
      {{"ief", "improved EF (the paper's Eq. 8): Jᵀ(C + λI)⁻¹s"}, make_ief},
      {{"ief-param", "iEF damped in parameter space: (Jᵀdiag(s)⁻¹J + λI)⁻¹g"}, make_ief_param},
      {{"sf", "sampled Fisher: (ĴᵀĴ/K + λI)⁻¹g, K sampled labels per datum"}, make_sf},
      {{"ng-cg", "natural gradient (F + λI)⁻¹g by linear CG on Fisher-vector products"}, make_ng_cg},
      {{"ng-dense", "natural gradient (F + λI)⁺g from the dense Fisher (small P only)"}, make_ng_dense},
      {{"kfac", "K-FAC: per-layer A ⊗ B, B from sampled-label output gradients"}, make_kfac},
      {{"kfac-exact", "K-FAC with B the exact expectation over labels (type-II, KFLR)"}, make_kfac_exact},
      {{"ekfac", "empirical K-FAC: B from true-label output gradients"}, make_ekfac},
      {{"iekfac", "improved empirical K-FAC: true-label output gradients weighted by 1/s_n"}, make_iekfac},
      {{"kfe", "eigenvalue-corrected K-FAC (George et al.): K-FAC's eigenbasis, re-estimated eigenvalues"}, make_kfe},
      {{"shampoo", "Shampoo: L^{-1/4} G R^{-1/4} from true-label per-sample gradients"}, make_shampoo},
      {{"fim-shampoo", "Shampoo with sampled-label statistics and exponent -1/2"}, make_fim_shampoo},
      {{"fishy", "Fishy: fim-shampoo with labels sampled locally at every layer"}, make_fishy},
      {{"fishy-classifier",
        "Fishy sampling only in --local-layers (default: the final fully connected layers); the layers below "
        "inherit those draws, backpropagated"},
       make_fishy_classifier},
  };
  return entries;
}

// TEMPORARY (refactor-c, until the lead's registry values land): the styles of
// reports/report.cpp's method_colour and scripts/plot_results.py's METHOD_STYLE /
// METHOD_LABEL / MARKERS / method_linewidth / method_alpha, the reference flags, and the
// needs of each method class's needs().
std::vector<Entry> with_temporary_values(std::vector<Entry> entries) {
  struct Style {
    const char *name, *label, *colour, *linestyle, *marker;
  };
  static const Style styles[] = {
      {"sgd", "SGD", "#4d4d4d", ":", ""},
      {"ef", "EF", "#d62728", "-", "v"},
      {"ief", "iEF", "#1f77b4", "-", "o"},
      {"ief-param", "iEF (param. damping)", "#6baed6", "--", "D"},
      {"sf", "SF", "#2ca02c", "-", "s"},
      {"ng-cg", "NG (CG)", "#000000", "--", ""},
      {"ng-dense", "NG (dense)", "#8c6d31", "--", ""},
      {"kfac", "KFAC", "#ff7f0e", "-", "^"},
      {"kfac-exact", "KFAC (exact B)", "#e6ab02", "--", "<"},
      {"ekfac", "eKFAC", "#9467bd", "-", ">"},
      {"iekfac", "ieKFAC", "#17becf", "-", "P"},
      {"kfe", "KFE (EKFAC)", "#bcbd22", "-", "X"},
      {"shampoo", "Shampoo", "#e377c2", "-", "h"},
      {"fim-shampoo", "FIM-Shampoo", "#8c564b", "-", "H"},
      {"fishy", "Fishy", "#7b4173", "-.", "*"},
      {"fishy-classifier", "Fishy classifier", "#a55194", ":", "p"},
  };
  for (auto& e : entries) {
    for (const auto& s : styles) {
      if (e.info.name != s.name) continue;
      e.info.label = s.label;
      e.info.colour = s.colour;
      e.info.linestyle = s.linestyle;
      e.info.marker = s.marker;
    }
    if (e.info.name == "ng-cg") {  // drawn wide and pale under ng-dense, which it often coincides with
      e.info.linewidth = 3.6;
      e.info.alpha = 0.45;
      e.info.records_residuals = true;
    }
    e.info.reference = e.info.name == "ng-cg" || e.info.name == "ng-dense";
    e.info.needs = e.make(MethodOptions{})->needs();
  }
  return entries;
}

const std::vector<Entry>& registry_entries() {
  static const std::vector<Entry> entries = with_temporary_values(registry());
  return entries;
}

}  // namespace

std::unique_ptr<UpdateMethod> make_method(const std::string& name, const MethodOptions& options) {
  for (const auto& e : registry_entries()) {
    if (e.info.name == name) return e.make(options);
  }
  std::vector<std::string> names;
  for (const auto& e : registry_entries()) names.push_back(e.info.name);
  throw InputError(fmt::format("unknown method '{}' (available: {})", name, fmt::join(names, ", ")));
}

const MethodInfo& method_info(const std::string& name) {
  for (const auto& e : registry_entries()) {
    if (e.info.name == name) return e.info;
  }
  std::vector<std::string> names;
  for (const auto& e : registry_entries()) names.push_back(e.info.name);
  throw InputError(fmt::format("unknown method '{}' (available: {})", name, fmt::join(names, ", ")));
}

std::vector<MethodInfo> list_methods() {
  std::vector<MethodInfo> out;
  for (const auto& e : registry_entries()) out.push_back(e.info);
  return out;
}

}  // namespace fisheval::solvers
