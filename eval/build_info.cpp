#include "eval/build_info.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <unistd.h>

#include <cstdlib>

#include "base/error.h"

namespace fisheval {
namespace {

// The value of KEY=VALUE in LibTorch's build configuration text, "" when absent.
std::string config_value(const std::string& config, const std::string& key) {
  const auto at = config.find(key + "=");
  if (at == std::string::npos) return "";
  const auto start = at + key.size() + 1;
  return config.substr(start, config.find_first_of(",\n", start) - start);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> build_info() {
  const auto config = at::show_config();
  // CUDA is compiled in when LibTorch's CUDA library is linked: its hooks then report the
  // CUDA runtime version they were built with (12040 = 12.4), with or without a GPU.
  std::string cuda_compiled = "no", cuda_runtime = "none";
  try {
    const long v = at::detail::getCUDAHooks().versionCUDART();
    cuda_compiled = "yes";
    cuda_runtime = fmt::format("{}.{}", v / 1000, (v % 1000) / 10);
  } catch (const std::exception&) {
  }
  std::vector<std::string> devices;
  if (torch::cuda::is_available()) {
    for (int i = 0; i < static_cast<int>(torch::cuda::device_count()); ++i) {
      const auto* p = at::cuda::getDeviceProperties(i);
      devices.push_back(fmt::format("cuda:{} {} ({:.0f} GiB)", i, p->name, p->totalGlobalMem / double(1 << 30)));
    }
  }
  std::string blas = config_value(config, "BLAS_INFO");
  if (blas == "mkl") blas += " (" + at::get_mkl_version() + ")";
  return {
      {"fisheval_version", FISHEVAL_VERSION},
      {"torch_version", TORCH_VERSION},
      {"cuda_compiled", cuda_compiled},
      {"cuda_runtime", cuda_runtime},
      {"cuda_devices", devices.empty() ? "none visible" : fmt::format("{}", fmt::join(devices, "; "))},
      {"blas", blas.empty() ? "unknown" : blas},
      {"lapack", config_value(config, "LAPACK_INFO").empty() ? "unknown" : config_value(config, "LAPACK_INFO")},
      {"threads", fmt::format("{} (inter-op {})", at::get_num_threads(), at::get_num_interop_threads())},
      {"omp_wait_policy", std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "(unset)"},
  };
}

double device_memory_bytes(const c10::Device& device) {
  if (device.is_cuda()) return static_cast<double>(at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->totalGlobalMem);
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

double resolve_memory_budget(const std::string& spec, const c10::Device& device) {
  if (spec == "auto") return 0.8 * device_memory_bytes(device);
  try {
    size_t used = 0;
    const double gib = std::stod(spec, &used);
    if (used == spec.size() && gib > 0) return gib * 1024.0 * 1024.0 * 1024.0;
  } catch (const std::exception&) {
  }
  throw InputError(fmt::format("--memory-budget '{}': auto or a positive number of GiB", spec));
}

}  // namespace fisheval
