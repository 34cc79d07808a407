#include "reports/h5.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <limits>
#include <string_view>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/limits.h"

namespace fisheval::h5 {
namespace {

std::vector<hsize_t> dims_of(const std::vector<int64_t>& shape) { return {shape.begin(), shape.end()}; }

H5::DataSpace space_of(const std::vector<int64_t>& shape) {
  if (shape.empty()) return H5::DataSpace(H5S_SCALAR);
  const auto dims = dims_of(shape);
  return H5::DataSpace(static_cast<int>(dims.size()), dims.data());
}

H5::StrType vlen_string() { return H5::StrType(H5::PredType::C_S1, H5T_VARIABLE); }

struct CheckpointRecord {
  const char* path;
  int64_t step;
};

H5::CompType checkpoint_type() {
  H5::CompType t(sizeof(CheckpointRecord));
  t.insertMember("path", HOFFSET(CheckpointRecord, path), vlen_string());
  t.insertMember("step", HOFFSET(CheckpointRecord, step), H5::PredType::NATIVE_INT64);
  return t;
}

// Length of a 1-d dataset; anything else is refused (a string list or the checkpoint axis).
// The length of a 1-d dataset whose entries are read into element_size bytes each: at most
// 2²⁴ entries and the load limit in bytes (base/limits.h), checked before allocating.
hsize_t vector_length(const H5::H5File& file, const std::string& name, const H5::DataSpace& space,
                      size_t element_size) {
  if (space.getSimpleExtentNdims() != 1) {
    throw InputError(fmt::format("'{}': dataset '{}' must be 1-d", file.getFileName(), name));
  }
  hsize_t n = 0;
  space.getSimpleExtentDims(&n);
  if (n > (hsize_t(1) << 24)) {
    throw InputError(fmt::format("'{}': dataset '{}' declares {} entries", file.getFileName(), name, n));
  }
  if (n * element_size > max_load_bytes()) {
    throw InputError(fmt::format("'{}': dataset '{}' declares {} entries ({} bytes), more than the load limit of {} "
                                 "bytes (FISHEVAL_MAX_LOAD_BYTES)",
                                 file.getFileName(), name, n, n * element_size, max_load_bytes()));
  }
  return n;
}

}  // namespace

uint64_t checked_bytes(const std::vector<int64_t>& shape, uint64_t element_size) {
  uint64_t bytes = element_size;
  for (auto s : shape) {
    if (s < 0) return std::numeric_limits<uint64_t>::max();
    if (s != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(s)) {
      return std::numeric_limits<uint64_t>::max();
    }
    bytes *= static_cast<uint64_t>(s);
  }
  return bytes;
}

int64_t Array::size() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

H5::H5File open_read(const std::string& path) {
  H5::Exception::dontPrint();
  try {
    return H5::H5File(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    throw InputError(fmt::format("cannot open HDF5 file '{}': {}", path, e.getDetailMsg()));
  }
}

H5::H5File create_in_memory(const std::string& path) {
  H5::Exception::dontPrint();
  try {
    // In memory (core driver, no backing store): HDF5 never writes to the disk itself, so a
    // full disk or a file-size limit is met by save() with a clear errno, not inside HDF5
    // (whose H5Fclose after a failed write crashes in 1.10).
    H5::FileAccPropList access;
    access.setCore(1 << 20, /*backing_store=*/false);
    return H5::H5File(path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, access);
  } catch (const H5::Exception& e) {
    throw Error(fmt::format("cannot create HDF5 file '{}': {}", path, e.getDetailMsg()));
  }
}

namespace {

// The bytes of an in-memory HDF5 file (what the disk file would hold).
std::vector<char> file_image(H5::H5File& file, const std::string& path) {
  file.flush(H5F_SCOPE_GLOBAL);
  const ssize_t size = H5Fget_file_image(file.getId(), nullptr, 0);
  if (size < 0) throw Error(fmt::format("cannot serialise HDF5 file '{}'", path));
  std::vector<char> image(static_cast<size_t>(size));
  if (H5Fget_file_image(file.getId(), image.data(), image.size()) != size) {
    throw Error(fmt::format("cannot serialise HDF5 file '{}'", path));
  }
  return image;
}

}  // namespace

void save(H5::H5File& file, const std::string& path) {
  const auto image = file_image(file, path);
  write_file_atomically(path, std::string_view(image.data(), image.size()));
}

void write_file(const std::string& path, const std::function<void(H5::H5File&)>& fill) {
  std::vector<char> image;
  const auto fail = [&](const std::string& why) { throw_write_failure(path, why); };
  try {
    auto file = create_in_memory(atomic_temp_path(path));
    fill(file);
    image = file_image(file, path);
    file.close();
  } catch (const H5::Exception& e) {
    fail(e.getDetailMsg());
  } catch (const Error& e) {
    fail(e.what());
  }
  write_file_atomically(path, std::string_view(image.data(), image.size()));
}

void write_array(H5::H5File& file, const std::string& name, const Array& a, bool as_int64,
                 const std::string& description) {
  const auto space = space_of(a.shape);
  if (as_int64) {
    std::vector<int64_t> ints(a.data.size());
    // −1 for what no int64 holds (NaN, ±inf, |v| ≥ 2⁶³: converting it would be undefined).
    const auto representable = [](double v) { return v >= -9223372036854775808.0 && v < 9223372036854775808.0; };
    for (size_t i = 0; i < ints.size(); ++i) ints[i] = representable(a.data[i]) ? static_cast<int64_t>(a.data[i]) : -1;
    auto ds = file.createDataSet(name, H5::PredType::NATIVE_INT64, space);
    if (!ints.empty()) ds.write(ints.data(), H5::PredType::NATIVE_INT64);
    if (!description.empty()) write_attr(ds, "description", description);
  } else {
    auto ds = file.createDataSet(name, H5::PredType::NATIVE_DOUBLE, space);
    if (!a.data.empty()) ds.write(a.data.data(), H5::PredType::NATIVE_DOUBLE);
    if (!description.empty()) write_attr(ds, "description", description);
  }
}

Array read_array(const H5::H5File& file, const std::string& name) {
  if (!file.nameExists(name)) {
    throw InputError(fmt::format("'{}' has no dataset '{}'", file.getFileName(), name));
  }
  auto ds = file.openDataSet(name);
  auto space = ds.getSpace();
  const int rank = space.getSimpleExtentNdims();
  std::vector<hsize_t> dims(rank);
  if (rank > 0) space.getSimpleExtentDims(dims.data());
  Array a;
  a.shape.assign(dims.begin(), dims.end());
  const auto bytes = checked_bytes(a.shape, sizeof(double));
  if (bytes > max_load_bytes()) {
    throw InputError(fmt::format("'{}': dataset '{}' of shape {} is too large ({} bytes; the limit is {}, see "
                                 "FISHEVAL_MAX_LOAD_BYTES)",
                                 file.getFileName(), name, fmt::join(a.shape, "x"), bytes, max_load_bytes()));
  }
  a.data.resize(a.size());
  if (!a.data.empty()) ds.read(a.data.data(), H5::PredType::NATIVE_DOUBLE);
  return a;
}

void write_strings(H5::H5File& file, const std::string& name, const std::vector<std::string>& values,
                   const std::string& description, const std::vector<int64_t>& shape) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  if (dims.empty()) dims = {values.size()};
  H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
  auto ds = file.createDataSet(name, vlen_string(), space);
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (!ptrs.empty()) ds.write(ptrs.data(), vlen_string());
  if (!description.empty()) write_attr(ds, "description", description);
}

std::vector<std::string> read_strings(const H5::H5File& file, const std::string& name,
                                      const std::vector<int64_t>& shape) {
  if (!file.nameExists(name)) throw InputError(fmt::format("'{}' has no dataset '{}'", file.getFileName(), name));
  auto ds = file.openDataSet(name);
  auto space = ds.getSpace();
  hsize_t n = 0;
  if (shape.empty()) {
    n = vector_length(file, name, space, sizeof(char*));
  } else {
    std::vector<hsize_t> dims(std::max(space.getSimpleExtentNdims(), 0));
    space.getSimpleExtentDims(dims.data());
    if (std::vector<int64_t>(dims.begin(), dims.end()) != shape) {
      throw InputError(fmt::format("'{}': dataset '{}' must have shape {}", file.getFileName(), name,
                                   fmt::join(shape, "x")));
    }
    n = space.getSimpleExtentNpoints();
    if (n * sizeof(char*) > max_load_bytes()) {
      throw InputError(fmt::format("'{}': dataset '{}' declares {} strings, more than the load limit of {} bytes",
                                   file.getFileName(), name, n, max_load_bytes()));
    }
  }
  std::vector<char*> ptrs(n, nullptr);
  if (n > 0) ds.read(ptrs.data(), vlen_string());
  std::vector<std::string> out;
  for (auto* p : ptrs) out.emplace_back(p ? p : "");
  if (n > 0) H5Dvlen_reclaim(vlen_string().getId(), space.getId(), H5P_DEFAULT, ptrs.data());
  return out;
}

void write_checkpoint_axis(H5::H5File& file, const std::vector<std::string>& paths, const std::vector<int64_t>& steps) {
  const hsize_t n = paths.size();
  H5::DataSpace space(1, &n);
  auto ds = file.createDataSet("checkpoint", checkpoint_type(), space);
  std::vector<CheckpointRecord> recs;
  for (size_t i = 0; i < paths.size(); ++i) recs.push_back({paths[i].c_str(), steps[i]});
  if (!recs.empty()) ds.write(recs.data(), checkpoint_type());
  write_attr(ds, "description", std::string("checkpoint axis: file path and training step"));
}

void read_checkpoint_axis(const H5::H5File& file, std::vector<std::string>& paths, std::vector<int64_t>& steps) {
  if (!file.nameExists("checkpoint")) {
    throw InputError(fmt::format("'{}' has no dataset 'checkpoint' (not a fisheval result file?)", file.getFileName()));
  }
  auto ds = file.openDataSet("checkpoint");
  auto space = ds.getSpace();
  const hsize_t n = vector_length(file, "checkpoint", space, sizeof(CheckpointRecord));
  std::vector<CheckpointRecord> recs(n);
  if (n > 0) ds.read(recs.data(), checkpoint_type());
  paths.clear();
  steps.clear();
  for (const auto& r : recs) {
    paths.emplace_back(r.path ? r.path : "");
    steps.push_back(r.step);
  }
  if (n > 0) H5Dvlen_reclaim(checkpoint_type().getId(), space.getId(), H5P_DEFAULT, recs.data());
}

void write_attr(H5::H5Object& obj, const std::string& name, const std::string& value) {
  auto t = vlen_string();
  auto attr = obj.createAttribute(name, t, H5::DataSpace(H5S_SCALAR));
  const char* p = value.c_str();
  attr.write(t, &p);
}

void write_attr(H5::H5Object& obj, const std::string& name, double value) {
  auto attr = obj.createAttribute(name, H5::PredType::NATIVE_DOUBLE, H5::DataSpace(H5S_SCALAR));
  attr.write(H5::PredType::NATIVE_DOUBLE, &value);
}

void write_attr(H5::H5Object& obj, const std::string& name, int64_t value) {
  auto attr = obj.createAttribute(name, H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR));
  attr.write(H5::PredType::NATIVE_INT64, &value);
}

bool has_attr(const H5::H5Object& obj, const std::string& name) { return obj.attrExists(name); }

std::string read_string_attr(const H5::H5Object& obj, const std::string& name) {
  if (!obj.attrExists(name)) return "";
  auto attr = obj.openAttribute(name);
  auto t = attr.getDataType();
  if (t.getClass() != H5T_STRING) return "";
  std::string value;
  attr.read(attr.getStrType(), value);
  return value;
}

}  // namespace fisheval::h5
