// fisheval train: train a built-in model (mlp, autoencoder, cnn, vit-lora) with sgd, adamw,
// the exact ef/sf/ief optimisers or the layer-structured kfac/shampoo/fim-shampoo/fishy ones
// and write a checkpoint series (eval/trainer.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <iostream>

#include "base/error.h"
#include "eval/cli/cli.h"
#include "eval/cli/train_options.h"
#include "eval/progress.h"
#include "eval/trainer.h"

namespace fisheval::cli {

int run_train(const std::vector<std::string>& args) {
  po::options_description model = model_options();
  po::options_description data("Data");
  data.add_options()
      ("data", po::value<std::string>()->default_value("auto"),
       "training data: fashion-mnist:train[:COUNT] (the first COUNT samples), fashion-mnist-pixels:train[:COUNT] "
       "(pixel intensities as targets) or an HDF5 file; auto: fashion-mnist:train, fashion-mnist-pixels:train for "
       "the autoencoder")
      ("test-data", po::value<std::string>()->default_value("auto"),
       "test data evaluated at every stage ('' = none; auto: the test split of the auto training data)")
      ("valid-samples", po::value<int64_t>()->default_value(0),
       "hold out the last K training samples for validation (valid_loss, valid_accuracy in the manifest)")
      ("eval-samples", po::value<int64_t>()->default_value(10000),
       "train loss/accuracy of each stage on the first K training samples (0 = all)");
  po::options_description optim = optimiser_options();
  po::options_description run("Run");
  run.add_options()
      ("epochs", po::value<int64_t>()->default_value(1), "passes over the training data")
      ("max-steps", po::value<int64_t>()->default_value(0), "stop after this many steps (0 = no limit)")
      ("batch-size", po::value<int64_t>()->default_value(32), "samples per step (the paper: 32)")
      ("seed", po::value<uint64_t>()->default_value(0), "seed of initialisation, shuffling and sampled labels")
      ("save-every", po::value<int64_t>()->default_value(0), "save a stage every STEPS steps")
      ("save-epochs", po::value<double>()->default_value(0.0),
       "save a stage every E epochs (fractions allowed); with neither flag: every epoch. Step 0 and the last step "
       "are always saved")
      ("out", po::value<std::string>(), "output folder (checkpoints, manifest.csv, curve.csv), required")
      ("overwrite", po::bool_switch(), "replace a training run already in OUT")
      ("dtype", po::value<std::string>()->default_value("float32"), "float32 | float64")
      ("device", po::value<std::string>()->default_value("auto"),
       "auto (the first CUDA device when one is visible, else the CPU) | cpu | cuda | cuda:N")
      ("threads", po::value<int>()->default_value(0), "CPU threads for LibTorch (0 = LibTorch's default)")
      ("quiet", po::bool_switch(), "no progress on stderr");
  po::options_description all;
  all.add(model).add(data).add(optim).add(run);
  po::positional_options_description positional;
  po::variables_map vm;
  if (!parse("train", "--model mlp|autoencoder|cnn|vit-lora --optimizer sgd|adamw|ef|sf|ief|kfac|shampoo|fim-shampoo|fishy|"
             "fishy-classifier --out DIR [OPTIONS]", all, positional,
             args, vm)) {
    return kExitOk;
  }
  if (!vm.count("out")) throw InputError("--out DIR is required");
  TrainOptions o;
  apply_model_options(vm, o);
  apply_optimiser_options(vm, o);
  o.data = vm["data"].as<std::string>();
  o.test_data = vm["test-data"].as<std::string>();
  o.valid_samples = vm["valid-samples"].as<int64_t>();
  o.eval_samples = vm["eval-samples"].as<int64_t>();
  o.epochs = vm["epochs"].as<int64_t>();
  o.max_steps = vm["max-steps"].as<int64_t>();
  o.batch_size = vm["batch-size"].as<int64_t>();
  o.seed = vm["seed"].as<uint64_t>();
  o.save_every = vm["save-every"].as<int64_t>();
  o.save_epochs = vm["save-epochs"].as<double>();
  o.out = vm["out"].as<std::string>();
  o.overwrite = vm["overwrite"].as<bool>();
  o.dtype = vm["dtype"].as<std::string>();
  o.device = vm["device"].as<std::string>();
  o.progress = !vm["quiet"].as<bool>();
  if (vm["threads"].as<int>() > 0) torch::set_num_threads(vm["threads"].as<int>());
  o.notes["command_line"] = command_line();

  const auto summary = train(o);
  std::cerr << fmt::format("fisheval train: {} steps in {}; {} stages\n", summary.steps,
                           format_duration(summary.seconds), summary.stages.size());
  std::cout << fmt::format("series: {}\ncurve: {}\n", summary.manifest, summary.curve);
  for (const auto& [k, v] : summary.final_metrics) std::cout << fmt::format("final {}: {:.6g}\n", k, v);
  if (summary.diverged) {
    std::cerr << "fisheval train: error: training diverged at " << summary.diverged_reason << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace fisheval::cli
