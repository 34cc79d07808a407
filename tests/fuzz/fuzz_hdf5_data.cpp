// libFuzzer target: HDF5 batch files (load_hdf5_dataset), then one batch of the data.
#include <torch/torch.h>

#include "checkpoints/dataset.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fisheval::fuzz::init();
  const auto path = fisheval::fuzz::as_file(data, size, "-data.h5");
  fisheval::fuzz::expect_input_error_only([&] {
    const auto ds = fisheval::load_hdf5_dataset(path);
    (void)ds->description();
    const auto batch = ds->get({0, ds->size() - 1});
    (void)batch.inputs.sum();
  });
  return 0;
}
