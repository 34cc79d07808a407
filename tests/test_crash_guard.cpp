// The time limit of the crash guard (checkpoints/crash_guard.h): a child that reads too
// long is killed and the file refused by name; the limit holds per file; the setting
// (flag, environment, default, size allowance). The children here are synthetic (they
// sleep or crash); the real HDF5 hang is in test_fuzz_regressions.cpp and
// test_damaged_files_cli.cpp.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "checkpoints/crash_guard.h"
#include "base/error.h"

// Helpers in a namespace of this file's own: unity builds compile several test files in one unit.
namespace fisheval::crash_guard_test {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Sets the guard's time limit for one test, and restores the default after it.
struct TimeLimit {
  explicit TimeLimit(double s) { set_read_timeout(s); }
  ~TimeLimit() { set_read_timeout(std::nullopt); }
};

// An empty file (no size allowance: its limit is the base limit).
std::string empty_file(const std::string& name) {
  const auto path = (std::filesystem::temp_directory_path() / ("fisheval-guard-" + name)).string();
  std::ofstream(path).close();
  return path;
}

std::string refusal(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(CrashGuardTimeLimit, SlowChildIsKilledAndTheFileRefused) {
  const TimeLimit limit(0.5);
  // The child says who it is through a pipe, then sleeps far longer than the limit.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const auto start = Clock::now();
  const auto why = refusal([&] {
    refuse_if_reading_fails({empty_file("slow"), "data file 'slow.h5'"}, [&] {
      const pid_t me = ::getpid();
      (void)!::write(fds[1], &me, sizeof me);
      std::this_thread::sleep_for(std::chrono::seconds(60));
    });
  });
  const double took = seconds_since(start);
  ::close(fds[1]);
  pid_t child = 0;
  ASSERT_EQ(::read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  ::close(fds[0]);
  EXPECT_NE(why.find("data file 'slow.h5' is damaged: reading it did not finish within 0.5 s"), std::string::npos)
      << why;
  EXPECT_NE(why.find("--read-timeout"), std::string::npos) << why;
  EXPECT_GE(took, 0.5);
  EXPECT_LT(took, 5.0);
  // Killed and reaped: no such process any more.
  EXPECT_EQ(::kill(child, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(CrashGuardTimeLimit, TheLimitHoldsPerFileAndNamesTheFileBeingRead) {
  const TimeLimit limit(1.0);
  std::vector<GuardedFile> files;
  for (int i = 0; i < 3; ++i) files.push_back({empty_file("f" + std::to_string(i)), "file " + std::to_string(i)});
  // Files 0 and 1 take 0.6 s each (1.2 s together, more than one limit); file 2 never ends.
  const auto why = refusal([&] {
    refuse_if_reading_fails(files, [](size_t i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(i < 2 ? 600 : 60000));
    });
  });
  EXPECT_NE(why.find("file 2 is damaged: reading it did not finish within 1.0 s"), std::string::npos) << why;
  // Every file in time: no verdict.
  EXPECT_NO_THROW(refuse_if_reading_fails(
      files, [](size_t) { std::this_thread::sleep_for(std::chrono::milliseconds(600)); }));
}

TEST(CrashGuardTimeLimit, ACrashNamesTheFileBeingRead) {
  std::vector<GuardedFile> files;
  for (int i = 0; i < 3; ++i) files.push_back({empty_file("c" + std::to_string(i)), "part " + std::to_string(i)});
  const auto why = refusal([&] {
    refuse_if_reading_fails(files, [](size_t i) {
      if (i == 1) ::raise(SIGSEGV);
    });
  });
  EXPECT_NE(why.find("part 1 is damaged: reading it crashed the HDF5 library (signal 11"), std::string::npos) << why;
  // A child that refuses every file (throws) is no verdict: the caller reads and reports.
  EXPECT_NO_THROW(refuse_if_reading_fails(files, [](size_t) { throw InputError("refused"); }));
}

TEST(CrashGuardTimeLimit, ZeroMeansNoLimit) {
  const TimeLimit limit(0);
  EXPECT_TRUE(std::isinf(read_time_limit(read_timeout(), 1000)));
  EXPECT_NO_THROW(refuse_if_reading_fails({empty_file("zero"), "z"}, [] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }));
}

TEST(CrashGuardTimeLimit, SettingDefaultEnvironmentAndSizeAllowance) {
  set_read_timeout(std::nullopt);
  unsetenv("FISHEVAL_READ_TIMEOUT");
  EXPECT_EQ(read_timeout(), 60.0);
  setenv("FISHEVAL_READ_TIMEOUT", "7.5", 1);
  EXPECT_EQ(read_timeout(), 7.5);
  setenv("FISHEVAL_READ_TIMEOUT", "soon", 1);  // not a number: the default
  EXPECT_EQ(read_timeout(), 60.0);
  setenv("FISHEVAL_READ_TIMEOUT", "7.5", 1);
  set_read_timeout(3);  // the flag wins over the environment
  EXPECT_EQ(read_timeout(), 3.0);
  unsetenv("FISHEVAL_READ_TIMEOUT");
  set_read_timeout(std::nullopt);
  EXPECT_THROW(set_read_timeout(-1), InputError);
  EXPECT_THROW(set_read_timeout(std::nan("")), InputError);
  // One second more per 10 MB of the file.
  EXPECT_EQ(read_time_limit(60, 0), 60.0);
  EXPECT_EQ(read_time_limit(60, 2'000'000'000ull), 260.0);
  EXPECT_TRUE(std::isinf(read_time_limit(0, 2'000'000'000ull)));
}

}  // namespace fisheval::crash_guard_test
