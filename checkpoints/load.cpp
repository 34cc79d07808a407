#include "checkpoints/load.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "checkpoints/error.h"
#include "checkpoints/native_model.h"

namespace fisheval {
namespace {

// Both torch.jit.save and torch::pickle_save (native checkpoints) write zip archives;
// only a TorchScript archive has a constants.pkl record. A file that starts like a zip
// archive but cannot be read as one is damaged (truncated, overwritten): say so here,
// before either loader reports something less direct.
bool is_torchscript_archive(const std::string& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    return reader.hasRecord("constants.pkl");
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw InputError(fmt::format("cannot load checkpoint '{}': not a readable PyTorch archive (truncated, corrupt, "
                                 "or a zip file PyTorch did not write): {}",
                                 path, what.substr(0, what.find('\n'))));
  }
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw InputError(fmt::format("cannot open checkpoint '{}': {}", path, std::strerror(errno)));
  }
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  if (in.gcount() < 4) throw InputError(fmt::format("checkpoint '{}' is empty or truncated", path));
  if (magic[0] == 'P' && magic[1] == 'K' && is_torchscript_archive(path)) return load_torchscript_model(path);
  return load_native_model(path);
}

}  // namespace fisheval
