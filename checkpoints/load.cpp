#include "checkpoints/load.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "checkpoints/archive_check.h"
#include "base/error.h"
#include "checkpoints/native_model.h"

namespace fisheval {

// Both torch.jit.save and torch::pickle_save (native checkpoints) write zip archives;
// only a TorchScript archive has a constants.pkl record. Each loader checks the archive
// (archive_check.h) before LibTorch reads it.
std::unique_ptr<Model> load_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw InputError(fmt::format("cannot open checkpoint '{}': {}", path, std::strerror(errno)));
  }
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  if (in.gcount() < 4) throw InputError(fmt::format("checkpoint '{}' is empty or truncated", path));
  if (checkpoint_archive_kind(path) == ArchiveKind::kTorchScript) return load_torchscript_model(path);
  return load_native_model(path);
}

}  // namespace fisheval
