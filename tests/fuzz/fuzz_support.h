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
#include <sanitizer/asan_interface.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "checkpoints/crash_guard.h"
#include "checkpoints/error.h"

namespace fisheval::fuzz::detail {

inline bool contains(const char* begin, const char* end, const char* needle) {
  return memmem(begin, static_cast<size_t>(end - begin), needle, std::strlen(needle)) != nullptr;
}

// In a sanitizer report, the first frame in a shared library (a "    #N ..." line naming a
// .so) of the first stack at or after `from`, as [line, *end); nullptr when there is none.
// Plain pointer work: this runs inside the sanitizer's error report.
inline const char* first_library_frame(const char* from, const char** end) {
  bool in_stack = false;
  for (const char* line = from; line && *line;) {
    const char* eol = std::strchr(line, '\n');
    const char* stop = eol ? eol : line + std::strlen(line);
    if (std::strncmp(line, "    #", 5) == 0) {
      in_stack = true;
      if (contains(line, stop, ".so")) {
        *end = stop;
        return line;
      }
    } else if (in_stack) {
      return nullptr;
    }
    line = eol ? eol + 1 : nullptr;
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
extern "C" void fisheval_crash_guard_child_hook() {
  __asan_set_error_report_callback([](const char* report) {
    using fisheval::fuzz::detail::contains;
    using fisheval::fuzz::detail::first_library_frame;
    const char* end = nullptr;
    const char* access = first_library_frame(report, &end);
    if (!access || !contains(access, end, "libhdf5")) return;
    if (std::strstr(report, "WRITE of size")) {
      const char* allocated = std::strstr(report, "allocated by thread");
      const char* frame = allocated ? first_library_frame(allocated, &end) : nullptr;
      if (!frame || !contains(frame, end, "libhdf5")) return;
    }
    std::raise(SIGSEGV);  // the default action in the child: it ends by the signal
  });
}

namespace fisheval::fuzz {

// Environment of every target: small load limit (so a declared size can't exhaust the
// fuzzer's memory limit); a short time limit for a guarded read (a file of at most 64 KB
// reads in milliseconds; one that HDF5 loops on costs this much of the run).
inline void init() {
  setenv("FISHEVAL_MAX_LOAD_BYTES", "67108864", 0);
  setenv("FISHEVAL_READ_TIMEOUT", "1", 0);
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

}  // namespace fisheval::fuzz
