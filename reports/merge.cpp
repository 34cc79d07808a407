#include "reports/merge.h"

#include <fmt/format.h>

#include "base/error.h"

namespace fisheval {

ResultFile merge_results(const std::vector<ResultFile>& shards, const std::vector<std::string>& names) {
  if (shards.empty()) throw InputError("merge: no result files given");
  const auto fingerprint = shards[0].info.fingerprint();
  for (size_t i = 1; i < shards.size(); ++i) {
    if (shards[i].info.fingerprint() != fingerprint) {
      throw InputError(fmt::format("merge: '{}' and '{}' come from different configurations (fingerprints {} and {}); "
                                   "only shards of one run can be merged",
                                   names[0], names[i], fingerprint, shards[i].info.fingerprint()));
    }
  }
  ResultFile merged = empty_result(shards[0].info);
  merged.metadata = shards[0].metadata;
  merged.metadata.erase("shard");
  const auto& info = merged.info;
  for (size_t i = 0; i < shards.size(); ++i) {
    for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
      const auto& status = shards[i].checkpoint_status[c];
      if (!status.empty() && (merged.checkpoint_status[c].empty() || status != "ok")) merged.checkpoint_status[c] = status;
      for (int64_t b = 0; b < info.num_batches(); ++b) {
        if (shards[i].is_done(c, b) && !merged.is_done(c, b)) merged.put(shards[i].unit(c, b));
      }
    }
  }
  for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
    bool all = true;
    for (int64_t b = 0; b < info.num_batches(); ++b) all = all && merged.is_done(c, b);
    if (all) merged.checkpoint_status[c] = "ok";
  }
  return merged;
}

}  // namespace fisheval
