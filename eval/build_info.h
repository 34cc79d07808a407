// What this fisheval runs on: its version, the LibTorch it was built against, whether
// CUDA is compiled in and which devices are visible, the BLAS/LAPACK LibTorch uses and
// its thread count. `fisheval --version` prints it; every result file stores it in
// root attributes of the same names.
#pragma once
#include <c10/core/Device.h>

#include <string>
#include <utility>
#include <vector>

namespace fisheval {

// (key, value) pairs in a fixed order: fisheval_version, torch_version, cuda_compiled,
// cuda_runtime, cuda_devices, blas, lapack, threads, omp_wait_policy.
std::vector<std::pair<std::string, std::string>> build_info();

// The memory of a device in bytes: physical RAM for the CPU, the GPU's for CUDA.
double device_memory_bytes(const c10::Device& device);

// The memory one method may use per batch: "auto" (80% of the device's memory) or GiB.
double resolve_memory_budget(const std::string& spec, const c10::Device& device);

}  // namespace fisheval
