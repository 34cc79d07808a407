// One unit of the sweep: one checkpoint × one batch, every method at every damping.
// The shared per-batch work (forward pass, gradients, Gram matrices, sampled labels,
// output-unit taps) is done once in a BatchState; each method's dampings are scored
// in one batched Fisher product. Used by the sweep and by `fisheval bench`.
#pragma once
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "checkpoints/dataset.h"
#include "checkpoints/model.h"
#include "eval/progress.h"
#include "eval/sweep_options.h"
#include "reports/results.h"
#include "solvers/update_method.h"

namespace fisheval {

struct LoadedCheckpoint {
  std::unique_ptr<Model> model;
  std::vector<std::string> params;
  std::string path;
  // The engine of single JVPs under --jvp-engine auto, found by a probe on the first
  // unit of this checkpoint (Linearisation::probe_jvp_engine); unset before.
  std::optional<mvp::JvpEngine> jvp_single;
};

// Loads, moves to device/dtype, selects (globs) and marks trainable the parameters;
// InputError for a bad checkpoint or NaN parameters.
LoadedCheckpoint load_checkpoint(const std::string& path, const std::string& params, c10::Device device,
                                 c10::ScalarType dtype);

class UnitRunner {
 public:
  UnitRunner(const SweepOptions& o, const RunInfo& info, std::vector<std::unique_ptr<solvers::UpdateMethod>>& methods,
             Progress& progress, int64_t& warnings);
  // All measures of checkpoint c × batch b (InputError when the batch does not fit the model).
  // A method's numerical failure (NumericalError, c10::LinAlgError, c10::OutOfMemoryError) becomes NaN cells with a
  // warning; a method that does not apply (InputError) is skipped with its reason; any other
  // exception is a programming error and propagates.
  UnitResult run(LoadedCheckpoint& ckpt, const Batch& batch, c10::Device device, c10::ScalarType dtype, int64_t c,
                 int64_t b);

 private:
  struct Unit;      // one unit's shared state and result (unit.cpp)
  struct Computed;  // one method's directions

  bool batch_statistics(Unit& x);         // false when the loss or gradients are not finite
  void natural_gradient_reference(Unit& x);
  Computed method_directions(Unit& x, int64_t m);
  void score(Unit& x, int64_t m, const Computed& got);
  void warn(const std::string& what);

  const SweepOptions& o_;
  const RunInfo& info_;
  std::vector<std::unique_ptr<solvers::UpdateMethod>>& methods_;
  Progress& progress_;
  int64_t& warnings_;
  bool noted_ = false;
  std::set<std::pair<int64_t, int64_t>> skip_warned_;  // (checkpoint, method) skips already reported
};

}  // namespace fisheval
