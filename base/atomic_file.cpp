#include "base/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/error.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {

std::string folder_of(const std::string& path) {
  auto folder = fs::path(path).parent_path().string();
  return folder.empty() ? "." : folder;
}

// Flushes a file (or folder) to the disk; false (errno set) when the system reports a failure.
bool fsync_file_or_folder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

[[noreturn]] void fail_atomic_write(const std::string& target, const std::string& tmp, const std::string& why) {
  std::error_code ec;
  fs::remove(tmp, ec);
  throw_write_failure(target, why);
}

}  // namespace

std::string atomic_temp_path(const std::string& path) { return path + ".tmp"; }

void throw_write_failure(const std::string& path, const std::string& why) {
  throw Error(fmt::format("cannot write '{}': {}{}", path, why, write_failure_hint(folder_of(path))));
}

std::string write_failure_hint(const std::string& folder) {
  std::string hint;
  struct statvfs fs_info {};
  if (::statvfs(folder.c_str(), &fs_info) == 0) {
    const auto free_bytes = static_cast<unsigned long long>(fs_info.f_bavail) * fs_info.f_frsize;
    if (free_bytes < (16ull << 20)) hint += fmt::format("; the disk holding '{}' is full ({} bytes free)", folder, free_bytes);
  }
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    hint += fmt::format("; the file-size limit (ulimit -f) is {} bytes", static_cast<unsigned long long>(limit.rlim_cur));
  }
  return hint.empty() ? " (disk full or no permission?)" : hint;
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  const auto tmp = atomic_temp_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_atomic_write(path, tmp, fmt::format("cannot create '{}': {}", tmp, std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      fail_atomic_write(path, tmp, fmt::format("writing '{}' failed after {} of {} bytes: {}", tmp, done,
                                               bytes.size(), std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail_atomic_write(path, tmp, fmt::format("flushing '{}' to the disk failed: {}", tmp, std::strerror(err)));
  }
  if (::close(fd) != 0) {
    fail_atomic_write(path, tmp, fmt::format("flushing '{}' to the disk failed: {}", tmp, std::strerror(errno)));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail_atomic_write(path, tmp, fmt::format("cannot rename '{}': {}", tmp, ec.message()));
  fsync_file_or_folder(folder_of(path));
}

}  // namespace fisheval
