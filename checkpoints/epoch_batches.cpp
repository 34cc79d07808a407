// Seeded shuffling and batching of training data (dataset.h: epoch_batches).
#include <fmt/format.h>

#include <random>

#include "checkpoints/dataset.h"
#include "base/error.h"

namespace fisheval {
namespace {

// Uniform integer in [0, n) by rejection (no modulo bias; independent of the library's
// distribution implementations).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

}  // namespace

std::vector<std::vector<int64_t>> epoch_batches(const std::vector<int64_t>& pool, int64_t batch_size, uint64_t seed,
                                                int64_t epoch) {
  if (batch_size < 1) throw InputError("the batch size must be positive");
  if (static_cast<int64_t>(pool.size()) < batch_size) {
    throw InputError(fmt::format("batch size {} exceeds the {} training samples", batch_size, pool.size()));
  }
  std::vector<int64_t> order(pool);
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(static_cast<uint64_t>(epoch) >> 32), 0x5eedu};
  std::mt19937_64 rng(seq);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);
  std::vector<std::vector<int64_t>> batches;
  for (size_t start = 0; start + batch_size <= order.size(); start += batch_size) {
    batches.emplace_back(order.begin() + start, order.begin() + start + batch_size);
  }
  return batches;
}

}  // namespace fisheval
