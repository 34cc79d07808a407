// HDF5 batch files (docs/FORMAT.md): the input datasets (`inputs`, or those named by the
// root attribute `input_names`) [M, ...] and `targets`.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <numeric>
#include <random>
#include <tuple>

#include "checkpoints/dataset.h"
#include "base/error.h"
#include "checkpoints/hdf5_data_file.h"

namespace fisheval {
namespace {

// A tensor on the bytes of `a` (shared, not copied).
at::Tensor as_tensor(const HostArray& a) {
  const auto type = a.type == HostArray::Type::kFloat32   ? at::kFloat
                    : a.type == HostArray::Type::kFloat64 ? at::kDouble
                                                          : at::kLong;
  if (a.bytes->empty()) return torch::empty(a.shape, torch::TensorOptions().dtype(type));
  auto owner = a.bytes;
  return torch::from_blob(owner->data(), a.shape, [owner](void*) mutable { owner.reset(); },
                          torch::TensorOptions().dtype(type));
}

class Hdf5Dataset final : public Dataset {
 public:
  explicit Hdf5Dataset(const std::string& path) : path_(path) {
    const auto arrays = read_data_file(path);  // guarded, and checked (hdf5_data_file.h)
    std::vector<at::Tensor> values;
    for (const auto& in : arrays.inputs) values.push_back(as_tensor(in));
    inputs_ = Inputs(arrays.input_names, values);
    targets_ = as_tensor(arrays.targets);
  }
  int64_t size() const override { return inputs_.batch_size(); }
  std::string description() const override {
    const auto shape = [](const at::Tensor& t) {
      return t.dim() <= 1 ? std::string("scalar") : fmt::format("{}", fmt::join(t.sizes().slice(1), "x"));
    };
    std::vector<std::string> inputs;
    for (size_t i = 0; i < inputs_.count(); ++i) {
      inputs.push_back(fmt::format("{} {}", inputs_.names()[i], shape(inputs_.values()[i])));
    }
    return fmt::format("{} ({} samples; per sample: {}, targets {})", path_, size(), fmt::join(inputs, ", "),
                       shape(targets_));
  }
  Batch get(const std::vector<int64_t>& indices) const override {
    auto idx = torch::tensor(indices, torch::kLong);
    return Batch{inputs_.index_select(0, idx), targets_.index_select(0, idx), indices};
  }

 private:
  std::string path_;
  Inputs inputs_;
  at::Tensor targets_;
};

}  // namespace

std::unique_ptr<Dataset> load_hdf5_dataset(const std::string& path) {
  return std::make_unique<Hdf5Dataset>(path);
}

std::vector<std::vector<int64_t>> plan_batches(int64_t dataset_size, int64_t batch_size,
                                               int64_t num_batches, BatchSampling sampling,
                                               uint64_t seed) {
  if (batch_size < 1 || num_batches < 1) throw InputError("batch size and number of batches must be positive");
  if (batch_size > dataset_size) {
    throw InputError(fmt::format("batch size {} exceeds the {} samples of the data", batch_size, dataset_size));
  }
  std::vector<std::vector<int64_t>> plan;
  std::vector<int64_t> order(dataset_size);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  if (sampling == BatchSampling::kRandom) std::shuffle(order.begin(), order.end(), rng);
  int64_t cursor = 0;
  for (int64_t b = 0; b < num_batches; ++b) {
    if (cursor + batch_size > dataset_size) {  // a batch never wraps inside itself
      cursor = 0;
      if (sampling == BatchSampling::kRandom) std::shuffle(order.begin(), order.end(), rng);
    }
    plan.emplace_back(order.begin() + cursor, order.begin() + cursor + batch_size);
    cursor += batch_size;
  }
  return plan;
}

}  // namespace fisheval
