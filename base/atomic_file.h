// The one way fisheval replaces a file: write a temporary file beside the target
// (TARGET.tmp, same folder so the rename stays on one file system), fsync it, rename it
// over the target, fsync the folder. At any moment the target is absent, the old file or
// the complete new one; a failed write leaves the target untouched and no temp file.
#pragma once
#include <string>
#include <string_view>

namespace fisheval {

// The temporary file a write of `path` goes through.
std::string atomic_temp_path(const std::string& path);

// Writes `bytes` to `path` atomically. Error "cannot write 'PATH': <why>; <hint>" on a
// write, fsync or rename failure (the hint says what the system reports: a full disk, the
// file-size limit).
void write_file_atomically(const std::string& path, std::string_view bytes);

// What every failed write of `path` says: Error "cannot write 'PATH': <why><hint>", the hint
// from write_failure_hint.
[[noreturn]] void throw_write_failure(const std::string& path, const std::string& why);

// Why a write into `folder` may have failed, from what the system says now: the free
// space ("; the disk holding 'F' is full (N bytes free)") and the file-size limit
// ("; the file-size limit (ulimit -f) is N bytes"); " (disk full or no permission?)"
// when neither applies.
std::string write_failure_hint(const std::string& folder);

}  // namespace fisheval
