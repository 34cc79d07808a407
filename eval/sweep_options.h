// The options of a sweep (`fisheval eval`, the demo, the bench's whole unit), grouped by
// concern, with their defaults here and nowhere else; IsValid checks them all at once.
//
// sweep_settings() is the one table of the options a user sets: each row names the flag of
// `fisheval eval` (also its config-file key), its help text, how to read and set it, and,
// for the settings that change numbers, the key it is stored under in a result file. The
// stored texts form the resume fingerprint (reports/result_schema.h, RunInfo::settings), so a
// row's text must never change for an existing setting.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "base/enum_table.h"
#include "checkpoints/dataset.h"
#include "checkpoints/series.h"
#include "mvp/linearisation.h"
#include "solvers/batch_state.h"
#include "solvers/damping.h"
#include "solvers/update_method.h"

namespace fisheval {

// Floating-point type of the model and its products ("auto": float64 on the CPU, float32 on CUDA).
enum class Dtype { kAuto, kFloat32, kFloat64 };

inline constexpr EnumTable<Dtype, 3> kDtypes{
    "dtype", {{{Dtype::kAuto, "auto"}, {Dtype::kFloat32, "float32"}, {Dtype::kFloat64, "float64"}}}};
inline constexpr EnumTable<BatchSampling, 2> kBatchSamplings{
    "batch sampling", {{{BatchSampling::kSequential, "sequential"}, {BatchSampling::kRandom, "random"}}}};
inline constexpr EnumTable<solvers::BlockProducts, 4> kBlockProducts{"block-product route",
                                                                     {{{solvers::BlockProducts::kAuto, "auto"},
                                                                       {solvers::BlockProducts::kRotated, "rotated"},
                                                                       {solvers::BlockProducts::kDirect, "direct"},
                                                                       {solvers::BlockProducts::kJacobian, "jacobian"}}}};
// MethodOptions::kfac_reduce: KFAC-expand (tokens as extra samples) or KFAC-reduce.
inline constexpr EnumTable<bool, 2> kKfacApprox{"Kronecker approximation", {{{false, "expand"}, {true, "reduce"}}}};

// Which samples, in which batches (the same batches for every checkpoint).
struct BatchOptions {
  std::string data = "fashion-mnist:test";  // dataset spec (open_dataset)
  int64_t batch_size = 32;
  int64_t num_batches = 1;
  BatchSampling sampling = BatchSampling::kSequential;
  uint64_t seed = 0;  // batch sampling and, per batch (batch_seed), the sampled labels
};

// The damping axis: λ values, absolute or relative to a reference scale.
struct DampingOptions {
  std::vector<double> values;
  solvers::DampingMode mode = solvers::DampingMode::kAbsolute;
  solvers::DampingReference reference = solvers::DampingReference::kPerSample;
};

// What the shared per-batch state computes (solvers::BatchStateOptions but the seed).
struct StatisticsOptions {
  int64_t mc_samples = 1;  // K sampled labels per datum
  double dedup_cosine = 0;  // > 0: drop near-duplicate per-sample gradients
  solvers::BlockProducts block_products = solvers::BlockProducts::kAuto;
};

// Where the results go, and which share of the units this process computes.
struct OutputOptions {
  std::string out;
  bool overwrite = false;
  int64_t shard_index = 0, shard_count = 1;
  bool progress = true;
  std::map<std::string, std::string> metadata;  // command line, config text, ...
};

struct SweepOptions {
  std::vector<CheckpointEntry> checkpoints;
  std::string params;                // parameter globs ("" = requires_grad)
  std::string loss = "auto";         // auto | a name of mvp::kLosses
  BatchOptions batches;
  std::vector<std::string> methods;
  DampingOptions damping;
  StatisticsOptions statistics;
  std::string ng_reference = "auto";  // auto | none | a method whose MethodInfo::reference is set
  solvers::MethodOptions method_options;
  mvp::LinearisationOptions engines;
  Dtype dtype = Dtype::kAuto;
  std::string device = "auto";         // auto (CUDA when visible, else CPU) | cpu | cuda | cuda:N
  std::string memory_budget = "auto";  // per method and batch: auto (80% of the device's memory) | GiB
  int64_t max_output_units = 1024;     // backward passes per output unit a method may make
  OutputOptions output;

  // Every check of the options (not of the files they name); false with the reason in *error.
  bool IsValid(std::string* error) const;
  // The shared per-batch state's options for the batch seeded `seed`.
  solvers::BatchStateOptions batch_state(uint64_t seed) const;
};

// A setting's value as the flag holds it (the flag's type is the alternative held).
using SettingValue = std::variant<std::string, int64_t, uint64_t, double>;

struct SweepSetting {
  const char* flag;       // `fisheval eval --FLAG`, and the key in a --config file
  const char* stored_as;  // key in RunInfo::settings; nullptr for settings that change no number
  const char* help;       // with units; the default is SweepOptions{}'s value
  SettingValue (*get)(const SweepOptions&);
  void (*set)(SweepOptions&, const SettingValue&);  // InputError (library words) for a bad value
  bool stored_when_empty = true;                    // false: no key while the text is empty
};

// Every row, in the order of `fisheval eval --help`'s sections.
const std::vector<SweepSetting>& sweep_settings();
const SweepSetting& sweep_setting(const std::string& flag);
// The text a value is stored as: strings as they are, integers in decimal, reals by {:g}.
std::string setting_text(const SettingValue& value);
// The number-changing settings of `o` by stored name (RunInfo::settings).
std::map<std::string, std::string> stored_settings(const SweepOptions& o);

// Seed of the label sampling of batch b (same for every checkpoint: common random numbers).
uint64_t batch_seed(uint64_t seed, int64_t batch);

// The natural-gradient references for γ/γ_ng (taken at λ = 0) to try in order: the one
// named by ng_reference, or for auto the reference methods (MethodInfo::reference) listed
// in `methods`, direct solves before iterative ones (a checkpoint too large for ng-dense
// falls back to ng-cg); empty for none.
std::vector<std::string> reference_methods(const SweepOptions& o);

}  // namespace fisheval
