// Reading an HDF5 data file (docs/FORMAT.md: the input datasets [M, ...] — `inputs`, or
// those the root attribute `input_names` names — and `targets` [M, ...]) into plain memory,
// with HDF5 only (no LibTorch): what the crash guard's child reads first and the loader
// then wraps in tensors (dataset.h). Kept apart from LibTorch so that it can be fuzzed in
// a small process (tests/fuzz/fuzz_hdf5_data.cpp) whose guard forks cheaply.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fisheval {

struct HostArray {
  enum class Type { kFloat32, kFloat64, kInt64 };
  Type type = Type::kFloat32;
  std::vector<int64_t> shape;          // empty for a scalar dataset
  std::shared_ptr<std::vector<uint8_t>> bytes;  // product(shape) elements of element_size()
  size_t element_size() const { return type == Type::kFloat32 ? 4 : 8; }
};

struct DataArrays {
  std::vector<std::string> input_names;  // in the order of the model's forward
  std::vector<HostArray> inputs;         // one per name
  HostArray targets;
};

// Reads the datasets after a guarded first read (crash_guard.h), and checks what every
// data file must satisfy: the same first dimension (the number of samples), at least one
// sample, finite floating-point inputs; integer data is read as int64, floating data as
// float32 or float64. Throws InputError naming the file.
DataArrays read_data_file(const std::string& path);

}  // namespace fisheval
