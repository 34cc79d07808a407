// fisheval eval: the sweep (checkpoints × batches × methods × dampings) to HDF5.
#include <fmt/format.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "base/error.h"
#include "eval/cli/cli.h"
#include "eval/progress.h"
#include "eval/sweep.h"
#include "mvp/linearisation.h"
#include "solvers/damping.h"
#include "solvers/update_method.h"

namespace fisheval::cli {
namespace {

// "I/N" (1-based) → (I−1, N); else Slurm's array variables; else (0, 1).
std::pair<int64_t, int64_t> resolve_shard(const std::string& flag) {
  if (!flag.empty()) {
    long long i = 0, n = 0;
    char extra = 0;
    if (std::sscanf(flag.c_str(), "%lld/%lld%c", &i, &n, &extra) != 2 || n < 1 || i < 1 || i > n) {
      throw InputError(fmt::format("--shard '{}' must be I/N with 1 ≤ I ≤ N", flag));
    }
    return {i - 1, n};
  }
  const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
  if (id && count) {
    const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
    const int64_t i = std::atoll(id) - (min ? std::atoll(min) : 0), n = std::atoll(count);
    if (n < 1 || i < 0 || i >= n) {
      throw InputError(fmt::format("SLURM_ARRAY_TASK_ID={} / SLURM_ARRAY_TASK_COUNT={} do not describe a shard "
                                   "(use a contiguous --array=0-{})",
                                   id, count, n - 1));
    }
    return {i, n};
  }
  return {0, 1};
}

}  // namespace

std::string shard_file_name(const std::string& out, int64_t index, int64_t count) {
  if (count == 1) return out;
  std::filesystem::path p(out);
  const int width = static_cast<int>(std::to_string(count).size());
  const auto stem = p.stem().string();
  return (p.parent_path() / fmt::format("{}.shard-{:0{}}-of-{}{}", stem, index + 1, width, count, p.extension().string()))
      .string();
}

int run_eval(const std::vector<std::string>& args) {
  po::options_description what("What to evaluate");
  what.add_options()
      ("checkpoints", po::value<std::vector<std::string>>()->multitoken(),
       "checkpoint files (TorchScript archives or native fisheval checkpoints); step = last number in the file name")
      ("series", po::value<std::string>(),
       "a checkpoint series: a manifest CSV (columns path, step, ...) or a folder with manifest.csv or *.pt files")
      ("data", po::value<std::string>()->default_value("fashion-mnist:test"),
       "data: an HDF5 file with datasets 'inputs' and 'targets', or fashion-mnist[:train|:test] (Debian's "
       "dataset-fashion-mnist)")
      ("params", po::value<std::string>()->default_value(""),
       "parameters to evaluate: comma-separated globs on qualified names (e.g. '*lora*,head.*'); empty = those "
       "saved with requires_grad")
      ("loss", po::value<std::string>()->default_value("auto"),
       "auto | cross-entropy | squared-error | binary-cross-entropy (auto: the checkpoint's recorded loss, else "
       "from the targets' dtype: integer → cross-entropy, floating → squared-error; binary-cross-entropy is never "
       "guessed)");
  po::options_description batches("Batches");
  batches.add_options()
      ("batch-size", po::value<int64_t>()->default_value(32), "samples per batch N")
      ("num-batches", po::value<int64_t>()->default_value(1), "batches per checkpoint (the paper: 100 of 160)")
      ("batch-sampling", po::value<std::string>()->default_value("sequential"),
       "sequential (consecutive samples from the start) | random (seeded permutation); the same batches for every "
       "checkpoint")
      ("seed", po::value<uint64_t>()->default_value(0), "seed of batch sampling and of sampled labels (sf, kfac, ...)");
  po::options_description methods("Methods and damping");
  methods.add_options()
      ("methods", po::value<std::string>()->default_value("sgd,ef,ief,sf"),
       "comma-separated update methods ('fisheval methods' lists them)")
      ("damping", po::value<std::string>(), "comma-separated damping values λ ≥ 0 (e.g. 0,1e-6,1e-3)")
      ("damping-grid", po::value<std::string>()->default_value("1e-8:1:9"),
       "log-spaced grid START:STOP:COUNT, used when --damping is not given")
      ("damping-mode", po::value<std::string>()->default_value("absolute"),
       "absolute | relative (λ times a reference scale shared by all methods, see --damping-reference)")
      ("damping-reference", po::value<std::string>()->default_value("per-sample"),
       "relative damping scale: per-sample (max_n ‖∇θ l_n‖², the largest diagonal entry of JJᵀ) | sf (the largest "
       "diagonal entry of the sampled Gram matrix ĴĴᵀ, as the authors' code does for negative λ)")
      ("mc-samples", po::value<int64_t>()->default_value(1), "K: sampled labels per datum for sf (and the sampled "
       "Kronecker/Shampoo statistics)")
      ("dedup-cosine", po::value<double>()->default_value(0.0),
       "drop near-duplicate per-sample gradients (|cos| above this, the smaller one dropped) before the Gram solves; "
       "0 = off (the paper's code uses 0.95)")
      ("singular", po::value<std::string>()->default_value("pinv"),
       "a singular Gram system (e.g. λ = 0 with duplicate samples): pinv (pseudo-inverse, the λ→0 limit, reported "
       "in solve_status) | error (stop with a message)")
      ("ng-reference", po::value<std::string>()->default_value("auto"),
       "natural-gradient reference for gamma_rel_ng, taken at λ = 0: auto (ng-dense, or ng-cg where ng-dense "
       "does not fit the checkpoint, among those listed in --methods) | none | ng-dense | ng-cg")
      ("cg-max-iter", po::value<int64_t>()->default_value(100), "ng-cg: iteration cap")
      ("cg-rtol", po::value<double>()->default_value(1e-6), "ng-cg: relative residual tolerance ‖r‖/‖g‖")
      ("dense-max-params", po::value<int64_t>()->default_value(20000), "ng-dense: largest P allowed")
      ("memory-budget", po::value<std::string>()->default_value("auto"),
       "memory one method may use on one batch, in GiB: auto (80% of the device's memory: RAM on the CPU, the "
       "GPU's on CUDA) | a number. A method that would need more is skipped for that checkpoint, its reason in "
       "the result file's method_status")
      ("max-output-units", po::value<int64_t>()->default_value(1024),
       "most backward passes per batch a method may make, one per output unit of a sample: kfac-exact (C classes) "
       "and ng-dense (all outputs) are skipped above it; also the largest output for the output-unit JVP route")
      ("kfac-approx", po::value<std::string>()->default_value("expand"),
       "Kronecker methods with tokens/pixels: expand (tokens as extra samples) | reduce")
      ("shampoo-epsilon", po::value<double>()->default_value(1e-12),
       "Shampoo family: ε relative to the largest eigenvalue of each factor")
      ("local-layers", po::value<std::string>()->default_value(""),
       "fishy-classifier: the layers that sample locally, comma-separated layer names (default: the final fully "
       "connected layers, the Linear layers after the last Conv2d); the others inherit the nearest downstream "
       "sampling layer's draws");
  po::options_description run("Run");
  run.add_options()
      ("out", po::value<std::string>(), "result file (HDF5), required; partial results go to OUT.parts/ until done")
      ("overwrite", po::bool_switch(), "replace an existing OUT (or OUT.parts) of a different configuration")
      ("dtype", po::value<std::string>()->default_value("auto"),
       "auto (float64 on CPU, float32 on CUDA) | float32 | float64; Gram solves are always float64")
      ("device", po::value<std::string>()->default_value("auto"),
       "auto (the first CUDA device when one is visible, else the CPU) | cpu | cuda | cuda:N")
      ("shard", po::value<std::string>()->default_value(""),
       "I/N: compute shard I of N (1-based) into OUT.shard-I-of-N.h5; default from SLURM_ARRAY_TASK_ID/COUNT")
      ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0 = LibTorch's default)")
      ("per-sample-engine", po::value<std::string>()->default_value("auto"),
       "per-sample gradients: auto | taps (layer inputs × output gradients) | loop (one pass per sample)")
      ("jvp-engine", po::value<std::string>()->default_value("auto"),
       "Jacobian-vector products for the indicator: auto (layer taps and output-unit gradients when affordable; "
       "else forward mode, checked once per checkpoint against double backward and replaced by it, with a note, where "
       "the model has an operation without a forward-mode formula, e.g. the fused kernel of a frozen "
       "nn.TransformerEncoderLayer in eval mode) | forward (dual tensors, one pass per direction) | double-backward "
       "(two backward passes per direction; works for every model) | taps")
      ("block-products", po::value<std::string>()->default_value("auto"),
       "J_z d of the Kronecker/Shampoo directions (layer blocks in a basis): auto (the cheaper by operation count) | "
       "rotated (layer taps rotated into each basis once) | direct (each block back-rotated)")
      ("quiet", po::bool_switch(), "no progress on stderr");
  add_read_timeout_option(run);
  po::options_description all;
  all.add(what).add(batches).add(methods).add(run);
  po::positional_options_description positional;
  po::variables_map vm;
  if (!parse("eval", "--checkpoints FILE... | --series DIR --out RESULTS.h5 [OPTIONS]", all, positional, args, vm)) {
    return kExitOk;
  }
  apply_read_timeout(vm);

  SweepOptions o;
  if (vm.count("checkpoints") && vm.count("series")) throw InputError("give either --checkpoints or --series, not both");
  if (vm.count("checkpoints")) o.checkpoints = series_from_files(vm["checkpoints"].as<std::vector<std::string>>());
  if (vm.count("series")) o.checkpoints = load_series(vm["series"].as<std::string>());
  if (!vm.count("out")) throw InputError("--out RESULTS.h5 is required");
  o.data = vm["data"].as<std::string>();
  o.params = vm["params"].as<std::string>();
  o.loss = vm["loss"].as<std::string>();
  o.batch_size = vm["batch-size"].as<int64_t>();
  o.num_batches = vm["num-batches"].as<int64_t>();
  const auto sampling = vm["batch-sampling"].as<std::string>();
  if (sampling != "sequential" && sampling != "random") {
    throw InputError(fmt::format("--batch-sampling '{}' must be sequential or random", sampling));
  }
  o.sampling = sampling == "random" ? BatchSampling::kRandom : BatchSampling::kSequential;
  o.seed = vm["seed"].as<uint64_t>();
  o.methods = split_list(vm["methods"].as<std::string>());
  o.dampings = vm.count("damping") ? solvers::parse_damping_list(vm["damping"].as<std::string>())
                                   : solvers::log_grid(vm["damping-grid"].as<std::string>());
  o.damping_mode = solvers::parse_damping_mode(vm["damping-mode"].as<std::string>());
  o.damping_reference = solvers::parse_damping_reference(vm["damping-reference"].as<std::string>());
  o.mc_samples = vm["mc-samples"].as<int64_t>();
  o.dedup_cosine = vm["dedup-cosine"].as<double>();
  if (o.dedup_cosine < 0 || o.dedup_cosine > 1) throw InputError("--dedup-cosine must be in [0, 1]");
  o.method_options.singular = solvers::parse_singular_policy(vm["singular"].as<std::string>());
  o.ng_reference = vm["ng-reference"].as<std::string>();
  if (o.ng_reference != "auto" && o.ng_reference != "none" && o.ng_reference != "ng-dense" && o.ng_reference != "ng-cg") {
    throw InputError(fmt::format("--ng-reference '{}' must be auto, none, ng-dense or ng-cg", o.ng_reference));
  }
  o.method_options.cg.max_iter = vm["cg-max-iter"].as<int64_t>();
  o.method_options.cg.rtol = vm["cg-rtol"].as<double>();
  if (o.method_options.cg.max_iter < 1 || !(o.method_options.cg.rtol > 0)) {
    throw InputError("--cg-max-iter must be ≥ 1 and --cg-rtol > 0");
  }
  o.method_options.dense_max_params = vm["dense-max-params"].as<int64_t>();
  o.memory_budget = vm["memory-budget"].as<std::string>();
  o.max_output_units = vm["max-output-units"].as<int64_t>();
  const auto kfac = vm["kfac-approx"].as<std::string>();
  if (kfac != "expand" && kfac != "reduce") throw InputError("--kfac-approx must be expand or reduce");
  o.method_options.kfac_reduce = kfac == "reduce";
  o.method_options.shampoo_epsilon = vm["shampoo-epsilon"].as<double>();
  o.method_options.local_layers = split_list(vm["local-layers"].as<std::string>());
  o.dtype = vm["dtype"].as<std::string>();
  o.device = vm["device"].as<std::string>();
  o.engines.per_sample = mvp::parse_per_sample_engine(vm["per-sample-engine"].as<std::string>());
  o.engines.jvp = mvp::parse_jvp_engine(vm["jvp-engine"].as<std::string>());
  {
    const auto how = vm["block-products"].as<std::string>();
    if (how == "auto") o.block_products = solvers::BlockProducts::kAuto;
    else if (how == "rotated") o.block_products = solvers::BlockProducts::kRotated;
    else if (how == "direct") o.block_products = solvers::BlockProducts::kDirect;
    else throw InputError(fmt::format("--block-products must be auto, rotated or direct, got '{}'", how));
  }
  o.overwrite = vm["overwrite"].as<bool>();
  o.progress = !vm["quiet"].as<bool>();
  std::tie(o.shard_index, o.shard_count) = resolve_shard(vm["shard"].as<std::string>());
  o.out = shard_file_name(vm["out"].as<std::string>(), o.shard_index, o.shard_count);
  if (vm["threads"].as<int>() > 0) torch::set_num_threads(vm["threads"].as<int>());
  o.metadata["command_line"] = command_line();
  o.metadata["config"] = effective_config(vm);

  const auto summary = run_sweep(o);
  std::cerr << fmt::format(
      "fisheval eval: {} units ({} computed, {} resumed from disk) in {}; {} checkpoint(s) failed, {} warning(s)\n"
      "results: {}\n",
      summary.units_total, summary.units_computed, summary.units_imported, format_duration(summary.seconds),
      summary.checkpoints_failed, summary.warnings, summary.out);
  if (summary.checkpoints_failed > 0 && summary.checkpoints_failed >= static_cast<int64_t>(o.checkpoints.size())) {
    // Every checkpoint was refused (each for bad input: unreadable, wrong shapes, ...).
    std::cerr << fmt::format("fisheval eval: error: every checkpoint failed ({}); see the warnings above\n",
                             summary.checkpoints_failed);
    return kExitBadInput;
  }
  if (summary.checkpoints_failed > 0) return kExitPartial;
  return kExitOk;
}

}  // namespace fisheval::cli
