#include "base/limits.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace fisheval {

uint64_t max_load_bytes() {
  if (const char* env = std::getenv("FISHEVAL_MAX_LOAD_BYTES"); env && *env) {
    try {
      return std::stoull(env);
    } catch (const std::exception&) {
      // fall through to the default
    }
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return uint64_t(1) << 34;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 2;
}

}  // namespace fisheval
