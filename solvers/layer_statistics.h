// The per-block curvature statistics of one batch that the layer-structured optimisers of
// `fisheval train` accumulate over steps, from the same code the evaluation scores
// (solvers/kronecker.h, solvers/local_sampling.h), and the preconditioner they define.
// Per block (a tapped layer's [W | b] as a [rows, cols] matrix G):
//
//   kfac              left B = (1/K) Σ_{k,n,t} b̂ b̂ᵀ (sampled labels), right A = mean ā āᵀ;
//                     P(G) = (A ⊗ B + λI)⁻¹ G = U_B [(U_Bᵀ G U_A) / (σ_B σ_Aᵀ + λ)] U_Aᵀ,
//                     λ = ε σ_max(A) σ_max(B)
//   shampoo           left S_L = Σ_n Ĝ_n Ĝ_nᵀ, right S_R = Σ_n Ĝ_nᵀ Ĝ_n (true labels),
//                     P(G) = (S_L + ε σ_max(S_L) I)^{-p} G (S_R + ε σ_max(S_R) I)^{-p}, p = 1/4
//   fim-shampoo       the same from sampled labels (weights 1/K), p = 1/2
//   fishy             the same from local draws at every layer, p = 1/2
//   fishy-classifier  the same with local draws in MethodOptions::local_layers only, p = 1/2
//
// The statistics are those of the summed batch loss; the optimisers divide them by N.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "solvers/kronecker.h"
#include "solvers/update_method.h"

namespace fisheval::solvers {

enum class LayerCurvature { kKronecker, kShampoo };

struct LayerStatistics {
  kron::BlockPlan plan;
  std::vector<at::Tensor> left, right;  // per block: [rows, rows] and [cols, cols], float64
  LayerCurvature curvature = LayerCurvature::kShampoo;
  double power = 0.5;                   // Shampoo family: p
};

// kfac, shampoo, fim-shampoo, fishy, fishy-classifier.
std::vector<std::string> layer_statistics_methods();
bool has_layer_statistics(const std::string& method);
LayerStatistics layer_statistics(BatchState& state, const std::string& method, const MethodOptions& options);

// P(G) above for the eigen-decomposed (accumulated) factors of one block; ε > 0 relative
// to the factors' largest eigenvalues. A block whose factor is zero is returned unchanged.
at::Tensor layer_precondition(LayerCurvature curvature, double power, const kron::Eigen& left,
                              const kron::Eigen& right, const at::Tensor& G, double epsilon);

}  // namespace fisheval::solvers
