// The real fisheval binary on files that crash or hang HDF5 and on damaged checkpoint
// archives (the inputs the fuzzers found, tests/fuzz-regressions/): every command that
// reads them (eval: data and resume parts, show, merge, report) refuses them with exit
// status 2 and a message naming the file, within seconds of the time limit
// (--read-timeout or FISHEVAL_READ_TIMEOUT), never running on.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "support.h"

namespace fs = std::filesystem;

// Helpers in a namespace of this file's own: unity builds compile several test files in one unit.
namespace fisheval::damaged_files_cli_test {

struct Outcome {
  int status = -1;  // exit status, or 128 + signal
  std::string output;  // stdout and stderr
  double seconds = 0;
};

Outcome run(const std::string& args, const std::string& env = "") {
  const auto cmd = env + " '" + test::fisheval_binary() + "' " + args + " 2>&1";
  const auto start = std::chrono::steady_clock::now();
  Outcome o;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return o;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.output.append(buf, n);
  const int st = ::pclose(p);
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return o;
}

fs::path regressions() { return fs::path(FISHEVAL_SOURCE_DIR) / "tests" / "fuzz-regressions"; }

// The first regression input of `loader` whose name starts with `prefix`.
std::string regression(const std::string& loader, const std::string& prefix) {
  for (const auto& e : fs::directory_iterator(regressions() / loader)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) return e.path().string();
  }
  ADD_FAILURE() << "no " << prefix << "* in " << regressions() / loader;
  return "";
}

fs::path work_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("fisheval-damaged-cli-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string eval_args(const std::string& data, const fs::path& out) {
  return "eval --checkpoints '" + test::fixture("toy_linear.pt") + "' --data '" + data +
         "' --batch-size 2 --num-batches 2 --methods sgd,ef --damping 0 --quiet --out '" + out.string() + "'";
}

#define EXPECT_REFUSED(outcome, ...)                                                           \
  do {                                                                                         \
    const auto& o_ = (outcome);                                                                \
    EXPECT_EQ(o_.status, 2) << o_.output;                                                      \
    for (const std::string& fragment : std::initializer_list<std::string>{__VA_ARGS__}) {      \
      EXPECT_NE(o_.output.find(fragment), std::string::npos) << fragment << "\n" << o_.output; \
    }                                                                                          \
  } while (0)

TEST(DamagedFilesCli, ResultFileThatHangsHdf5IsRefusedByShowMergeAndReport) {
  const auto dir = work_dir("hang");
  const auto hang = (dir / "hang.h5").string();
  fs::copy_file(regression("results", "fuzz-hang"), hang);
  const auto good = dir / "good.h5";
  ASSERT_EQ(run(eval_args(test::fixture("toy_linear.h5"), good)).status, 0);
  const std::string why = "result file '" + hang + "' is damaged: reading it did not finish within 2.0 s";

  auto o = run("show '" + hang + "' --read-timeout 2");
  EXPECT_REFUSED(o, why);
  EXPECT_LT(o.seconds, 20);
  o = run("show '" + hang + "'", "FISHEVAL_READ_TIMEOUT=2");  // the environment sets it too
  EXPECT_REFUSED(o, why);
  EXPECT_LT(o.seconds, 20);
  o = run("merge --read-timeout 2 --out '" + (dir / "merged.h5").string() + "' '" + good.string() + "' '" + hang + "'");
  EXPECT_REFUSED(o, why);
  EXPECT_FALSE(fs::exists(dir / "merged.h5"));
  o = run("report '" + hang + "' --read-timeout 2 --no-toy --out '" + (dir / "report").string() + "'");
  EXPECT_REFUSED(o, why);
  EXPECT_FALSE(fs::exists(dir / "report"));
  // An existing OUT of eval that hangs HDF5 (eval resumes from it): refused by name, not
  // taken for a file of another configuration; --overwrite replaces it unread.
  o = run(eval_args(test::fixture("toy_linear.h5"), hang) + " --read-timeout 2");
  EXPECT_REFUSED(o, why);
  EXPECT_EQ(run(eval_args(test::fixture("toy_linear.h5"), hang) + " --read-timeout 2 --overwrite").status, 0);
  fs::remove_all(dir);
}

TEST(DamagedFilesCli, EvalRefusesAResumePartThatHangsHdf5) {
  const auto dir = work_dir("part");
  const auto out = dir / "out.h5";
  fs::create_directories(dir / "out.h5.parts");
  const auto part = (dir / "out.h5.parts" / "unit-0-1.h5").string();
  fs::copy_file(regression("results", "fuzz-hang"), part);
  const auto o = run(eval_args(test::fixture("toy_linear.h5"), out) + " --read-timeout 2");
  EXPECT_REFUSED(o, "resume part '" + part + "' is damaged: reading it did not finish within 2.0 s",
                 "delete it to recompute its unit");
  EXPECT_LT(o.seconds, 30);
  fs::remove(part);
  EXPECT_EQ(run(eval_args(test::fixture("toy_linear.h5"), out) + " --read-timeout 2").status, 0);
  fs::remove_all(dir);
}

TEST(DamagedFilesCli, EvalRefusesDataFilesThatCrashHdf5) {
  const auto dir = work_dir("crash");
  for (const auto& name : {"fuzz-segv-local-heap", "fuzz-segv-accum-read"}) {
    const auto data = regression("hdf5-data", name);
    const auto o = run(eval_args(data, dir / "out.h5"));
    EXPECT_REFUSED(o, "data file '" + data + "' is damaged: reading it crashed the HDF5 library (signal 11");
    EXPECT_LT(o.seconds, 30);
  }
  fs::remove_all(dir);
}

TEST(DamagedFilesCli, EvalRefusesDamagedArchivesBeforeLibTorchReadsThem) {
  const auto dir = work_dir("zip");
  int tried = 0;
  for (const auto& e : fs::directory_iterator(regressions() / "torchscript")) {
    const auto name = e.path().filename().string();
    if (name.rfind("zip-", 0) != 0 && name.rfind("fuzz-zip-", 0) != 0) continue;
    if (name == "zip-not-a-model.pt") continue;  // a valid archive that is no model
    const auto o = run("eval --checkpoints '" + e.path().string() + "' --data '" + test::fixture("toy_linear.h5") +
                       "' --batch-size 2 --methods sgd --damping 0 --quiet --overwrite --out '" + (dir / "o.h5").string() + "'");
    EXPECT_REFUSED(o, "cannot load checkpoint '" + e.path().string() + "': not a readable PyTorch archive");
    ++tried;
  }
  EXPECT_GE(tried, 3);
  fs::remove_all(dir);
}

#undef EXPECT_REFUSED

}  // namespace fisheval::damaged_files_cli_test
