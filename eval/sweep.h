// The sweep: checkpoints × batches × methods × dampings. Work is organised in units
// (one checkpoint × one batch); everything a unit's methods and dampings share
// (forward pass, gradients, Gram matrices, sampled labels, factorisations) is computed
// once per unit. Units are independent and seeded by their batch, so a sharded or
// resumed run gives the same numbers as a single uninterrupted one.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "eval/sweep_options.h"

namespace fisheval {

struct SweepSummary {
  int64_t units_total = 0;      // in this shard
  int64_t units_computed = 0;
  int64_t units_imported = 0;   // found on disk (resume)
  int64_t checkpoints_failed = 0;
  int64_t warnings = 0;
  double seconds = 0;
  std::string out;
};

SweepSummary run_sweep(const SweepOptions& options);

// The run's identity (axes and number-changing settings) for these options and batches.
struct RunInfo;
RunInfo make_run_info(const SweepOptions& options, const std::vector<std::vector<int64_t>>& batches);

// The units [begin, end) of shard `index` of `count` among `total` units taken in
// (checkpoint, batch) order: contiguous, sizes differing by at most one.
std::pair<int64_t, int64_t> shard_range(int64_t total, int64_t index, int64_t count);


// Resolves "auto" and checks the device is usable.
c10::ScalarType resolve_dtype(Dtype dtype, const std::string& device);
c10::Device resolve_device(const std::string& device);

}  // namespace fisheval
