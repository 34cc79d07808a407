// A checkpoint archive checked before LibTorch reads it. Checkpoints of both kinds are zip
// archives whose structure and pickles LibTorch trusts: a damaged one made LibTorch 1.13
// read freed memory (its zip reader) or fill 4 GB (its unpickler). So every loader of a
// checkpoint first checks the zip structure (zip_scan.h: offsets and sizes inside the
// file, records that do not overlap, sizes within FISHEVAL_MAX_LOAD_BYTES) and then,
// through LibTorch's reader, every pickle of it (pickle_scan.h).
#pragma once
#include <string>

namespace fisheval {

enum class ArchiveKind { kTorchScript, kNative };

// The kind of checkpoint archive at `path` (a TorchScript archive has a constants.pkl
// record), from its zip structure alone; throws InputError naming the file when the
// structure is damaged or the file is no zip archive.
ArchiveKind checkpoint_archive_kind(const std::string& path);

// The whole check (structure, then every pickle); throws InputError naming the file.
void check_checkpoint_archive(const std::string& path);

}  // namespace fisheval
