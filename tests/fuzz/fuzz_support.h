// Shared by the libFuzzer targets: the input bytes become a file (the loaders read
// files), in /dev/shm when it exists. A loader may refuse an input only with
// fisheval::InputError; any other exception escaping, a crash, a leak or undefined
// behaviour is a finding. What a loader first reads in the crash guard's child
// (checkpoints/crash_guard.h) is the exception: the child ending by a signal or running out
// of time is the expected refusal of a file that crashes or hangs HDF5, not a finding (the
// child has the default action for crash signals, so neither the sanitizer nor libFuzzer
// reports it); what runs in this process (the real read, after a child that finished) is
// fuzzed as always.
#pragma once
#include <dlfcn.h>
#include <execinfo.h>
#include <hdf5.h>
#include <poll.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "checkpoints/crash_guard.h"
#include "base/error.h"

namespace fisheval::fuzz::detail {

// The file of the first of these return addresses that lies in a shared library (a file
// name with ".so"), or nullptr.
inline const char* first_library(void* const* pcs, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    Dl_info info{};
    if (pcs[i] && dladdr(pcs[i], &info) && info.dli_fname && std::strstr(info.dli_fname, ".so")) {
      return info.dli_fname;
    }
  }
  return nullptr;
}

}  // namespace fisheval::fuzz::detail

// In a guard child: a memory error that AddressSanitizer finds inside HDF5 itself (HDF5
// 1.10's H5HG_read copies past a damaged global heap) ends the child as the real binary's
// child ends on such a file, by SIGSEGV, so the file is refused and libFuzzer does not save
// it as a finding. HDF5's: the access comes from HDF5 (the first shared-library frame of its
// stack is libhdf5) and, for a write, the memory written is HDF5's own (so is the first
// shared-library frame of its allocation). Any other report (fisheval's code, or HDF5
// overrunning a buffer of fisheval's) stays a finding.
//
// The stacks come from ASan's interface and this thread's own unwinding, not from the
// report's text. The text a report callback receives is ASan's error-message buffer (64 KB,
// per process, inherited by every fork, holding whatever ASan printed since its last
// report); in the children of a fuzzing process it did not hold the report, and the first
// classifier, which parsed it, let 2 382 inputs on which HDF5 reads past a damaged global
// heap through as "crashes" in the 10⁶-input campaign of the HDF5 data target (reproduced:
// 998 such artifacts in 100 s of fuzzing two inputs; none with this classifier).
namespace fisheval::fuzz::detail {

// The report being made is of a memory error that is HDF5's own (above).
inline bool hdf5_own_error() {
  void* access[128];
  const int n = backtrace(access, 128);
  const char* by = first_library(access, n > 0 ? static_cast<size_t>(n) : 0);
  if (!by || !std::strstr(by, "libhdf5")) return false;
  if (__asan_get_report_access_type() != 0) {  // a write: only into HDF5's own memory
    void* alloc[64];
    int thread = 0;
    const size_t m = __asan_get_alloc_stack(__asan_get_report_address(), alloc, 64, &thread);
    const char* owner = first_library(alloc, m);
    if (!owner || !std::strstr(owner, "libhdf5")) return false;
  }
  return true;
}

}  // namespace fisheval::fuzz::detail

extern "C" void fisheval_crash_guard_child_hook() {
  void* warm[4];
  (void)backtrace(warm, 4);  // loads the unwinder now, not inside a report
  __asan_set_error_report_callback([](const char*) {
    if (fisheval::fuzz::detail::hdf5_own_error()) std::raise(SIGSEGV);  // the default action in the child: it ends by the signal
  });
}

namespace fisheval::fuzz::detail {
inline bool skip_guard = false;  // set while the guard server has read the input already
inline const uint8_t* input_data = nullptr;  // the input being read, for the report callback
inline size_t input_size = 0;

// In the fuzzing process: an error that is HDF5's own (above) in the real read of a file
// the guard server had read to its end. The fisheval binary cannot meet this: its guard
// child is forked right before the real read, a copy of the reading process in its exact
// state, and HDF5 is deterministic from a given state, so a file the child read to its end
// reads the same way in the parent. The server was forked long before and its HDF5 state
// differs (finding 12 of docs/RELIABILITY.md: HDF5 reads memory whose content depends on
// what it read before). The input still ends this process (a sanitizer's report cannot be
// undone) and libFuzzer saves it; it is also kept in $FISHEVAL_FUZZ_GUARDED_DIR/hdf5-state/
// so that scripts/fuzz.sh, when the saved input does not reproduce on its own (a fresh
// process and a fresh guard child), counts it as such a state-dependent HDF5 error and not
// as a finding. Every other report stays a finding.
inline void mark_state_dependent_hdf5_error(const char*) {
  if (!skip_guard || !input_data || !hdf5_own_error()) return;
  std::fputs("fuzz: HDF5's own memory error after the guard server read the file to its end (state-dependent)\n",
             stderr);
  const char* dir = std::getenv("FISHEVAL_FUZZ_GUARDED_DIR");
  if (!dir) return;
  const std::string folder = std::string(dir) + "/hdf5-state";
  (void)::mkdir(folder.c_str(), 0755);
  char name[64];
  std::snprintf(name, sizeof name, "/input-%d-%zu", static_cast<int>(getpid()), input_size);
  if (FILE* f = std::fopen((folder + name).c_str(), "wb")) {
    if (input_size > 0) std::fwrite(input_data, 1, input_size, f);
    std::fclose(f);
  }
}
}  // namespace fisheval::fuzz::detail

extern "C" bool fisheval_crash_guard_skip() { return fisheval::fuzz::detail::skip_guard; }

namespace fisheval::fuzz {

// Environment of every target: small load limit (so a declared size can't exhaust the
// fuzzer's memory limit); a short time limit for a guarded read, 50 ms (a file of at most
// 32 KB reads in a few milliseconds, sanitized; each file that HDF5 loops on costs this
// much twice, in the guard server and in the fresh child that confirms the refusal, and
// about 1 % of the results target's inputs are such files: with 1 s it ran 27 inputs/s,
// with 50 ms 237). A good file that misses the limit on a busy machine is counted as a
// guarded refusal, never as a finding.
inline void init() {
  static const bool once = [] {
    setenv("FISHEVAL_MAX_LOAD_BYTES", "67108864", 0);
    setenv("FISHEVAL_READ_TIMEOUT", "0.05", 0);
    void* warm[4];
    (void)backtrace(warm, 4);
    __asan_set_error_report_callback(detail::mark_state_dependent_hdf5_error);
    return true;
  }();
  (void)once;
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

// A refusal by the crash guard (its child crashed or ran out of time) is an expected
// outcome, not a finding. In $FISHEVAL_FUZZ_GUARDED_DIR (scripts/fuzz.sh:
// build-fuzz/guarded/TARGET/) each one adds a line to crash.count or timeout.count, and the
// first 20 of each kind per process are kept as guard-KIND-HASH, candidates for
// tests/fuzz-regressions/. `what` is how the guard names the file ("result file 'PATH'"):
// only a message that starts with it is the guard's (others may quote the input's text).
inline void keep_guarded(const uint8_t* data, size_t size, const std::string& why, const std::string& what) {
  const char* dir = std::getenv("FISHEVAL_FUZZ_GUARDED_DIR");
  const auto starts = [&](const char* tail) { return why.rfind(what + " is damaged: reading it " + tail, 0) == 0; };
  const char* kind = what.empty() ? nullptr : starts("did not finish within") ? "timeout" : starts("crashed") ? "crash" : nullptr;
  if (!dir || !kind) return;
  if (FILE* count = std::fopen((std::string(dir) + "/" + kind + ".count").c_str(), "a")) {
    std::fputs("1\n", count);
    std::fclose(count);
  }
  static int kept[2] = {0, 0};
  if (kept[kind[0] == 't']++ >= 20) return;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
  char name[64];
  std::snprintf(name, sizeof name, "/guard-%s-%016llx", kind, static_cast<unsigned long long>(h));
  if (FILE* f = std::fopen((std::string(dir) + name).c_str(), "wb")) {
    if (size > 0) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
}

// Runs fn on the input; a refusal (InputError) is the expected outcome for malformed input.
// `guarded`: how the crash guard names the file, for a loader that reads it in a guard child.
template <class Fn>
void expect_input_error_only(const uint8_t* data, size_t size, Fn&& fn, const std::string& guarded = "") {
  try {
    fn();
  } catch (const fisheval::InputError& e) {
    keep_guarded(data, size, e.what(), guarded);
  }
}

// After every input, in both processes, no object of any HDF5 file may be left open: in
// the fuzzing process an open one is a leak of fisheval's (abort: a finding); in the guard
// server, which is only a guard, they are closed, so that a file's handles do not carry
// over to the next input. (HDF5's other state, its free lists and what it read before,
// still differs between the server and this process: see mark_state_dependent_hdf5_error.
// Collecting the free lists after each input, H5garbage_collect, cost 20 % of the results
// target's throughput and cannot make the two processes' heaps alike, so it is not done.)
inline void close_hdf5_objects(bool in_server) {
  // Files, groups, data sets and attributes; not data types, which counts the C++ API's
  // predefined types (live for the whole process).
  constexpr unsigned kinds = H5F_OBJ_FILE | H5F_OBJ_GROUP | H5F_OBJ_DATASET | H5F_OBJ_ATTR;
  const ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, kinds);
  if (open > 0 && !in_server) {
    std::fprintf(stderr, "fuzz: %zd HDF5 objects left open after the input (a leak)\n", open);
    std::abort();
  }
  if (open > 0) {
    std::vector<hid_t> ids(static_cast<size_t>(open));
    const ssize_t n = H5Fget_obj_ids(H5F_OBJ_ALL, kinds, ids.size(), ids.data());
    for (ssize_t i = 0; i < n; ++i) {
      while (H5Iis_valid(ids[i]) > 0 && H5Idec_ref(ids[i]) > 0) {
      }
    }
  }
}

// The guard server: what the crash guard's child does for each file (the first read, in a
// process of its own, within the time limit), done in one long-lived child forked at the
// first input instead of a fresh fork per input. Forking the sanitized fuzzer and tearing
// the child down cost more than the read itself: the HDF5 targets ran ~100 inputs/s that
// way. Safe because a verdict against a file is never the server's: when the server
// crashes or runs out of time on an input, it is gone (the next input starts another), and
// the input goes through the real guard, a fresh child as in the fisheval binary, whose
// refusal is the expected outcome. When the server has read the input to its end, the real
// read follows in this process, fuzzed with the sanitizers as always, without a second
// child. FISHEVAL_FUZZ_GUARD_SERVER=0 turns the server off (a fresh child per input).
class GuardServer {
 public:
  explicit GuardServer(void (*first_read)(const std::string& path)) : first_read_(first_read) {
    const char* env = std::getenv("FISHEVAL_FUZZ_GUARD_SERVER");
    enabled_ = !(env && std::strcmp(env, "0") == 0);
  }
  GuardServer(const GuardServer&) = delete;
  GuardServer& operator=(const GuardServer&) = delete;

  // true: the server read `path` to its end (loaded or refused); false: it crashed or ran
  // out of time, or there is no server.
  bool read(const std::string& path) {
    if (!enabled_ || (child_ <= 0 && !start())) return false;
    const uint32_t n = static_cast<uint32_t>(path.size());
    if (!send_all(&n, sizeof n) || !send_all(path.data(), n)) return stop();
    struct stat st {};
    const double limit = read_time_limit(read_timeout(), ::stat(path.c_str(), &st) == 0 ? st.st_size : 0);
    const auto started = std::chrono::steady_clock::now();
    for (;;) {
      const double left = limit - std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (left <= 0) return stop();
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, std::isinf(left) ? -1 : static_cast<int>(std::ceil(left * 1e3)));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;  // the limit is checked above
      char done = 0;
      const ssize_t got = ::recv(fd_, &done, 1, 0);
      if (got < 0 && errno == EINTR) continue;
      return got == 1 ? true : stop();  // 0: the server ended (crashed) while reading
    }
  }

 private:
  bool start() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return false;
    child_ = ::fork();
    if (child_ < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (child_ == 0) {
      ::close(fds[0]);
      serve(fds[1]);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    return true;
  }

  // The child: as the guard's child (crash signals to their default action, the fuzzers'
  // hook), reading one path after another until this process closes the socket.
  [[noreturn]] void serve(int fd) {
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS}) std::signal(sig, SIG_DFL);
    fisheval_crash_guard_child_hook();
    // No libFuzzer artifact from the server: libFuzzer's death callback, inherited, would
    // save the input it held when the server was forked, not the one being read. A server
    // that a sanitizer ends is replaced, and the fresh guard child that then reads the same
    // input, forked with it, saves the right one if the error is reproduced.
    __sanitizer_set_death_callback(nullptr);
    detail::skip_guard = true;  // the server is the guard: no child of its own
    std::string path;
    for (;;) {
      uint32_t n = 0;
      if (!recv_all(fd, &n, sizeof n)) break;
      path.resize(n);
      if (!recv_all(fd, path.data(), n)) break;
      try {
        first_read_(path);
      } catch (...) {
        // A refusal is the parent's to report, by reading again.
      }
      close_hdf5_objects(true);
      const char done = 1;
      if (::send(fd, &done, 1, MSG_NOSIGNAL) != 1) break;
    }
    for (;;) ::syscall(SYS_exit_group, 0);  // no exit handlers (see crash_guard.cpp's end_child)
  }

  static bool recv_all(int fd, void* p, size_t n) {
    auto* c = static_cast<char*>(p);
    while (n > 0) {
      const ssize_t got = ::recv(fd, c, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      c += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }

  bool send_all(const void* p, size_t n) {
    const auto* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t sent = ::send(fd_, c, n, MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent <= 0) return false;
      c += sent;
      n -= static_cast<size_t>(sent);
    }
    return true;
  }

  // Ends the server (killed, reaped); false, for read() to return.
  bool stop() {
    ::kill(child_, SIGKILL);
    int status = 0;
    while (::waitpid(child_, &status, 0) < 0 && errno == EINTR) {
    }
    ::close(fd_);
    child_ = -1;
    fd_ = -1;
    return false;
  }

  void (*first_read_)(const std::string&);
  bool enabled_ = true;
  pid_t child_ = -1;
  int fd_ = -1;
};

// expect_input_error_only for a loader that reads its file in the crash guard's child
// first: the guard server reads it; when that finished, fn runs with the guard's child
// skipped, else as in the fisheval binary (a fresh child, whose refusal is expected).
template <class Fn>
void expect_input_error_only_guarded(GuardServer& server, const uint8_t* data, size_t size, const std::string& path,
                                     const std::string& guarded, Fn&& fn) {
  if (server.read(path)) {
    detail::skip_guard = true;
    detail::input_data = data;
    detail::input_size = size;
    try {
      expect_input_error_only(data, size, fn, guarded);
    } catch (...) {
      detail::skip_guard = false;
      throw;
    }
    detail::skip_guard = false;
  } else {
    expect_input_error_only(data, size, fn, guarded);
  }
  close_hdf5_objects(false);
}

}  // namespace fisheval::fuzz
