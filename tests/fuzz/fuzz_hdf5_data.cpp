// libFuzzer target: HDF5 batch files (read_data_file: the guarded first read, the real
// read and the checks of load_hdf5_dataset, without LibTorch), then the bytes of the first
// and last samples, as a batch reads them.
#include "checkpoints/hdf5_data_file.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fisheval::fuzz::init();
  static fisheval::fuzz::GuardServer server([](const std::string& p) { (void)fisheval::read_data_file(p); });
  const auto path = fisheval::fuzz::as_file(data, size, "-data.h5");
  fisheval::fuzz::expect_input_error_only_guarded(server, data, size, path, "data file '" + path + "'", [&] {
    const auto d = fisheval::read_data_file(path);
    std::vector<const fisheval::HostArray*> arrays{&d.targets};
    for (const auto& in : d.inputs) arrays.push_back(&in);
    if (d.inputs.empty() || d.inputs.size() != d.input_names.size()) std::abort();
    for (const auto* a : arrays) {
      uint64_t expect = a->element_size();
      for (auto s : a->shape) expect *= static_cast<uint64_t>(s);
      if (expect != a->bytes->size() || a->shape.empty() || a->shape[0] < 1) std::abort();  // shape and data agree
      const uint64_t sample = expect / static_cast<uint64_t>(a->shape[0]);
      volatile uint8_t first = sample ? (*a->bytes)[0] : 0, last = sample ? (*a->bytes)[expect - 1] : 0;
      (void)first;
      (void)last;
    }
  });
  return 0;
}
