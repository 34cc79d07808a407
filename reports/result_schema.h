// The schema of a result file (docs/FORMAT.md): the measures table (name, shape class,
// description), the run's identity RunInfo and its fingerprint, one unit's values and
// the file in memory. No file I/O here (result_file.h reads and writes it).
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

// The `settings` attribute: one "key=value" line per setting, in key order (hashed
// into the fingerprint).
std::string settings_text(const std::map<std::string, std::string>& settings);
std::map<std::string, std::string> parse_settings_text(const std::string& text);

}  // namespace fisheval
