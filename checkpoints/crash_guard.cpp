#include "checkpoints/crash_guard.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "base/error.h"

namespace fisheval {
namespace {

constexpr double kDefaultReadTimeout = 60;
constexpr double kBytesPerSecond = 10e6;  // the slowest disk a good file may be read from
constexpr uint64_t kAllDone = std::numeric_limits<uint64_t>::max();

std::optional<double> g_read_timeout;  // set by the command line

using Clock = std::chrono::steady_clock;

double file_limit(const GuardedFile& file, double base) {
  struct stat st {};
  const unsigned long long bytes = ::stat(file.path.c_str(), &st) == 0 ? static_cast<unsigned long long>(st.st_size) : 0;
  return read_time_limit(base, bytes);
}

// Ends the child at once: the exit_group system call itself, not _exit, which a
// sanitizer intercepts to run its leak check first (100 ms per child in the fuzzers, and a
// leak report there would read as a crash).
[[noreturn]] void end_child() {
  for (;;) ::syscall(SYS_exit_group, 0);
}

// The child: crash signals back to their default action, then every file in turn, each
// announced to the parent first (8-byte writes to a pipe are atomic).
[[noreturn]] void run_child(int out, size_t count, const std::function<void(size_t)>& read) {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS}) std::signal(sig, SIG_DFL);
  if (fisheval_crash_guard_child_hook) fisheval_crash_guard_child_hook();
  const auto tell = [&](uint64_t v) {
    if (::write(out, &v, sizeof v) != sizeof v) end_child();  // the parent is gone: nothing to report to
  };
  for (size_t i = 0; i < count; ++i) {
    tell(i);
    try {
      read(i);
    } catch (...) {
      // A refusal is the parent's to report, by reading again.
    }
  }
  tell(kAllDone);
  end_child();
}

pid_t wait_for(pid_t child, int* status, int flags) {
  pid_t done = -1;
  do {
    done = ::waitpid(child, status, flags);
  } while (done < 0 && errno == EINTR);
  return done;
}

}  // namespace

double read_timeout() {
  if (g_read_timeout) return *g_read_timeout;
  if (const char* env = std::getenv("FISHEVAL_READ_TIMEOUT"); env && *env) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end != env && *end == '\0' && std::isfinite(v) && v >= 0) return v;
  }
  return kDefaultReadTimeout;
}

void set_read_timeout(std::optional<double> seconds) {
  if (seconds && (!std::isfinite(*seconds) || *seconds < 0)) {
    throw InputError(fmt::format("--read-timeout {} must be a number of seconds ≥ 0 (0: no limit)", *seconds));
  }
  g_read_timeout = seconds;
}

double read_time_limit(double base_seconds, unsigned long long bytes) {
  if (base_seconds <= 0) return std::numeric_limits<double>::infinity();
  return base_seconds + static_cast<double>(bytes) / kBytesPerSecond;
}

void refuse_if_reading_fails(const std::vector<GuardedFile>& files, const std::function<void(size_t)>& read) {
  if (files.empty() || (fisheval_crash_guard_skip && fisheval_crash_guard_skip())) return;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return;  // no probe possible: read as usual
  const pid_t child = ::fork();
  if (child < 0) {  // e.g. a process limit
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return;
  }
  if (child == 0) {
    ::close(pipe_fds[0]);
    run_child(pipe_fds[1], files.size(), read);
  }
  ::close(pipe_fds[1]);
  const int in = pipe_fds[0];

  // Follow the child: which file it reads, and since when. It has ended when the pipe
  // closes, or when waitpid says so (checked every 100 ms, in case another process
  // inherited the pipe; what it wrote is read to the end then).
  const double base = read_timeout();
  uint64_t current = 0;
  bool all_done = false, reaped = false;
  double limit = file_limit(files[0], base);
  auto started = Clock::now();
  uint8_t buf[sizeof(uint64_t)];
  size_t have = 0;
  int status = 0;
  for (;;) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    if (!reaped && elapsed > limit) {
      ::kill(child, SIGKILL);
      wait_for(child, &status, 0);
      ::close(in);
      throw InputError(fmt::format("{} is damaged: reading it did not finish within {:.1f} s (HDF5 loops forever on "
                                   "some damaged files); the process reading it was stopped, nothing else was "
                                   "affected (time limit: --read-timeout or FISHEVAL_READ_TIMEOUT, now {:g} s, plus "
                                   "1 s per 10 MB of the file)",
                                   files[current].what, limit, base));
    }
    pollfd p{in, POLLIN, 0};
    const int ready = ::poll(&p, 1, reaped ? 0 : static_cast<int>(std::min(100.0, std::ceil((limit - elapsed) * 1e3))));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;  // cannot follow it: wait for its end below
    if (ready == 0) {
      if (reaped) break;  // nothing more from a child that has ended
      reaped = wait_for(child, &status, WNOHANG) == child;
      continue;
    }
    const ssize_t n = ::read(in, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed: the child has ended
    have += static_cast<size_t>(n);
    if (have < sizeof buf) continue;
    have = 0;
    uint64_t v = 0;
    std::memcpy(&v, buf, sizeof v);
    if (v == kAllDone) {
      all_done = true;
    } else if (v < files.size()) {
      current = v;
      limit = file_limit(files[current], base);
      started = Clock::now();
    }
  }
  ::close(in);
  if (!reaped && wait_for(child, &status, 0) != child) return;  // lost track of it: no verdict
  if (all_done && WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  // Killed by a signal, or ended by a sanitizer's report (exit status 1).
  const std::string how = WIFSIGNALED(status)
                              ? fmt::format("signal {}, {}", WTERMSIG(status), ::strsignal(WTERMSIG(status)))
                              : fmt::format("exit status {}", WEXITSTATUS(status));
  throw InputError(fmt::format("{} is damaged: reading it crashed the HDF5 library ({}) in a separate process; "
                               "nothing else was affected",
                               files[current].what, how));
}

void refuse_if_reading_fails(const GuardedFile& file, const std::function<void()>& read) {
  refuse_if_reading_fails(std::vector<GuardedFile>{file}, [&](size_t) { read(); });
}

}  // namespace fisheval
