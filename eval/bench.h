// `fisheval bench`: times each stage of an evaluation on one checkpoint and batch and
// reports it as a multiple of one forward+backward pass of that batch (the unit), with
// the stage's peak memory above what was resident before it. Medians of repeated runs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fisheval {

struct BenchOptions {
  std::string checkpoint;            // TorchScript or native checkpoint
  std::string data = "fashion-mnist:test";
  std::string params;                // globs ("" = saved requires_grad)
  std::string loss = "auto";
  int64_t batch_size = 32;
  std::vector<std::string> methods;  // empty: every registered method but ng-dense/ng-cg
  int64_t dampings = 10;             // log grid from 1e-6 to 1 (relative damping)
  int64_t repeats = 5;
  std::string dtype = "auto";
  std::string device = "auto";  // auto (CUDA when visible, else CPU) | cpu | cuda | cuda:N
};

struct BenchRow {
  std::string stage;
  double median_ms = 0, min_ms = 0;
  double ratio = 0;      // median / median of forward+backward
  double peak_mb = 0;    // peak resident memory above the stage's start (host), MiB
  std::string note;
};

struct BenchReport {
  std::string model, data, dtype, device, per_sample_engine;
  int64_t samples = 0, params = 0, outputs = 0, threads = 0;
  std::vector<BenchRow> rows;
  std::string table() const;  // human-readable
  std::string json() const;   // machine-readable
};

BenchReport run_bench(const BenchOptions& options);

}  // namespace fisheval
