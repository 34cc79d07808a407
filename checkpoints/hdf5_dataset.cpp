// HDF5 batch files (docs/FORMAT.md): the input datasets (`inputs`, or those named by the
// root attribute `input_names`) [M, ...] and `targets`.
#include <H5Cpp.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <numeric>
#include <random>
#include <tuple>

#include "checkpoints/crash_guard.h"
#include "checkpoints/dataset.h"
#include "checkpoints/error.h"
#include "checkpoints/limits.h"

namespace fisheval {
namespace {

at::ScalarType torch_type(const H5::DataType& t, H5T_class_t cls, const std::string& where) {
  if (cls == H5T_FLOAT) return t.getSize() == 8 ? at::kDouble : at::kFloat;
  if (cls == H5T_INTEGER) return at::kLong;
  throw InputError(fmt::format("{}: only integer or floating-point data is supported", where));
}

at::Tensor read_dataset(const H5::H5File& file, const std::string& name, const std::string& path) {
  if (!file.nameExists(name)) {
    throw InputError(fmt::format("data file '{}' has no dataset '{}' (expected 'targets' and the inputs: 'inputs', or "
                                 "the datasets named by the root attribute input_names)",
                                 path, name));
  }
  H5::DataSet ds = file.openDataSet(name);
  H5::DataSpace space = ds.getSpace();
  const int rank = space.getSimpleExtentNdims();
  std::vector<hsize_t> dims(rank);
  space.getSimpleExtentDims(dims.data());
  std::vector<int64_t> shape(dims.begin(), dims.end());
  const auto where = fmt::format("{}:{}", path, name);
  const auto type = torch_type(ds.getDataType(), ds.getTypeClass(), where);
  // Bytes the dataset declares, refused past the load limit (a malformed file can declare anything).
  uint64_t bytes = type == at::kFloat ? 4 : 8;
  for (auto d : dims) bytes = d == 0 || bytes <= max_load_bytes() / d ? bytes * d : max_load_bytes() + 1;
  if (bytes > max_load_bytes()) {
    throw InputError(fmt::format("{}: dataset of shape {} does not fit in memory (limit {} bytes, see "
                                 "FISHEVAL_MAX_LOAD_BYTES)",
                                 where, fmt::join(shape, "x"), max_load_bytes()));
  }
  auto tensor = torch::empty(shape, torch::TensorOptions().dtype(type));
  if (tensor.numel() == 0) return tensor;
  const H5::PredType& mem = type == at::kDouble  ? H5::PredType::NATIVE_DOUBLE
                            : type == at::kFloat ? H5::PredType::NATIVE_FLOAT
                                                 : H5::PredType::NATIVE_INT64;
  ds.read(tensor.data_ptr(), mem);
  return tensor;
}

// The names of the input datasets: the root attribute `input_names` (comma-separated, in
// the order of the model's forward), else the one dataset `inputs`.
std::vector<std::string> input_names(const H5::H5File& file, const std::string& path) {
  if (!file.attrExists("input_names")) return {Inputs::kSingle};
  H5::Attribute attr = file.openAttribute("input_names");
  if (attr.getTypeClass() != H5T_STRING || attr.getSpace().getSimpleExtentNpoints() != 1) {
    throw InputError(fmt::format("data file '{}': attribute input_names must be one string", path));
  }
  std::string text;
  attr.read(attr.getStrType(), text);
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    if (end > start) names.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (names.empty()) throw InputError(fmt::format("data file '{}': attribute input_names names no dataset", path));
  return names;
}

// The inputs and `targets` as they are in the file: HDF5 reads and empty tensors only (no
// tensor arithmetic, which may start OpenMP threads: unsafe in a forked child).
std::pair<Inputs, at::Tensor> read_inputs_and_targets(const std::string& path) {
  try {
    H5::Exception::dontPrint();
    H5::H5File file(path, H5F_ACC_RDONLY);
    const auto names = input_names(file, path);
    std::vector<at::Tensor> values;
    for (const auto& name : names) {
      values.push_back(read_dataset(file, name, path));
      if (values.back().dim() < 1 || values.back().size(0) != values[0].size(0)) {
        throw InputError(fmt::format("data file '{}': input datasets {} must have the same first dimension (number "
                                     "of samples)",
                                     path, fmt::join(names, ", ")));
      }
    }
    return {Inputs(names, values), read_dataset(file, "targets", path)};
  } catch (const H5::Exception& e) {
    throw InputError(fmt::format("cannot read data file '{}': {}", path, e.getDetailMsg()));
  }
}

class Hdf5Dataset final : public Dataset {
 public:
  explicit Hdf5Dataset(const std::string& path) : path_(path) {
    refuse_if_reading_crashes(fmt::format("data file '{}'", path), [&] { (void)read_inputs_and_targets(path); });
    std::tie(inputs_, targets_) = read_inputs_and_targets(path);
    if (targets_.dim() < 1 || inputs_.batch_size() != targets_.size(0)) {
      throw InputError(fmt::format("data file '{}': inputs ({}) and targets {} must have the same first "
                                   "dimension (number of samples)",
                                   path, inputs_.describe(), fmt::join(targets_.sizes(), "x")));
    }
    if (size() == 0) throw InputError(fmt::format("data file '{}' has no samples", path));
    for (size_t i = 0; i < inputs_.count(); ++i) {
      const auto& v = inputs_.values()[i];
      if (v.is_floating_point() && !torch::isfinite(v).all().item<bool>()) {
        throw InputError(fmt::format("data file '{}': input '{}' contains NaN or infinite values", path,
                                     inputs_.names()[i]));
      }
    }
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
