// The trainer: trains a built-in model on a dataset with any optimiser of
// eval/optimisers.h and writes the checkpoint series that `fisheval eval` scores.
//
// OUT/ receives
//   step_NNNNNNN.pt   native checkpoints (step 0 = the initialisation is a stage)
//   manifest.csv      path, step, epoch, train_loss, train_accuracy, test_loss,
//                     test_accuracy (and valid_* with a validation split), seconds
//   curve.csv         one row per step: step, epoch, lr, loss and accuracy of the batch
//                     before the step, update norm, effective damping, solve status
//   pretrained.pt     vit-lora only: the ViT pre-trained on part of the task
//
// Learning-rate schedules: constant, or linear decay η_t = η (1 − t/T) over the T steps
// of the run. The paper trains EF and SF with normalised updates (u = d/‖d‖) and the
// linear decay, so η is the norm of the first update; that is the default for ef and
// sf here ("auto"), while sgd, adamw and ief default to raw updates at a constant η.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "checkpoints/native_model.h"
#include "checkpoints/series.h"
#include "eval/optimisers.h"

namespace fisheval {

struct TrainOptions {
  ModelConfig model;
  std::string init;                           // start from this native checkpoint (its config wins)
  std::string data = "auto";       // training data (open_dataset spec); auto: fashion-mnist:train,
                                   // fashion-mnist-pixels:train for the autoencoder
  std::string test_data = "auto";  // "" = no test evaluation; auto: the matching test split
  int64_t valid_samples = 0;    // the last K training samples are held out for validation
  int64_t eval_samples = 10000;  // train loss/accuracy of a stage on the first K training samples (0 = all)
  OptimiserOptions optimiser;
  double lr = -1;                 // < 0: the optimiser's default (default_lr)
  std::string schedule = "auto";  // auto | constant | linear
  std::string normalise = "auto";  // auto | on | off
  int64_t epochs = 1;
  int64_t max_steps = 0;  // > 0: stop after this many steps
  int64_t batch_size = 32;
  uint64_t seed = 0;            // initialisation, shuffling, sampled labels
  int64_t save_every = 0;       // save a stage every this many steps
  double save_epochs = 0;       // and/or every this many epochs (fractions allowed); neither: every epoch
  std::string out;
  bool overwrite = false;
  std::string dtype = "float32";  // float32 | float64
  std::string device = "auto";  // auto (CUDA when visible, else CPU) | cpu | cuda | cuda:N
  bool progress = true;
  // vit-lora: the backbone is first pre-trained (all parameters, AdamW) on the training
  // samples of classes 0 … pretrain_classes−1 with a head of that many classes, unless
  // `pretrained` names such a checkpoint (model "vit") to reuse.
  std::string pretrained;
  int64_t pretrain_classes = 5;
  int64_t pretrain_epochs = 2;
  double pretrain_lr = 1e-3;
  std::map<std::string, std::string> notes;  // recorded in every checkpoint (command line, …)
};

struct TrainSummary {
  std::vector<CheckpointEntry> stages;
  std::string manifest, curve;
  int64_t steps = 0;
  double lr = 0;
  std::string schedule;
  bool normalise = false;
  bool diverged = false;
  std::string diverged_reason;
  std::map<std::string, double> final_metrics;  // of the last stage
  double seconds = 0;
};

// The default learning rate of an optimiser (docs/TRAINING.md: from a small search on the
// default MLP, see docs/RESULTS.md "Optimiser comparison").
double default_lr(const std::string& optimiser);

TrainSummary train(const TrainOptions& options);

}  // namespace fisheval
