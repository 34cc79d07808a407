// Reading a damaged file must end in a clear message, never a crash or a hang. Some
// damage crashes the HDF5 library itself (1.10: a corrupted local heap or B-tree makes
// H5Lexists read through a null pointer, found by fuzz_hdf5_data), other damage makes it
// loop forever at full CPU (found by fuzz_results: `fisheval show` never ended on a 25 KB
// result file), and no check of ours can run before HDF5 parses its own structures. So a
// loader of such files reads them once in a forked child process, within a time limit:
// if the child dies or runs out of time (it is then killed), the file is refused with
// InputError and this process, with everything it holds, goes on; if the child finishes
// (loaded or refused: either is fine), the real read follows.
#pragma once
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fisheval {

// The time limit of a guarded read of one file, in seconds: this base plus one second
// per 10 MB of the file (a slow disk must not make a large good file look damaged).
// 0 = no limit. Default 60; the environment variable FISHEVAL_READ_TIMEOUT sets it, and
// the command line's --read-timeout (set_read_timeout) overrides both.
double read_timeout();
// Negative or not finite: InputError. nullopt: back to the environment or the default.
void set_read_timeout(std::optional<double> seconds);
// The limit for one file of `bytes` bytes (infinity when there is none).
double read_time_limit(double base_seconds, unsigned long long bytes);

struct GuardedFile {
  std::string path;  // what the time limit is measured on
  std::string what;  // how messages name it, e.g. "data file 'x.h5'"
};

// Runs read(i) for every file i in one forked child process (which then ends with the
// exit_group system call, skipping every exit handler, so it never touches files this
// process has open; it has the default action for crash signals, so a crash ends it without any
// crash handler of this process (a sanitizer's, a fuzzer's) reporting it). The child
// tells this process which file it is reading; each file has its own time limit. Throws
// InputError "WHAT is damaged: reading it crashed ..." or "... did not finish within N
// s ..." naming the file being read when the child died or was killed. When fork or pipe
// fails, returns without probing.
void refuse_if_reading_fails(const std::vector<GuardedFile>& files, const std::function<void(size_t)>& read);
// One file.
void refuse_if_reading_fails(const GuardedFile& file, const std::function<void()>& read);

}  // namespace fisheval

// A seam for the fuzzers (tests/fuzz/fuzz_support.h): a program that defines this function
// has it called first in every guard child. fisheval itself does not define it.
extern "C" __attribute__((weak)) void fisheval_crash_guard_child_hook();
// A second seam for the fuzzers: a program that defines this function and has it return
// true skips the child (refuse_if_reading_fails returns at once). The fuzzers' guard server
// has then read the file already in its long-lived child (tests/fuzz/fuzz_support.h).
// fisheval itself does not define it.
extern "C" __attribute__((weak)) bool fisheval_crash_guard_skip();
