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
      {{.name = "ng-cg",
        .summary = "natural gradient (F + λI)⁻¹g by linear CG on Fisher-vector products",
        .reference = true,
        .records_residuals = true},
       make_ng_cg},
      {{.name = "ng-dense", .summary = "natural gradient (F + λI)⁺g from the dense Fisher (small P only)", .reference = true},
       make_ng_dense},
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

}  // namespace

std::unique_ptr<UpdateMethod> make_method(const std::string& name, const MethodOptions& options) {
  for (const auto& e : registry()) {
    if (e.info.name == name) return e.make(options);
  }
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.info.name);
  throw InputError(fmt::format("unknown method '{}' (available: {})", name, fmt::join(names, ", ")));
}

const MethodInfo& method_info(const std::string& name) {
  for (const auto& e : registry()) {
    if (e.info.name == name) return e.info;
  }
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.info.name);
  throw InputError(fmt::format("unknown method '{}' (available: {})", name, fmt::join(names, ", ")));
}

std::vector<MethodInfo> list_methods() {
  std::vector<MethodInfo> out;
  for (const auto& e : registry()) out.push_back(e.info);
  return out;
}

}  // namespace fisheval::solvers
