// libFuzzer target: TorchScript checkpoints (load_model), then what the sweep asks of a
// model before it runs: parameter names, trainable selection, finite check, layers.
// LibTorch itself is not instrumented (Debian's build): its code is exercised but gives
// the fuzzer no coverage feedback.
#include <torch/torch.h>

#include "checkpoints/load.h"
#include "checkpoints/model.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fisheval::fuzz::init();
  const auto path = fisheval::fuzz::as_file(data, size, "-model.pt");
  fisheval::fuzz::expect_input_error_only(data, size, [&] {
    auto model = fisheval::load_model(path);
    const auto params = fisheval::select_parameters(*model, "*");
    fisheval::check_finite_parameters(*model, params);
    (void)model->layers();
    (void)model->loss_hint();
  });
  return 0;
}
