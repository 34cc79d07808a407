// The report of a result file: its tables (computed here from the HDF5 numbers) and a
// self-contained HTML page around figures made by scripts/plot_results.py. The page
// uses no network: inline CSS, PNG files beside it referenced by relative paths.
//
// Statistics (the same definitions as scripts/plot_results.py):
//   mean, std    over the batches of a checkpoint that are done and finite; the
//                standard deviation with ddof = 1 (0 for a single batch)
//   best damping of a method at a stage: the damping index whose mean γ/γ_sgd is
//                smallest (ties: the smaller damping value)
//   smallest damping: the smallest value on the damping axis
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "base/method_info.h"
#include "reports/results.h"

namespace fisheval {

struct MeanStd {
  double mean = std::numeric_limits<double>::quiet_NaN();
  double std = std::numeric_limits<double>::quiet_NaN();
  int64_t count = 0;
};

// Mean ± std over the batches of checkpoint c of a cell measure at (method m, damping j).
MeanStd cell_stats(const ResultFile& r, const std::string& measure, int64_t c, int64_t m, int64_t j);
// Mean ± std over the batches of checkpoint c of a batch measure ([C, B]).
MeanStd batch_stats(const ResultFile& r, const std::string& measure, int64_t c);

// Index of `value` on the damping axis (relative tolerance 1e-9); InputError listing the
// axis when it is not there.
int64_t damping_index(const RunInfo& info, double value);
int64_t smallest_damping_index(const RunInfo& info);

// Mean γ/γ_sgd of one method at one stage at the dampings the report shows.
struct QualityRow {
  std::string method;
  int64_t checkpoint = 0, step = 0;
  struct At {
    std::string selection;  // "smallest", "chosen", "best"
    int64_t damping_index = -1;
    double damping = std::numeric_limits<double>::quiet_NaN();
    MeanStd value;
  };
  std::vector<At> at;
};

struct StageRow {
  int64_t checkpoint = 0, step = 0;
  std::string path, status;
  int64_t batches_done = 0;
  MeanStd loss, grad_norm, grad_norm_imbalance, logit_grad_norm_imbalance;
};

struct TimingRow {
  std::string method;
  int64_t directions = 0;      // directions computed (an undamped method: one per unit)
  double total_seconds = 0;    // Σ of their `seconds`
  double mean_seconds = std::numeric_limits<double>::quiet_NaN();
};

struct ReportTables {
  int64_t smallest = 0, chosen = 0;  // damping indices
  std::vector<QualityRow> quality;   // method-major, then checkpoint
  std::vector<StageRow> stages;
  std::vector<TimingRow> timing;
  double shared_seconds = 0;         // Σ seconds_shared over done units
  int64_t units_done = 0;
  std::vector<std::pair<std::string, std::string>> run;  // run metadata shown first (label, value)
};

// `damped(name)`: whether the method's direction depends on λ (undamped ones are
// computed once per unit and copied to every damping; their time is counted once).
ReportTables make_report_tables(const ResultFile& r, int64_t chosen_damping,
                                const std::function<bool(const std::string&)>& damped);

struct ReportFigure {
  std::string file, title, caption;
};

// Reads a figure manifest of plot_results.py (file TAB title TAB caption per line).
std::vector<ReportFigure> read_figure_manifest(const std::string& path);

struct ReportInput {
  std::string source;  // the result file's path, as given
  std::string title;
  const ResultFile* result = nullptr;
  const ReportTables* tables = nullptr;
  std::vector<ReportFigure> figures;        // of the result file
  std::vector<ReportFigure> toy_figures;    // the toy problem (may be empty)
  std::string generated_by;                 // the report command line
  // The registry's entries (swatch colours, which methods are exact references); a
  // method of the file that is not among them gets grey and counts as approximate.
  std::vector<MethodInfo> methods;
};

std::string report_html(const ReportInput& in);
// Every number of the tables, exactly (17 significant digits; NaN as null).
std::string report_json(const ReportInput& in);
// The quality table as CSV: method,step,selection,damping,mean,std,batches.
std::string quality_csv(const ReportInput& in);

// Writes index.html, report.json and quality.csv into `dir` (each atomically).
void write_report(const std::string& dir, const ReportInput& in);

}  // namespace fisheval
