#include "checkpoints/hdf5_data_file.h"

#include <H5Cpp.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "checkpoints/crash_guard.h"
#include "base/error.h"
#include "base/limits.h"

namespace fisheval {
namespace {

HostArray::Type host_type(const H5::DataType& t, H5T_class_t cls, const std::string& where) {
  if (cls == H5T_FLOAT) return t.getSize() == 8 ? HostArray::Type::kFloat64 : HostArray::Type::kFloat32;
  if (cls == H5T_INTEGER) return HostArray::Type::kInt64;
  throw InputError(fmt::format("{}: only integer or floating-point data is supported", where));
}

HostArray read_dataset(const H5::H5File& file, const std::string& name, const std::string& path) {
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
  HostArray a;
  a.shape.assign(dims.begin(), dims.end());
  const auto where = fmt::format("{}:{}", path, name);
  a.type = host_type(ds.getDataType(), ds.getTypeClass(), where);
  // Bytes the dataset declares, refused past the load limit (a malformed file can declare anything).
  uint64_t bytes = a.element_size();
  for (auto d : dims) bytes = d == 0 || bytes <= max_load_bytes() / d ? bytes * d : max_load_bytes() + 1;
  if (bytes > max_load_bytes()) {
    throw InputError(fmt::format("{}: dataset of shape {} does not fit in memory (limit {} bytes, see "
                                 "FISHEVAL_MAX_LOAD_BYTES)",
                                 where, fmt::join(a.shape, "x"), max_load_bytes()));
  }
  a.bytes = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(bytes));
  if (bytes == 0) return a;
  const H5::PredType& mem = a.type == HostArray::Type::kFloat64   ? H5::PredType::NATIVE_DOUBLE
                            : a.type == HostArray::Type::kFloat32 ? H5::PredType::NATIVE_FLOAT
                                                                  : H5::PredType::NATIVE_INT64;
  ds.read(a.bytes->data(), mem);
  return a;
}

// The names of the input datasets: the root attribute `input_names` (comma-separated, in
// the order of the model's forward), else the one dataset `inputs`.
std::vector<std::string> input_names(const H5::H5File& file, const std::string& path) {
  if (!file.attrExists("input_names")) return {"inputs"};
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

// The inputs and `targets` as they are in the file: HDF5 reads only (safe in a forked child).
DataArrays read_arrays(const std::string& path) {
  try {
    H5::Exception::dontPrint();
    H5::H5File file(path, H5F_ACC_RDONLY);
    DataArrays d;
    d.input_names = input_names(file, path);
    for (const auto& name : d.input_names) d.inputs.push_back(read_dataset(file, name, path));
    d.targets = read_dataset(file, "targets", path);
    return d;
  } catch (const H5::Exception& e) {
    throw InputError(fmt::format("cannot read data file '{}': {}", path, e.getDetailMsg()));
  }
}

template <class T>
bool all_finite(const std::vector<uint8_t>& bytes) {
  const size_t n = bytes.size() / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace

DataArrays read_data_file(const std::string& path) {
  refuse_if_reading_fails({path, fmt::format("data file '{}'", path)}, [&] { (void)read_arrays(path); });
  auto d = read_arrays(path);
  const auto& tg = d.targets;
  std::vector<std::string> described;
  for (size_t i = 0; i < d.inputs.size(); ++i) {
    described.push_back(fmt::format("{} {}", d.input_names[i], fmt::join(d.inputs[i].shape, "x")));
  }
  for (const auto& in : d.inputs) {
    if (in.shape.empty() || tg.shape.empty() || in.shape[0] != tg.shape[0]) {
      throw InputError(fmt::format("data file '{}': inputs ({}) and targets {} must have the same first "
                                   "dimension (number of samples)",
                                   path, fmt::join(described, ", "), fmt::join(tg.shape, "x")));
    }
  }
  if (tg.shape[0] == 0) throw InputError(fmt::format("data file '{}' has no samples", path));
  for (size_t i = 0; i < d.inputs.size(); ++i) {
    const auto& in = d.inputs[i];
    const bool finite = in.type == HostArray::Type::kFloat32   ? all_finite<float>(*in.bytes)
                        : in.type == HostArray::Type::kFloat64 ? all_finite<double>(*in.bytes)
                                                               : true;
    if (!finite) {
      throw InputError(fmt::format("data file '{}': input '{}' contains NaN or infinite values", path, d.input_names[i]));
    }
  }
  return d;
}

}  // namespace fisheval
