// libFuzzer target: the zip structure check of checkpoints (zip_scan.h), on the bytes in
// memory and on them as a file (both must agree), and, for an accepted archive, what
// LibTorch's reader relies on, checked here independently: every record's local header and
// data inside the bytes before the central directory, no two records sharing a byte.
#include <algorithm>
#include <vector>

#include "checkpoints/zip_scan.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kLimit = 64 << 20;
  const auto memory = fisheval::scan_zip(data, size, kLimit);
  const auto file = fisheval::scan_zip_file(fisheval::fuzz::as_file(data, size, "-archive.zip"), kLimit);
  if (memory.problem != file.problem || memory.has_end_record != file.has_end_record) std::abort();
  if (!memory.problem.empty()) return 0;
  if (memory.records.size() != file.records.size()) std::abort();
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [local header, end of data)
  for (const auto& r : memory.records) {
    if (r.data_offset < r.header_offset + 30 + r.name.size() || r.data_offset > size ||
        r.compressed_size > size - r.data_offset || r.size > kLimit) {
      std::abort();
    }
    if (r.method == 0 && r.size != r.compressed_size) std::abort();
    spans.emplace_back(r.header_offset, r.data_offset + r.compressed_size);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i - 1].second > spans[i].first) std::abort();
  }
  return 0;
}
