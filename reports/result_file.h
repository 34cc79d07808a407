// Reading and writing HDF5 result files (docs/FORMAT.md); the schema is result_schema.h.
//
// Layout of a result file:
//   checkpoint            compound [C] {path, step}        axis
//   batch                 int64 [B]                        axis (batch numbers)
//   batch_samples         int64 [B, N]                     sample indices of each batch
//   method                string [M]                       axis
//   damping               float64 [D]                      axis (as requested; see damping_effective)
//   <cell measures>       [C, B, M, D]    gamma, gamma_rel_sgd, gamma_rel_ng, cosine_sgd, ...
//   <damping measures>    [C, B, D]       damping_effective
//   <batch measures>      [C, B]          loss, grad_norm, gamma_sgd, ...
//   <sample measures>     [C, B, N]       target_prob, logit_grad_norm_sq, ...
//   cg_residual_history   [C, B, D, I]    (when ng-cg ran)
//   done                  uint8 [C, B]    1 where the unit was computed
//   checkpoint_status     string [C]      "ok", "failed: <why>", or "" (not run here)
//   checkpoint_parameters string [C]      the evaluated parameters as JSON: [{"name", "shape",
//                                         "aliases" (tied weights)}, ...] ("" when not run here)
//   num_params            [C, B]          P, the number of evaluated scalars (a batch measure)
//   method_status         string [C, M]   "" (ran) or "skipped: <why>" when a method does not apply
//                                         to a checkpoint or would not fit; its cells are NaN
// Root attributes: settings (each its own attribute, and all in `settings`), the
// fingerprint of the configuration, version, command line, device, library versions.
#pragma once
#include <string>

#include "reports/result_schema.h"

namespace fisheval {

// Reads a result file; a file that crashes or hangs HDF5 is refused by name (InputError,
// checkpoints/crash_guard.h), any other unreadable or inconsistent file too.
ResultFile read_result_file(const std::string& path);
// The same without the crash guard (for a caller that guards the read itself).
ResultFile read_result_file_unguarded(const std::string& path);
// Writes atomically (temp file in the same folder, fsync, rename; base/atomic_file.h).
void write_result_file(const std::string& path, const ResultFile& result);

}  // namespace fisheval
