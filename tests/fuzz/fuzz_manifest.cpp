// libFuzzer target: checkpoint-series manifests (CSV with path, step, ...).
#include "checkpoints/series.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fisheval::fuzz::init();
  const auto path = fisheval::fuzz::as_file(data, size, "-manifest.csv");
  fisheval::fuzz::expect_input_error_only(data, size, [&] {
    const auto entries = fisheval::load_series(path);
    if (entries.empty()) std::abort();  // a manifest without checkpoints must be refused
    for (const auto& e : entries) (void)fisheval::step_from_filename(e.path);
  });
  return 0;
}
