// HDF5 result files (docs/FORMAT.md). One schema, data-driven: every measure has
// a name, a shape class and a description (stored as the dataset's `description`).
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
//
// Writing goes through a ResultStore: each finished (checkpoint, batch) unit is written
// at once to OUT.parts/ (temp file + fsync + rename), and OUT itself is assembled
// atomically at the end. A run killed at any moment and started again with the same
// configuration imports what exists and computes only what is missing.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "reports/h5.h"

namespace fisheval {

enum class MeasureShape { kCell, kDamping, kBatch, kSample, kCgHistory };

struct MeasureSpec {
  std::string name;
  MeasureShape shape;
  bool integer;
  std::string description;
};
const std::vector<MeasureSpec>& result_measures();
const MeasureSpec& measure_spec(const std::string& name);

// The run's identity: its axes and every setting that changes the numbers. Shards of
// one run have the same RunInfo (and fingerprint).
struct RunInfo {
  std::vector<std::string> checkpoint_paths;
  std::vector<int64_t> checkpoint_steps;
  std::vector<std::vector<int64_t>> batches;  // [B][N]
  std::vector<std::string> methods;
  std::vector<double> dampings;
  int64_t cg_history_length = 0;              // iterations + 1 stored per ng-cg cell
  std::map<std::string, std::string> settings;

  int64_t num_checkpoints() const { return static_cast<int64_t>(checkpoint_paths.size()); }
  int64_t num_batches() const { return static_cast<int64_t>(batches.size()); }
  int64_t num_samples() const { return batches.empty() ? 0 : static_cast<int64_t>(batches[0].size()); }
  int64_t num_methods() const { return static_cast<int64_t>(methods.size()); }
  int64_t num_dampings() const { return static_cast<int64_t>(dampings.size()); }
  // Number of values of one unit for a measure of this shape.
  int64_t unit_size(MeasureShape shape) const;
  std::vector<int64_t> unit_shape(MeasureShape shape) const;
  std::string fingerprint() const;
};

// All measures of one (checkpoint, batch) unit, each flattened in its unit shape.
struct UnitResult {
  int64_t checkpoint = 0, batch = 0;
  std::map<std::string, std::vector<double>> values;
  std::string parameters;  // the checkpoint's evaluated parameters (JSON), see checkpoint_parameters
  std::map<int64_t, std::string> method_status;  // method index -> "skipped: <why>"
};

// A result file in memory.
struct ResultFile {
  RunInfo info;
  std::map<std::string, std::string> metadata;  // root attributes that are not settings
  std::vector<std::string> checkpoint_status;   // [C]
  std::vector<std::string> checkpoint_parameters;  // [C], JSON
  std::vector<std::string> method_status;          // [C·M]
  std::map<std::string, h5::Array> measures;    // [C, B, ...]
  std::vector<uint8_t> done;                    // [C·B]

  bool is_done(int64_t c, int64_t b) const { return done[c * info.num_batches() + b] != 0; }
  UnitResult unit(int64_t c, int64_t b) const;
  void put(const UnitResult& unit);
};

ResultFile empty_result(const RunInfo& info);
ResultFile read_result_file(const std::string& path);
// Writes atomically (temp file in the same folder, fsync, rename).
void write_result_file(const std::string& path, const ResultFile& result);
// Joins shard files of one run into one; refuses files of different configurations.
ResultFile merge_results(const std::vector<ResultFile>& shards, const std::vector<std::string>& names);

class ResultStore {
 public:
  // Refuses (InputError) an existing OUT or OUT.parts of another configuration unless
  // `overwrite`, in which case they are replaced.
  ResultStore(std::string out, RunInfo info, std::map<std::string, std::string> metadata, bool overwrite);

  const RunInfo& info() const { return result_.info; }
  bool done(int64_t c, int64_t b) const { return result_.is_done(c, b); }
  int64_t imported_units() const { return imported_; }
  // Records a finished unit: written to OUT.parts/ before this returns.
  void put(const UnitResult& unit);
  void set_checkpoint_status(int64_t c, const std::string& status);
  const ResultFile& result() const { return result_; }
  // Assembles OUT atomically and removes OUT.parts/.
  void finish();

 private:
  std::string out_, parts_;
  ResultFile result_;
  int64_t imported_ = 0;
};

}  // namespace fisheval
