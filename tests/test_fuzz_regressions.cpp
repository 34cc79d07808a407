// Inputs found by fuzzing (scripts/fuzz.sh) or by review to break a loader, kept as
// regression tests: tests/fuzz-regressions/<loader>/<file>. Each must be either loaded
// or refused with fisheval::InputError (a clear message); any other exception fails the
// test, and a crash or memory error fails the whole binary (run it under the sanitizers:
// scripts/sanitize.sh). The folder per loader:
//   hdf5-data/     load_hdf5_dataset         idx/          read_idx
//   manifest/      load_series               torchscript/  load_model
//   results/       read_result_file (+ merge of the file with itself)
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "checkpoints/crash_guard.h"
#include "checkpoints/dataset.h"
#include "base/error.h"
#include "checkpoints/load.h"
#include "checkpoints/model.h"
#include "checkpoints/series.h"
#include "reports/results.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {

const std::map<std::string, std::function<void(const std::string&)>>& loaders() {
  static const std::map<std::string, std::function<void(const std::string&)>> table = {
      {"hdf5-data", [](const std::string& p) {
         const auto ds = load_hdf5_dataset(p);
         (void)ds->get({0, ds->size() - 1});
       }},
      {"idx", [](const std::string& p) { (void)read_idx(p); }},
      {"manifest", [](const std::string& p) { (void)load_series(p); }},
      {"torchscript", [](const std::string& p) {
         auto model = load_model(p);
         check_finite_parameters(*model, select_parameters(*model, "*"));
       }},
      {"results", [](const std::string& p) {
         const auto r = read_result_file(p);
         (void)merge_results({r, r}, {p, p});
       }},
  };
  return table;
}

fs::path regressions_dir() { return fs::path(FISHEVAL_SOURCE_DIR) / "tests" / "fuzz-regressions"; }

TEST(FuzzRegressions, EveryInputIsLoadedOrRefusedWithInputError) {
  // Inputs that make HDF5 loop are refused when their guarded read runs out of time.
  set_read_timeout(5);
  int64_t files = 0, refused = 0;
  for (const auto& [loader, load] : loaders()) {
    const auto dir = regressions_dir() / loader;
    if (!fs::exists(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().extension() == ".md") continue;
      ++files;
      SCOPED_TRACE(entry.path().string());
      // Limit what a declared size may make a loader allocate (as the fuzz targets do).
      setenv("FISHEVAL_MAX_LOAD_BYTES", "67108864", 1);
      try {
        load(entry.path().string());
      } catch (const InputError& e) {
        ++refused;
        EXPECT_FALSE(std::string(e.what()).empty());
      } catch (const std::exception& e) {
        ADD_FAILURE() << loader << " threw something other than InputError: " << e.what();
      }
      unsetenv("FISHEVAL_MAX_LOAD_BYTES");
    }
  }
  set_read_timeout(std::nullopt);
  EXPECT_GT(files, 0) << "no regression inputs under " << regressions_dir();
  EXPECT_GT(refused, 0);
}

TEST(FuzzRegressions, IdxHeaderDeclaringMoreThanTheFileHoldsTakesNoMemory) {
  // Found by fuzz_idx (idx/fuzz-header-declares-57mb.idx, a timeout under load): the data a
  // header declared was allocated and zeroed before it was read. A 20-byte file declaring 3
  // GiB (below a load limit of 8 GiB) must be refused as truncated without the process
  // growing by gigabytes.
  const auto path = (fs::temp_directory_path() / "fisheval-declares-3gib.idx").string();
  {
    const unsigned char header[] = {0, 0, 8, 1, 0xC0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(header), sizeof header);
  }
  setenv("FISHEVAL_MAX_LOAD_BYTES", "8589934592", 1);
  struct rusage before {}, after {};
  ::getrusage(RUSAGE_SELF, &before);
  try {
    (void)read_idx(path);
    ADD_FAILURE() << "read a truncated file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is truncated: its header declares 3221225472 bytes"), std::string::npos)
        << e.what();
  }
  ::getrusage(RUSAGE_SELF, &after);
  unsetenv("FISHEVAL_MAX_LOAD_BYTES");
  fs::remove(path);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 256 * 1024) << "peak memory grew by " << after.ru_maxrss - before.ru_maxrss
                                                           << " KB";
}

TEST(CrashGuard, RefusesWhatCrashesAndLetsTheRestThrough) {
  // Killed by a signal in the child: refused with InputError; this process lives on.
  try {
    refuse_if_reading_fails({"/nonexistent", "file 'x'"}, [] { std::abort(); });
    FAIL() << "a crash went unnoticed";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("file 'x' is damaged"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("signal 6"), std::string::npos) << e.what();
  }
  // A reader that refuses (throws) or succeeds in the child: no verdict, the caller reads.
  EXPECT_NO_THROW(refuse_if_reading_fails({"/nonexistent", "y"}, [] { throw InputError("refused"); }));
  EXPECT_NO_THROW(refuse_if_reading_fails({"/nonexistent", "z"}, [] {}));
  // The child's effects stay in the child.
  int touched = 0;
  refuse_if_reading_fails({"/nonexistent", "w"}, [&] { touched = 1; });
  EXPECT_EQ(touched, 0);
}

TEST(CrashGuard, DataFileThatCrashesHdf5IsRefused) {
  // Found by fuzz_hdf5_data: a damaged group heap makes HDF5 1.10's H5Lexists read address 0,
  // a damaged object header makes H5F__accum_read copy from an invalid address (SIGSEGV, the
  // whole run gone). They are now read first in a child process.
  for (const char* name : {"fuzz-segv-local-heap.h5", "fuzz-segv-accum-read.h5"}) {
    const auto path = (regressions_dir() / "hdf5-data" / name).string();
    try {
      (void)load_hdf5_dataset(path);
      ADD_FAILURE() << "loaded a damaged file: " << name;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("crashed the HDF5 library (signal 11"), std::string::npos) << e.what();
    }
  }
}

TEST(CrashGuard, ResultFileThatHangsHdf5IsRefusedInTime) {
  // Found by fuzz_results: HDF5 1.10 loops forever (100 % CPU) on this damaged result file;
  // `fisheval show` never ended. The guard's child is killed at the time limit.
  const auto path = (regressions_dir() / "results" / "fuzz-hang-global-heap.h5").string();
  set_read_timeout(1);
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)read_result_file(path);
    ADD_FAILURE() << "read a damaged file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is damaged: reading it did not finish within 1.0 s"), std::string::npos)
        << e.what();
  }
  set_read_timeout(std::nullopt);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
}

}  // namespace
}  // namespace fisheval
