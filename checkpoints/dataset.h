// Data for evaluation and training: a Dataset hands out batches by sample index;
// a BatchPlan fixes which samples form each evaluation batch.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "checkpoints/inputs.h"

namespace fisheval {

// One batch. inputs: one or several named tensors [N, ...] (floating point, or int64
// token ids and masks); targets int64 [N] or [N, T] (−100 = ignored token) for
// classification, floating [N, C...] for squared error.
struct Batch {
  Inputs inputs;
  at::Tensor targets;
  std::vector<int64_t> indices;  // sample indices in the dataset

  // On `device`, floating-point inputs and targets in `float_dtype` (token ids, masks and
  // class targets keep their integer type).
  Batch to(c10::Device device, c10::ScalarType float_dtype) const;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual std::string description() const = 0;
  virtual Batch get(const std::vector<int64_t>& indices) const = 0;
};

// HDF5 file with the input datasets — `inputs` [M, ...], or the datasets named in the root
// attribute `input_names` (e.g. input_ids, attention_mask), passed to the model by name —
// and `targets` [M] or [M, T] (int64) or [M, C] (float, squared error). Read whole into
// memory.
std::unique_ptr<Dataset> load_hdf5_dataset(const std::string& path);

// Opens data by name: "fashion-mnist[:train|:test[:COUNT]]" (Debian's dataset-fashion-mnist,
// class labels), "fashion-mnist-pixels[:train|:test[:COUNT]]" (the same images with their
// pixel intensities as targets, for the autoencoder), or an HDF5 file path.
std::unique_ptr<Dataset> open_dataset(const std::string& spec);

enum class BatchSampling { kSequential, kRandom };

// The sample indices of `num_batches` batches of `batch_size` samples:
// sequential takes consecutive samples from the start (wrapping around), random
// draws a seeded permutation of the data (refilled as needed). Batches never repeat a
// sample within themselves. The plan depends only on its arguments.
std::vector<std::vector<int64_t>> plan_batches(int64_t dataset_size, int64_t batch_size,
                                               int64_t num_batches, BatchSampling sampling,
                                               uint64_t seed);

// Training batches of one epoch: the samples of `pool` in a seeded random order that
// depends only on (seed, epoch) (own Fisher–Yates on a 64-bit Mersenne twister, the
// same on every platform), cut into consecutive batches of `batch_size`; a last,
// incomplete batch is dropped (exact Gram-matrix methods see a fixed N).
std::vector<std::vector<int64_t>> epoch_batches(const std::vector<int64_t>& pool, int64_t batch_size, uint64_t seed,
                                                int64_t epoch);

}  // namespace fisheval

namespace fisheval {

// An IDX file (the MNIST format), gzip-compressed or not; unsigned-byte data only.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
// Throws InputError for a missing, truncated or wrong-magic file.
IdxArray read_idx(const std::string& path);

// Fashion-MNIST from the IDX files of Debian's dataset-fashion-mnist package (or the
// folder in FISHEVAL_FASHION_MNIST_DIR). split: "train" (60000) or "test" (10000);
// `limit` > 0 keeps the first `limit` samples. Inputs [M, 1, 28, 28] float32,
// standardised with the training set's mean 0.2860 and std 0.3530; targets int64 0..9.
// Targets kPixels: the raw intensities byte/255 ∈ [0, 1], float32 [M, 784] (reconstruction
// with one Bernoulli per pixel), instead of the labels.
enum class FashionMnistTargets { kLabels, kPixels };
std::unique_ptr<Dataset> load_fashion_mnist(const std::string& split, int64_t limit = 0,
                                            FashionMnistTargets targets = FashionMnistTargets::kLabels);
std::string fashion_mnist_dir();

}  // namespace fisheval
