// The shard split: contiguous blocks of (checkpoint, batch) units, covering every unit
// exactly once, sizes differing by at most one (units of a run cost the same), the same
// on every call.
#include <gtest/gtest.h>

#include <vector>

#include "eval/sweep.h"

namespace fisheval {
namespace {

TEST(ShardRange, ContiguousBalancedAndCovering) {
  for (int64_t total = 0; total <= 60; ++total) {
    for (int64_t count = 1; count <= 13; ++count) {
      int64_t next = 0, smallest = total + 1, largest = -1;
      for (int64_t i = 0; i < count; ++i) {
        const auto [begin, end] = shard_range(total, i, count);
        EXPECT_EQ(begin, next) << total << " units, shard " << i << " of " << count;
        EXPECT_LE(begin, end);
        next = end;
        smallest = std::min(smallest, end - begin);
        largest = std::max(largest, end - begin);
        EXPECT_EQ(shard_range(total, i, count), std::make_pair(begin, end));  // deterministic
      }
      EXPECT_EQ(next, total) << "every unit in exactly one shard";
      EXPECT_LE(largest - smallest, 1) << total << " units in " << count << " shards";
    }
  }
}

TEST(ShardRange, ExampleSplit) {
  // 3 checkpoints × 5 batches in 4 shards: 4, 4, 4, 3 units.
  EXPECT_EQ(shard_range(15, 0, 4), (std::pair<int64_t, int64_t>{0, 4}));
  EXPECT_EQ(shard_range(15, 1, 4), (std::pair<int64_t, int64_t>{4, 8}));
  EXPECT_EQ(shard_range(15, 2, 4), (std::pair<int64_t, int64_t>{8, 12}));
  EXPECT_EQ(shard_range(15, 3, 4), (std::pair<int64_t, int64_t>{12, 15}));
}

TEST(BatchSeed, DependsOnSeedAndBatchOnly) {
  EXPECT_EQ(batch_seed(7, 3), batch_seed(7, 3));
  EXPECT_NE(batch_seed(7, 3), batch_seed(7, 4));
  EXPECT_NE(batch_seed(7, 3), batch_seed(8, 3));
}

}  // namespace
}  // namespace fisheval
