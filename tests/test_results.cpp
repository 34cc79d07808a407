// reports/results: a result file round-trips; a store interrupted before finishing
// resumes from its unit files; merging shards equals the whole; configurations that
// differ are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "base/error.h"
#include "reports/results.h"

namespace fs = std::filesystem;

namespace fisheval::test {
namespace {

RunInfo small_info() {
  RunInfo info;
  info.checkpoint_paths = {"a.pt", "b.pt"};
  info.checkpoint_steps = {0, 100};
  info.batches = {{0, 1, 2}, {3, 4, 5}, {6, 7, 8}};
  info.methods = {"sgd", "ief", "ng-cg"};
  info.dampings = {0.0, 1e-3};
  info.cg_history_length = 4;
  info.settings = {{"loss", "cross-entropy"}, {"seed", "0"}};
  return info;
}

UnitResult unit(const RunInfo& info, int64_t c, int64_t b) {
  UnitResult u;
  u.checkpoint = c;
  u.batch = b;
  for (const auto& m : result_measures()) {
    std::vector<double> v(info.unit_size(m.shape));
    for (size_t i = 0; i < v.size(); ++i) v[i] = m.integer ? double((c + b + i) % 3) : 100.0 * c + 10.0 * b + 0.25 * i;
    u.values[m.name] = v;
  }
  return u;
}

std::string temp(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("fisheval-results-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

void expect_same_values(const ResultFile& a, const ResultFile& b) {
  ASSERT_EQ(a.info.fingerprint(), b.info.fingerprint());
  EXPECT_EQ(a.done, b.done);
  for (const auto& [name, arr] : a.measures) {
    const auto& other = b.measures.at(name);
    ASSERT_EQ(arr.shape, other.shape) << name;
    for (size_t i = 0; i < arr.data.size(); ++i) {
      if (std::isnan(arr.data[i])) {
        EXPECT_TRUE(std::isnan(other.data[i])) << name << "[" << i << "]";
      } else {
        EXPECT_EQ(arr.data[i], other.data[i]) << name << "[" << i << "]";
      }
    }
  }
}

TEST(Results, RoundTripThroughHdf5) {
  const auto info = small_info();
  auto r = empty_result(info);
  r.put(unit(info, 0, 1));
  r.put(unit(info, 1, 2));
  r.checkpoint_status = {"ok", "failed: corrupt"};
  r.metadata["command_line"] = "fisheval eval --x";
  const auto path = temp("roundtrip.h5");
  write_result_file(path, r);
  const auto back = read_result_file(path);
  expect_same_values(r, back);
  EXPECT_EQ(back.checkpoint_status, r.checkpoint_status);
  EXPECT_EQ(back.info.batches, info.batches);
  EXPECT_EQ(back.info.methods, info.methods);
  EXPECT_EQ(back.metadata.at("command_line"), "fisheval eval --x");
  EXPECT_FALSE(back.is_done(0, 0));
  EXPECT_TRUE(std::isnan(back.measures.at("gamma").data[0]));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Results, StoreResumesFromUnitFilesAfterAnInterruption) {
  const auto info = small_info();
  const auto path = temp("resume.h5");
  fs::remove(path);
  fs::remove_all(path + ".parts");
  {
    ResultStore store(path, info, {}, false);
    store.put(unit(info, 0, 0));
    store.put(unit(info, 1, 2));
    // no finish(): as if killed here
  }
  EXPECT_FALSE(fs::exists(path));
  ResultStore resumed(path, info, {}, false);
  EXPECT_EQ(resumed.imported_units(), 2);
  EXPECT_TRUE(resumed.done(0, 0));
  EXPECT_TRUE(resumed.done(1, 2));
  EXPECT_FALSE(resumed.done(0, 1));
  for (int64_t c = 0; c < 2; ++c) {
    for (int64_t b = 0; b < 3; ++b) {
      if (!resumed.done(c, b)) resumed.put(unit(info, c, b));
    }
  }
  resumed.finish();
  EXPECT_FALSE(fs::exists(path + ".parts"));
  auto whole = empty_result(info);
  for (int64_t c = 0; c < 2; ++c) {
    for (int64_t b = 0; b < 3; ++b) whole.put(unit(info, c, b));
  }
  expect_same_values(read_result_file(path), whole);
  // Running again imports everything from the finished file.
  ResultStore again(path, info, {}, false);
  EXPECT_EQ(again.imported_units(), 6);
  // Another configuration is refused unless overwrite.
  auto other = info;
  other.dampings = {1.0};
  EXPECT_THROW(ResultStore(path, other, {}, false), InputError);
  EXPECT_NO_THROW(ResultStore(path, other, {}, true));
}

TEST(Results, MergeOfShardsEqualsTheWholeAndRefusesOtherRuns) {
  const auto info = small_info();
  auto a = empty_result(info), b = empty_result(info), whole = empty_result(info);
  for (int64_t c = 0; c < 2; ++c) {
    for (int64_t bb = 0; bb < 3; ++bb) {
      ((c * 3 + bb) < 3 ? a : b).put(unit(info, c, bb));
      whole.put(unit(info, c, bb));
    }
  }
  const auto merged = merge_results({a, b}, {"a.h5", "b.h5"});
  expect_same_values(merged, whole);
  EXPECT_EQ(merged.checkpoint_status, (std::vector<std::string>{"ok", "ok"}));
  auto other_info = info;
  other_info.settings["seed"] = "1";
  try {
    merge_results({a, empty_result(other_info)}, {"a.h5", "c.h5"});
    FAIL() << "merged different configurations";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("different configurations"), std::string::npos);
  }
}

}  // namespace
}  // namespace fisheval::test
