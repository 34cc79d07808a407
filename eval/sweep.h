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

#include "checkpoints/dataset.h"
#include "checkpoints/series.h"
#include "mvp/linearisation.h"
#include "solvers/damping.h"
#include "solvers/update_method.h"

namespace fisheval {

struct SweepOptions {
  std::vector<CheckpointEntry> checkpoints;
  std::string data;                  // dataset spec (open_dataset)
  int64_t batch_size = 32;
  int64_t num_batches = 1;
  BatchSampling sampling = BatchSampling::kSequential;
  uint64_t seed = 0;
  std::vector<std::string> methods;
  std::vector<double> dampings;
  solvers::DampingMode damping_mode = solvers::DampingMode::kAbsolute;
  solvers::DampingReference damping_reference = solvers::DampingReference::kPerSample;
  std::string loss = "auto";         // auto|cross-entropy|squared-error|binary-cross-entropy
  std::string params;                // --params globs ("" = requires_grad)
  std::string dtype = "auto";        // auto (float64 on CPU, float32 on CUDA)|float32|float64
  std::string device = "auto";  // auto (CUDA when visible, else CPU) | cpu | cuda | cuda:N
  int64_t mc_samples = 1;
  double dedup_cosine = 0;
  solvers::BlockProducts block_products = solvers::BlockProducts::kAuto;
  std::string ng_reference = "auto";  // auto|none|ng-dense|ng-cg
  solvers::MethodOptions method_options;
  mvp::LinearisationOptions engines;
  std::string memory_budget = "auto";  // per method and batch: auto (80% of the device's memory) | GiB
  int64_t max_output_units = 1024;     // backward passes per output unit a method may make
  std::string out;
  bool overwrite = false;
  int64_t shard_index = 0, shard_count = 1;
  bool progress = true;
  std::map<std::string, std::string> metadata;  // command line, config text, ...
};

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

// Seed of the label sampling of batch b (same for every checkpoint: common random numbers).
uint64_t batch_seed(uint64_t seed, int64_t batch);

// Resolves "auto" and checks the device is usable.
c10::ScalarType resolve_dtype(const std::string& dtype, const std::string& device);
c10::Device resolve_device(const std::string& device);

}  // namespace fisheval
