// libFuzzer target: IDX files (read_idx), raw or gzip-compressed.
#include "checkpoints/dataset.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fisheval::fuzz::init();
  const auto path = fisheval::fuzz::as_file(data, size, "-images.idx");
  fisheval::fuzz::expect_input_error_only(data, size, [&] {
    const auto idx = fisheval::read_idx(path);
    uint64_t count = 1;
    for (auto d : idx.dims) count *= static_cast<uint64_t>(d);
    if (count != idx.data.size()) std::abort();  // the header and the data must agree
  });
  return 0;
}
