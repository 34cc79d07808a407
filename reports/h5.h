// A thin layer over HDF5's C++ API for what fisheval writes and reads: n-d arrays of
// float64 / int64, string lists, the compound `checkpoint` axis and attributes.
#pragma once
#include <H5Cpp.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fisheval::h5 {

struct Array {  // row-major n-d array of doubles (integers stored exactly)
  std::vector<int64_t> shape;
  std::vector<double> data;
  int64_t size() const;
};

// Bytes of an array of `shape` (saturating at UINT64_MAX on overflow or a negative extent).
uint64_t checked_bytes(const std::vector<int64_t>& shape, uint64_t element_size);

// Opens / creates files, turning HDF5 failures into fisheval::Error with `path` named.
H5::H5File open_read(const std::string& path);
// An HDF5 file held in memory: nothing reaches `path` until save(file, path) writes it.
H5::H5File create_in_memory(const std::string& path);
// Writes the in-memory file to `path` atomically (base/atomic_file.h); Error with the
// system's reason on failure.
void save(H5::H5File& file, const std::string& path);
// Builds a file in memory with `fill` and writes it to `path` atomically. Error "cannot
// write 'PATH': <why>; <hint>" when HDF5, `fill` or the disk fails; the old file stays.
void write_file(const std::string& path, const std::function<void(H5::H5File&)>& fill);

void write_array(H5::H5File& file, const std::string& name, const Array& a, bool as_int64,
                 const std::string& description = "");
Array read_array(const H5::H5File& file, const std::string& name);

// A 1-d string dataset, or with `shape` an n-d one (values row-major).
void write_strings(H5::H5File& file, const std::string& name, const std::vector<std::string>& values,
                   const std::string& description = "", const std::vector<int64_t>& shape = {});
// A 1-d string dataset, or with `shape` one of exactly that shape (InputError otherwise).
std::vector<std::string> read_strings(const H5::H5File& file, const std::string& name,
                                      const std::vector<int64_t>& shape = {});

// The checkpoint axis: a compound dataset with fields path (string) and step (int64).
void write_checkpoint_axis(H5::H5File& file, const std::vector<std::string>& paths, const std::vector<int64_t>& steps);
void read_checkpoint_axis(const H5::H5File& file, std::vector<std::string>& paths, std::vector<int64_t>& steps);

void write_attr(H5::H5Object& obj, const std::string& name, const std::string& value);
void write_attr(H5::H5Object& obj, const std::string& name, double value);
void write_attr(H5::H5Object& obj, const std::string& name, int64_t value);
std::string read_string_attr(const H5::H5Object& obj, const std::string& name);
bool has_attr(const H5::H5Object& obj, const std::string& name);

}  // namespace fisheval::h5
