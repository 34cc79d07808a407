#include "eval/sweep_options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/text.h"
#include "mvp/loss.h"

namespace fisheval {
namespace {

const std::string& text_of(const SettingValue& v) { return std::get<std::string>(v); }

// The table. A row's lambdas read and write one field; enums go through their EnumTable.
std::vector<SweepSetting> make_sweep_settings() {
  using O = SweepOptions;
  using V = SettingValue;
  return {
      // What to evaluate
      {"data", "data",
       "data: an HDF5 file with datasets 'inputs' and 'targets', or fashion-mnist[:train|:test] (Debian's "
       "dataset-fashion-mnist)",
       [](const O& o) -> V { return o.batches.data; }, [](O& o, const V& v) { o.batches.data = text_of(v); }},
      {"params", "params",
       "parameters to evaluate: comma-separated globs on qualified names (e.g. '*lora*,head.*'); empty = those "
       "saved with requires_grad",
       [](const O& o) -> V { return o.params; }, [](O& o, const V& v) { o.params = text_of(v); }},
      {"loss", "loss",
       "auto | cross-entropy | squared-error | binary-cross-entropy (auto: the checkpoint's recorded loss, else "
       "from the targets' dtype: integer → cross-entropy, floating → squared-error; binary-cross-entropy is never "
       "guessed)",
       [](const O& o) -> V { return o.loss; }, [](O& o, const V& v) { o.loss = text_of(v); }},
      // Batches
      {"batch-size", "batch_size", "samples per batch N", [](const O& o) -> V { return o.batches.batch_size; },
       [](O& o, const V& v) { o.batches.batch_size = std::get<int64_t>(v); }},
      {"num-batches", nullptr, "batches per checkpoint (the paper: 100 of 160)",
       [](const O& o) -> V { return o.batches.num_batches; },
       [](O& o, const V& v) { o.batches.num_batches = std::get<int64_t>(v); }},
      {"batch-sampling", "batch_sampling",
       "sequential (consecutive samples from the start) | random (seeded permutation); the same batches for every "
       "checkpoint",
       [](const O& o) -> V { return std::string(kBatchSamplings.text(o.batches.sampling)); },
       [](O& o, const V& v) { o.batches.sampling = kBatchSamplings.parse(text_of(v)); }},
      {"seed", "seed", "seed of batch sampling and of sampled labels (sf, kfac, ...)",
       [](const O& o) -> V { return o.batches.seed; }, [](O& o, const V& v) { o.batches.seed = std::get<uint64_t>(v); }},
      // Methods and damping
      {"damping-mode", "damping_mode",
       "absolute | relative (λ times a reference scale shared by all methods, see --damping-reference)",
       [](const O& o) -> V { return std::string(solvers::kDampingModes.text(o.damping.mode)); },
       [](O& o, const V& v) { o.damping.mode = solvers::kDampingModes.parse(text_of(v)); }},
      {"damping-reference", "damping_reference",
       "relative damping scale: per-sample (max_n ‖∇θ l_n‖², the largest diagonal entry of JJᵀ) | sf (the largest "
       "diagonal entry of the sampled Gram matrix ĴĴᵀ, as the authors' code does for negative λ)",
       [](const O& o) -> V { return std::string(solvers::kDampingReferences.text(o.damping.reference)); },
       [](O& o, const V& v) { o.damping.reference = solvers::kDampingReferences.parse(text_of(v)); }},
      {"mc-samples", "mc_samples",
       "K: sampled labels per datum for sf (and the sampled Kronecker/Shampoo statistics)",
       [](const O& o) -> V { return o.statistics.mc_samples; },
       [](O& o, const V& v) { o.statistics.mc_samples = std::get<int64_t>(v); }},
      {"dedup-cosine", "dedup_cosine",
       "drop near-duplicate per-sample gradients (|cos| above this, the smaller one dropped) before the Gram solves; "
       "0 = off (the paper's code uses 0.95)",
       [](const O& o) -> V { return o.statistics.dedup_cosine; },
       [](O& o, const V& v) { o.statistics.dedup_cosine = std::get<double>(v); }},
      {"singular", "singular",
       "a singular Gram system (e.g. λ = 0 with duplicate samples): pinv (pseudo-inverse, the λ→0 limit, reported "
       "in solve_status) | error (stop with a message)",
       [](const O& o) -> V { return std::string(solvers::kSingularPolicies.text(o.method_options.singular)); },
       [](O& o, const V& v) { o.method_options.singular = solvers::kSingularPolicies.parse(text_of(v)); }},
      {"ng-reference", "ng_reference",
       "natural-gradient reference for gamma_rel_ng, taken at λ = 0: auto (ng-dense, or ng-cg where ng-dense "
       "does not fit the checkpoint, among those listed in --methods) | none | ng-dense | ng-cg",
       [](const O& o) -> V { return o.ng_reference; }, [](O& o, const V& v) { o.ng_reference = text_of(v); }},
      {"cg-max-iter", "cg_max_iter", "ng-cg: iteration cap", [](const O& o) -> V { return o.method_options.cg.max_iter; },
       [](O& o, const V& v) { o.method_options.cg.max_iter = std::get<int64_t>(v); }},
      {"cg-rtol", "cg_rtol", "ng-cg: relative residual tolerance ‖r‖/‖g‖",
       [](const O& o) -> V { return o.method_options.cg.rtol; },
       [](O& o, const V& v) { o.method_options.cg.rtol = std::get<double>(v); }},
      {"dense-max-params", nullptr, "ng-dense: largest P allowed",
       [](const O& o) -> V { return o.method_options.dense_max_params; },
       [](O& o, const V& v) { o.method_options.dense_max_params = std::get<int64_t>(v); }},
      {"memory-budget", nullptr,
       "memory one method may use on one batch, in GiB: auto (80% of the device's memory: RAM on the CPU, the "
       "GPU's on CUDA) | a number. A method that would need more is skipped for that checkpoint, its reason in "
       "the result file's method_status",
       [](const O& o) -> V { return o.memory_budget; }, [](O& o, const V& v) { o.memory_budget = text_of(v); }},
      {"max-output-units", nullptr,
       "most backward passes per batch a method may make, one per output unit of a sample: kfac-exact (C classes) "
       "and ng-dense (all outputs) are skipped above it; also the largest output for the output-unit JVP route",
       [](const O& o) -> V { return o.max_output_units; },
       [](O& o, const V& v) { o.max_output_units = std::get<int64_t>(v); }},
      {"kfac-approx", "kfac_approx", "Kronecker methods with tokens/pixels: expand (tokens as extra samples) | reduce",
       [](const O& o) -> V { return std::string(kKfacApprox.text(o.method_options.kfac_reduce)); },
       [](O& o, const V& v) { o.method_options.kfac_reduce = kKfacApprox.parse(text_of(v)); }},
      {"shampoo-epsilon", "shampoo_epsilon", "Shampoo family: ε relative to the largest eigenvalue of each factor",
       [](const O& o) -> V { return o.method_options.shampoo_epsilon; },
       [](O& o, const V& v) { o.method_options.shampoo_epsilon = std::get<double>(v); }},
      {"local-layers", "local_layers",
       "fishy-classifier: the layers that sample locally, comma-separated layer names (default: the final fully "
       "connected layers, the Linear layers after the last Conv2d); the others inherit the nearest downstream "
       "sampling layer's draws",
       [](const O& o) -> V { return fmt::format("{}", fmt::join(o.method_options.local_layers, ",")); },
       [](O& o, const V& v) { o.method_options.local_layers = split_list(text_of(v)); },
       /*stored_when_empty=*/false},
      // Run
      {"dtype", "dtype", "auto (float64 on CPU, float32 on CUDA) | float32 | float64; Gram solves are always float64",
       [](const O& o) -> V { return std::string(kDtypes.text(o.dtype)); },
       [](O& o, const V& v) { o.dtype = kDtypes.parse(text_of(v)); }},
      {"device", nullptr, "auto (the first CUDA device when one is visible, else the CPU) | cpu | cuda | cuda:N",
       [](const O& o) -> V { return o.device; }, [](O& o, const V& v) { o.device = text_of(v); }},
      {"per-sample-engine", nullptr,
       "per-sample gradients: auto | taps (layer inputs × output gradients) | loop (one pass per sample)",
       [](const O& o) -> V { return std::string(mvp::kPerSampleEngines.text(o.engines.per_sample)); },
       [](O& o, const V& v) { o.engines.per_sample = mvp::kPerSampleEngines.parse(text_of(v)); }},
      {"jvp-engine", nullptr,
       "Jacobian-vector products for the indicator: auto (layer taps and output-unit gradients when affordable; "
       "else forward mode, checked once per checkpoint against double backward and replaced by it, with a note, "
       "where the model has an operation without a forward-mode formula, e.g. the fused kernel of a frozen "
       "nn.TransformerEncoderLayer in eval mode) | forward (dual tensors, one pass per direction) | double-backward "
       "(two backward passes per direction; works for every model) | taps",
       [](const O& o) -> V { return std::string(mvp::kJvpEngines.text(o.engines.jvp)); },
       [](O& o, const V& v) { o.engines.jvp = mvp::kJvpEngines.parse(text_of(v)); }},
      {"block-products", nullptr,
       "J_z d of the Kronecker/Shampoo directions (layer blocks in a basis): auto (the cheapest by operation count) | "
       "rotated (layer taps rotated into each basis once) | direct (each block back-rotated) | jacobian (each block "
       "back-rotated and paired with the layer's per-sample output-unit Jacobian, formed once; where it has at most "
       "2^23 entries, else rotated)",
       [](const O& o) -> V { return std::string(kBlockProducts.text(o.statistics.block_products)); },
       [](O& o, const V& v) { o.statistics.block_products = kBlockProducts.parse(text_of(v)); }},
  };
}

// The methods whose MethodInfo::reference is set: the direct solves first, then the
// iterative ones (records_residuals), each in registry order (ng-dense, then ng-cg).
std::vector<std::string> reference_candidates() {
  std::vector<std::string> out;
  for (const bool iterative : {false, true}) {
    for (const auto& m : solvers::list_methods()) {
      if (m.reference && m.records_residuals == iterative) out.push_back(m.name);
    }
  }
  return out;
}

}  // namespace

const std::vector<SweepSetting>& sweep_settings() {
  static const std::vector<SweepSetting> rows = make_sweep_settings();
  return rows;
}

const SweepSetting& sweep_setting(const std::string& flag) {
  for (const auto& row : sweep_settings()) {
    if (flag == row.flag) return row;
  }
  throw std::logic_error("sweep_setting: no row for --" + flag);
}

std::string setting_text(const SettingValue& value) {
  struct Text {
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(int64_t x) const { return std::to_string(x); }
    std::string operator()(uint64_t x) const { return std::to_string(x); }
    std::string operator()(double x) const { return fmt::format("{:g}", x); }
  };
  return std::visit(Text{}, value);
}

std::map<std::string, std::string> stored_settings(const SweepOptions& o) {
  std::map<std::string, std::string> out;
  for (const auto& row : sweep_settings()) {
    if (!row.stored_as) continue;
    auto text = setting_text(row.get(o));
    if (text.empty() && !row.stored_when_empty) continue;
    out[row.stored_as] = std::move(text);
  }
  return out;
}

std::vector<std::string> reference_methods(const SweepOptions& o) {
  if (o.ng_reference != "auto") return o.ng_reference == "none" ? std::vector<std::string>{} : std::vector{o.ng_reference};
  std::vector<std::string> out;
  for (const auto& name : reference_candidates()) {
    if (std::find(o.methods.begin(), o.methods.end(), name) != o.methods.end()) out.push_back(name);
  }
  return out;
}

uint64_t batch_seed(uint64_t seed, int64_t batch) {
  // splitmix64 of (seed, batch)
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(batch + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

solvers::BatchStateOptions SweepOptions::batch_state(uint64_t seed) const {
  return {.mc_samples = statistics.mc_samples,
          .seed = seed,
          .dedup_cosine = statistics.dedup_cosine,
          .block_products = statistics.block_products};
}

bool SweepOptions::IsValid(std::string* error) const {
  const auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (checkpoints.empty()) return fail("no checkpoints given (--checkpoints or --series)");
  if (methods.empty()) return fail("no methods given (--methods)");
  for (const auto& name : methods) {
    try {
      solvers::method_info(name);
    } catch (const InputError& e) {
      return fail(e.what());
    }
  }
  // cg_residual_history has no method axis: one method may record it.
  if (std::count_if(methods.begin(), methods.end(),
                    [](const std::string& m) { return solvers::method_info(m).records_residuals; }) > 1) {
    return fail("at most one listed method may record a residual history (cg_residual_history)");
  }
  if (damping.values.empty()) return fail("no damping values given (--damping or --damping-grid)");
  for (const double lambda : damping.values) {
    if (!(lambda >= 0) || !std::isfinite(lambda)) return fail(fmt::format("damping {} must be finite and ≥ 0", lambda));
  }
  if (output.shard_count < 1 || output.shard_index < 0 || output.shard_index >= output.shard_count) {
    return fail(fmt::format("--shard {}/{}: need 1 ≤ I ≤ N", output.shard_index + 1, output.shard_count));
  }
  if (statistics.mc_samples < 1) return fail("--mc-samples must be at least 1");
  if (statistics.dedup_cosine < 0 || statistics.dedup_cosine > 1) return fail("--dedup-cosine must be in [0, 1]");
  if (max_output_units < 1) return fail("--max-output-units must be at least 1");
  std::string why;
  if (!method_options.IsValid(&why)) return fail("method options: " + why);  // --cg-*, --shampoo-epsilon, ...
  const auto refs = reference_candidates();
  if (ng_reference != "auto" && ng_reference != "none" &&
      std::find(refs.begin(), refs.end(), ng_reference) == refs.end()) {
    return fail(fmt::format("--ng-reference '{}' must be auto, none or a reference method ({})", ng_reference,
                            fmt::join(refs, ", ")));
  }
  if (loss != "auto") {
    try {
      mvp::kLosses.parse(loss);
    } catch (const InputError& e) {
      return fail(fmt::format("--loss: {}", e.what()));
    }
  }
  return true;
}

}  // namespace fisheval
