// libFuzzer target: result files (read_result_file), then a merge of the file with itself
// and its units, as `fisheval merge` and resume use them.
#include "fuzz_support.h"
#include "reports/results.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fisheval::fuzz::init();
  static fisheval::fuzz::GuardServer server([](const std::string& p) { (void)fisheval::read_result_file(p); });
  const auto path = fisheval::fuzz::as_file(data, size, "-results.h5");
  fisheval::fuzz::expect_input_error_only_guarded(server, data, size, path, "result file '" + path + "'", [&] {
    const auto r = fisheval::read_result_file(path);
    const auto merged = fisheval::merge_results({r, r}, {path, path});
    for (int64_t c = 0; c < r.info.num_checkpoints(); ++c) {
      for (int64_t b = 0; b < r.info.num_batches(); ++b) {
        if (r.is_done(c, b)) (void)r.unit(c, b);
      }
    }
    (void)merged.info.fingerprint();
  });
  return 0;
}
