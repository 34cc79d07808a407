#include "checkpoints/load.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "checkpoints/error.h"
#include "checkpoints/native_model.h"
#include "checkpoints/pickle_scan.h"

namespace fisheval {
namespace {

// Both torch.jit.save and torch::pickle_save (native checkpoints) write zip archives;
// only a TorchScript archive has a constants.pkl record. A file that starts like a zip
// archive but cannot be read as one is damaged (truncated, overwritten): say so here,
// before either loader reports something less direct. Every pickle of the archive
// (data.pkl, constants.pkl, code/*.debug_pkl) passes the bounds check of pickle_scan.h
// first: LibTorch's unpickler trusts the lengths written in them.
bool is_torchscript_archive(const std::string& path) {
  const auto damaged = [&](const std::string& why) {
    return InputError(fmt::format("cannot load checkpoint '{}': not a readable PyTorch archive (truncated, corrupt, "
                                  "or a zip file PyTorch did not write): {}",
                                  path, why.substr(0, why.find('\n'))));
  };
  const auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto& name : reader.getAllRecords()) {
      if (!ends_with(name, ".pkl") && !ends_with(name, ".debug_pkl")) continue;
      const auto record = reader.getRecord(name);
      const auto problem =
          pickle_problem(static_cast<const uint8_t*>(std::get<0>(record).get()), std::get<1>(record));
      if (!problem.empty()) throw damaged(fmt::format("record '{}' is damaged: {}", name, problem));
    }
    return reader.hasRecord("constants.pkl");
  } catch (const c10::Error& e) {
    throw damaged(e.what_without_backtrace());
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
