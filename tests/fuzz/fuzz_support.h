// Shared by the libFuzzer targets: the input bytes become a file (the loaders read
// files), in /dev/shm when it exists. A loader may refuse an input only with
// fisheval::InputError; any other exception escaping, a crash, a leak or undefined
// behaviour is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "checkpoints/error.h"

namespace fisheval::fuzz {

// Environment of every target: small load limit (so a declared size can't exhaust the
// fuzzer's memory limit), HDF5 quiet.
inline void init() {
  setenv("FISHEVAL_MAX_LOAD_BYTES", "67108864", 0);
}

// Writes data to a per-process file with this suffix and returns its path.
inline std::string as_file(const uint8_t* data, size_t size, const std::string& suffix) {
  const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/fisheval-fuzz-" + std::to_string(getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

template <class Fn>
void expect_input_error_only(Fn&& fn) {
  try {
    fn();
  } catch (const fisheval::InputError&) {
    // refused with a clear message: the expected outcome for malformed input
  }
}

}  // namespace fisheval::fuzz
