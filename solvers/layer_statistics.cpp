#include "solvers/layer_statistics.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "base/error.h"
#include "solvers/local_sampling.h"

namespace fisheval::solvers {

std::vector<std::string> layer_statistics_methods() {
  return {"kfac", "shampoo", "fim-shampoo", "fishy", "fishy-classifier"};
}

bool has_layer_statistics(const std::string& method) {
  const auto names = layer_statistics_methods();
  return std::find(names.begin(), names.end(), method) != names.end();
}

LayerStatistics layer_statistics(BatchState& state, const std::string& method, const MethodOptions& options) {
  if (!has_layer_statistics(method)) {
    throw InputError(fmt::format("'{}' has no layer statistics (kfac, shampoo, fim-shampoo, fishy, fishy-classifier)",
                                 method));
  }
  LayerStatistics st;
  st.plan = kron::plan(state, method);
  const auto& abar = kron::augmented_inputs(state, method);
  if (method == "kfac") {
    st.curvature = LayerCurvature::kKronecker;
    st.power = 1.0;
    const auto& b = kron::output_grads(state, kron::Statistic::kSampled, method);
    const auto& w = kron::statistic_weights(state, kron::Statistic::kSampled);
    for (size_t i = 0; i < st.plan.blocks.size(); ++i) {
      st.left.push_back(kron::output_factor(b[i], w, options.kfac_reduce));
      st.right.push_back(kron::input_factor(abar[i], options.kfac_reduce));
    }
    return st;
  }
  const auto statistic = method == "shampoo" ? kron::Statistic::kTrue : kron::Statistic::kSampled;
  st.power = method == "shampoo" ? 0.25 : 0.5;
  const bool local = method == "fishy" || method == "fishy-classifier";
  const auto& b =
      local ? local_output_grads(state, st.plan,
                                 method == "fishy" ? sampling_layers(state, {}, "all")
                                                   : sampling_layers(state, options.local_layers, "classifier"),
                                 method)
            : kron::output_grads(state, statistic, method);
  const auto& w = kron::statistic_weights(state, statistic);
  for (size_t i = 0; i < st.plan.blocks.size(); ++i) {
    auto [SL, SR] = kron::gradient_second_moments(b[i], abar[i], w);
    st.left.push_back(std::move(SL));
    st.right.push_back(std::move(SR));
  }
  return st;
}

at::Tensor layer_precondition(LayerCurvature curvature, double power, const kron::Eigen& left,
                              const kron::Eigen& right, const at::Tensor& G, double epsilon) {
  const double top_l = kron::top_value(left.values), top_r = kron::top_value(right.values);
  if (!(top_l > 0) || !(top_r > 0)) return G;
  // K-FAC: (A ⊗ B + λI)⁻¹ G with λ = ε σ_max(B) σ_max(A), the evaluation's own solve.
  if (curvature == LayerCurvature::kKronecker) return kron::kronecker_solve(right, left, G, epsilon * top_l * top_r).first;
  // Shampoo family: U_L [σ_L^{-p} ∘ (U_Lᵀ G U_R) ∘ σ_R^{-p}ᵀ] U_Rᵀ with the shifted spectra.
  const auto li = kron::inverse_power(left.values, epsilon * top_l, power).first;
  const auto ri = kron::inverse_power(right.values, epsilon * top_r, power).first;
  const auto scaled = kron::rotate(left.vectors, right.vectors, G) * torch::outer(li, ri);
  return torch::mm(torch::mm(left.vectors, scaled), right.vectors.t());
}

}  // namespace fisheval::solvers
