// The one-command demo: train the default model on Fashion-MNIST with iEF for a few
// epochs (about five stages), score every update method that exists (whatever
// solvers::list_methods() returns, less those whose needs the model cannot meet, decided
// up front and left out with a note, not a failure) over a damping grid and several
// batches per stage, write the HDF5 results and print the summary table.
//
// OUT/series/    the checkpoint series (manifest.csv, curve.csv, step_*.pt)
// OUT/results.h5 the sweep's results
// OUT/summary.txt the table printed at the end
// The demo always replaces its own outputs in OUT.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace fisheval {

struct DemoOptions {
  std::string out = "demo-output";
  std::string model = "mlp";
  int64_t epochs = 2;
  double save_epochs = 0.5;   // stages at 0, 0.5, 1, 1.5, 2 epochs
  int64_t train_samples = 0;  // 0 = all 60000
  int64_t num_batches = 5;    // evaluation batches per stage
  int64_t batch_size = 64;    // samples per evaluation batch
  std::string damping_grid = "1e-8:1:5";  // relative damping (× max_n ‖∇θ l_n‖²)
  int64_t cg_max_iter = 20;   // ng-cg's iteration cap
  uint64_t seed = 0;
  bool progress = true;
  std::string command_line;
};

struct DemoSummary {
  std::string series, results, summary;
  std::vector<std::string> methods;                 // evaluated
  std::vector<std::string> skipped;                 // "name: why"
  int64_t checkpoints_failed = 0;
  double train_seconds = 0, eval_seconds = 0;
};

struct SweepOptions;
// The registered methods the demo evaluates on the sweep's first checkpoint, from each
// method's needs (MethodInfo::needs): the dense Fisher only up to dense_max_params, layer
// taps only when a selected parameter has a tapped layer; the others in `skipped` as
// "name: why".
std::vector<std::string> demo_methods(const SweepOptions& s, std::vector<std::string>& skipped);

// Writes the table to `out` (and OUT/summary.txt).
DemoSummary run_demo(const DemoOptions& options, std::ostream& out);

}  // namespace fisheval
