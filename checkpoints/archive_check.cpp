#include "checkpoints/archive_check.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cstdio>

#include "base/error.h"
#include "base/limits.h"
#include "checkpoints/pickle_scan.h"
#include "checkpoints/zip_scan.h"

namespace fisheval {
namespace {

InputError damaged(const std::string& path, const std::string& why) {
  return InputError(fmt::format("cannot load checkpoint '{}': not a readable PyTorch archive (truncated, corrupt, or "
                                "a zip file PyTorch did not write): {}",
                                path, why.substr(0, why.find('\n'))));
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The zip structure; a file without any zip end record that does not start like a zip
// archive either is no checkpoint at all, and is named as such.
ZipScan checked_structure(const std::string& path) {
  auto scan = scan_zip_file(path, max_load_bytes());
  if (scan.problem.empty()) return scan;
  if (!scan.has_end_record) {
    char magic[2] = {0, 0};
    if (FILE* f = std::fopen(path.c_str(), "rb")) {
      if (std::fread(magic, 1, 2, f) != 2) magic[0] = 0;
      std::fclose(f);
    }
    if (magic[0] != 'P' || magic[1] != 'K') {
      throw InputError(fmt::format("cannot load checkpoint '{}': neither a TorchScript archive nor a native fisheval "
                                   "checkpoint (export PyTorch models with scripts/export_checkpoint.py)",
                                   path));
    }
  }
  throw damaged(path, scan.problem);
}

}  // namespace

ArchiveKind checkpoint_archive_kind(const std::string& path) {
  const auto scan = checked_structure(path);
  // LibTorch's reader names the archive after the folder of its first record.
  if (scan.records.empty()) throw damaged(path, "the archive is empty");
  const auto& first = scan.records.front().name;
  const auto constants = first.substr(0, first.find('/')) + "/constants.pkl";
  for (const auto& r : scan.records) {
    if (r.name == constants) return ArchiveKind::kTorchScript;
  }
  return ArchiveKind::kNative;
}

void check_checkpoint_archive(const std::string& path) {
  (void)checked_structure(path);
  // Every pickle (data.pkl, constants.pkl, code/*.debug_pkl): LibTorch's unpickler
  // trusts the lengths written in them.
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto& name : reader.getAllRecords()) {
      if (!ends_with(name, ".pkl") && !ends_with(name, ".debug_pkl")) continue;
      const auto record = reader.getRecord(name);
      const auto problem =
          pickle_problem(static_cast<const uint8_t*>(std::get<0>(record).get()), std::get<1>(record));
      if (!problem.empty()) throw damaged(path, fmt::format("record '{}' is damaged: {}", name, problem));
    }
  } catch (const c10::Error& e) {
    throw damaged(path, e.what_without_backtrace());
  }
}

}  // namespace fisheval
