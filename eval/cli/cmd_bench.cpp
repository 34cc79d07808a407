// fisheval bench: each stage of an evaluation timed as a multiple of one forward+backward.
#include <fmt/format.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <unistd.h>

#include "base/atomic_file.h"
#include "base/error.h"
#include "checkpoints/native_model.h"
#include "eval/bench.h"
#include "eval/cli/cli.h"

namespace fisheval::cli {

int run_bench(const std::vector<std::string>& args) {
  po::options_description options("Options", 110);
  options.add_options()
      ("checkpoint", po::value<std::string>(), "checkpoint to time (TorchScript or native)")
      ("model", po::value<std::string>(), "or a freshly initialised built-in model with its default configuration "
       "(mlp | cnn | vit-lora; seed 0; vit-lora: adapters and head trainable), saved as a native checkpoint first")
      ("save-model", po::value<std::string>(), "with --model: keep that native checkpoint at this path (e.g. for "
       "scripts/native_to_torchscript.py and the PyTorch baseline)")
      ("data", po::value<std::string>()->default_value("fashion-mnist:test"), "data (HDF5 file or fashion-mnist[:split]); the first batch is used")
      ("params", po::value<std::string>()->default_value(""), "parameter globs (default: saved requires_grad)")
      ("loss", po::value<std::string>()->default_value("auto"),
       "auto | cross-entropy | squared-error | binary-cross-entropy (auto: the checkpoint's loss, else from the "
       "targets' dtype)")
      ("batch-size", po::value<int64_t>()->default_value(32), "samples per batch N")
      ("methods", po::value<std::string>()->default_value(""), "comma-separated methods (default: every registered method but the exact natural-gradient references)")
      ("dampings", po::value<int64_t>()->default_value(10), "damping values per method (log grid 1e-6..1, relative)")
      ("repeats", po::value<int64_t>()->default_value(5), "timed repetitions per stage (the median is reported)")
      ("dtype", po::value<std::string>()->default_value("auto"), "auto | float32 | float64")
      ("device", po::value<std::string>()->default_value("auto"),
       "auto (the first CUDA device when one is visible, else the CPU) | cpu | cuda | cuda:N")
      ("threads", po::value<int>()->default_value(0), "CPU threads (0 = LibTorch's default)")
      ("json", po::value<std::string>(), "also write the figures as JSON to this file");
  po::variables_map vm;
  if (!parse("bench", "--checkpoint FILE | --model NAME [OPTIONS]", options, {}, args, vm)) return kExitOk;
  if (vm.count("checkpoint") == vm.count("model")) throw InputError("bench: give one of --checkpoint FILE and --model NAME");
  if (vm["threads"].as<int>() > 0) torch::set_num_threads(vm["threads"].as<int>());
  BenchOptions o;
  // The built-in model's checkpoint, removed when this function returns or throws.
  struct Temporary {
    std::string path;
    ~Temporary() {
      std::error_code ec;
      if (!path.empty()) std::filesystem::remove(path, ec);
    }
  } temporary;
  if (vm.count("model")) {
    ModelConfig config;
    config.model = vm["model"].as<std::string>();
    validate_config(config);
    const auto model = make_builtin_model(config, /*seed=*/0);
    if (vm.count("save-model")) {
      o.checkpoint = vm["save-model"].as<std::string>();
    } else {
      o.checkpoint = temporary.path =
          (std::filesystem::temp_directory_path() / fmt::format("fisheval-bench-{}-{}.pt", config.model, ::getpid()))
              .string();
    }
    save_native_checkpoint(*model, o.checkpoint, {});
  } else {
    o.checkpoint = vm["checkpoint"].as<std::string>();
  }
  o.data = vm["data"].as<std::string>();
  o.params = vm["params"].as<std::string>();
  o.loss = vm["loss"].as<std::string>();
  o.batch_size = vm["batch-size"].as<int64_t>();
  const auto methods = vm["methods"].as<std::string>();
  std::string item;
  for (char ch : methods + ",") {
    if (ch == ',') {
      if (!item.empty()) o.methods.push_back(item);
      item.clear();
    } else {
      item += ch;
    }
  }
  o.dampings = vm["dampings"].as<int64_t>();
  o.repeats = vm["repeats"].as<int64_t>();
  o.dtype = vm["dtype"].as<std::string>();
  o.device = vm["device"].as<std::string>();
  const auto report = run_bench(o);
  std::cout << report.table();
  if (vm.count("json")) write_file_atomically(vm["json"].as<std::string>(), report.json());
  return kExitOk;
}

}  // namespace fisheval::cli
