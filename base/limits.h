// The largest array a loader allocates for what a file declares (HDF5 datasets, IDX
// files, result files). A malformed header can declare any size; beyond this limit a
// loader refuses the file with a clear message instead of trying to allocate it.
// Default: half the physical memory; the environment variable FISHEVAL_MAX_LOAD_BYTES
// overrides it (bytes).
#pragma once
#include <cstdint>

namespace fisheval {

uint64_t max_load_bytes();

}  // namespace fisheval
