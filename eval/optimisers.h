// The optimisers of `fisheval train`, each one step θ ← θ − η·u on a batch, in place on
// the model's selected parameters:
//   sgd    u = ∇θ (1/N) Σ_n l_n, with optional momentum (torch::optim::SGD)
//   adamw  Adam with decoupled weight decay on the same mean loss (torch::optim::AdamW)
//   ef, sf, ief
//          the exact methods of the paper's Algorithms 1–3: u = d(λ), the direction of
//          solvers::make_method(name) on the batch (mvp::Linearisation +
//          solvers::BatchState, the very code `fisheval eval` scores), optionally
//          normalised (u = d/‖d‖, the paper's schedule for EF and SF).
//   kfac, shampoo, fim-shampoo, fishy, fishy-classifier
//          the layer-structured preconditioners as practical optimisers (eval/layerwise_optimiser.cpp):
//          each step's per-block statistics (solvers/layer_statistics.h, the code the evaluation
//          scores) averaged over steps, the preconditioner refreshed every k steps, applied to
//          the filtered gradient and grafted onto Adam's (or SGD's) per-layer step size.
// NGD directions see the batch loss as a sum (docs/DEFINITIONS.md); for iEF the update lowers
// each per-sample loss by about η s_n, s_n = ‖∇_{z_n} l_n‖², whatever N is. Every optimiser
// trains on the model's own loss (its hint: cross-entropy for classifiers, binary cross-entropy
// for the autoencoder).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "checkpoints/dataset.h"
#include "checkpoints/model.h"
#include "mvp/loss.h"
#include "solvers/damping.h"
#include "solvers/update_method.h"

namespace fisheval {

struct OptimiserOptions {
  std::string name = "ief";  // sgd | adamw | ef | sf | ief
  // ef, sf, ief
  double damping = 1e-6;  // λ (times the reference scale in relative mode)
  solvers::DampingMode damping_mode = solvers::DampingMode::kRelative;
  solvers::DampingReference damping_reference = solvers::DampingReference::kPerSample;
  bool normalise = false;  // u = d/‖d‖
  int64_t mc_samples = 1;  // sf: sampled labels per datum
  double dedup_cosine = 0;
  uint64_t seed = 0;       // sf: label sampling of step t is seeded by batch_seed(seed, t)
  solvers::MethodOptions method_options;
  // sgd, adamw
  double momentum = 0;
  double weight_decay = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw; and the layer-structured ones' grafting
  // kfac, shampoo, fim-shampoo, fishy, fishy-classifier (also mc_samples, seed, method_options.local_layers)
  double stat_decay = 0.95;       // statistics: S ← β S + (1 − β) S_batch (the first batch's as they are)
  int64_t precond_every = 10;     // eigen-decompose the averaged statistics every k steps (and at step 0)
  double precond_epsilon = 1e-4;  // ε relative to each factor's largest eigenvalue (kfac: λ = ε σ_max(A) σ_max(B))
  std::string grafting = "adam";  // adam | sgd | none: each block's step length taken from that update
};

std::vector<std::string> optimiser_names();
bool is_ngd_optimiser(const std::string& name);  // ef, sf, ief

struct StepStats {
  double loss = 0;         // mean per-sample loss of the batch before the step
  double accuracy = 0;     // of the batch before the step
  double update_norm = 0;  // ‖θ_new − θ_old‖
  double damping = 0;      // effective λ (ef, sf, ief)
  std::string status = "ok";  // solve status of the direction (ef, sf, ief)
};

class Optimiser {
 public:
  virtual ~Optimiser() = default;
  virtual std::string name() const = 0;
  // One step with learning rate `lr` on the batch (inputs and targets already on the
  // model's device and dtype); `step` numbers the steps from 0. The parameters must
  // require gradients (set_trainable). Throws Error when the update is not finite.
  virtual StepStats step(Model& model, const std::vector<std::string>& params, const Batch& batch, double lr,
                         int64_t step) = 0;
};

std::unique_ptr<Optimiser> make_optimiser(const OptimiserOptions& options);
std::unique_ptr<Optimiser> make_layerwise_optimiser(const OptimiserOptions& options);  // kfac, shampoo, …

// Shared by the optimisers: the model's loss (its hint; cross-entropy when it gives none),
std::unique_ptr<mvp::Loss> model_loss(const Model& model);
// the batch accuracy of logits (NaN unless the loss is cross-entropy),
double batch_accuracy(const mvp::Loss& loss, const at::Tensor& logits, const at::Tensor& targets);
// and θ ← θ − factor·d for d given per parameter; Error when a parameter turns non-finite.
void apply_update(Model& model, const std::vector<std::string>& params, const std::vector<at::Tensor>& parts,
                  double factor);

// One batch ready for a curvature step (ef, sf, ief and the layer-structured optimisers):
// the model's loss, the network linearised on the batch and the per-batch state (sampled
// labels seeded by options.seed). `stats` receives the batch's mean loss and accuracy;
// Error when the loss is not finite.
class CurvatureBatch {
 public:
  CurvatureBatch(Model& model, const std::vector<std::string>& params, const Batch& batch,
                 const solvers::BatchStateOptions& options, StepStats& stats);
  mvp::Linearisation& lin() { return lin_; }
  solvers::BatchState& state() { return state_; }

 private:
  static mvp::Linearisation& checked(mvp::Linearisation& lin, const mvp::Loss& loss, const at::Tensor& targets);
  std::unique_ptr<mvp::Loss> loss_;
  mvp::Linearisation lin_;
  solvers::BatchState state_;
};

// Mean loss and accuracy of a model on samples of a dataset (its own loss; accuracy NaN
// unless it classifies), in chunks, without gradients.
struct Evaluation {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};
Evaluation evaluate_model(Model& model, const Dataset& data, const std::vector<int64_t>& indices,
                          c10::Device device, c10::ScalarType dtype, int64_t chunk = 1000);


}  // namespace fisheval
