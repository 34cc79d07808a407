// Joining the shard files of one run (fisheval merge).
#pragma once
#include <string>
#include <vector>

#include "reports/result_schema.h"

namespace fisheval {

// Joins shard files of one run into one; refuses files of different configurations.
ResultFile merge_results(const std::vector<ResultFile>& shards, const std::vector<std::string>& names);

}  // namespace fisheval
