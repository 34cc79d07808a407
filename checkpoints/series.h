// A checkpoint series: the checkpoints of one training run, each with its training
// step. From a manifest (CSV with a header naming at least `path` and `step`; paths
// relative to the manifest's folder), a folder (its manifest.csv, else every *.pt
// file), or a list of files (step = the last number in the file name, else the
// position in the list).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fisheval {

struct CheckpointEntry {
  std::string path;
  int64_t step = 0;
  std::map<std::string, std::string> extra;  // other manifest columns (epoch, accuracy, ...)
};

std::vector<CheckpointEntry> series_from_files(const std::vector<std::string>& paths);
std::vector<CheckpointEntry> load_series(const std::string& manifest_or_folder);

// Step parsed from a file name: the last run of digits in its stem, or -1.
int64_t step_from_filename(const std::string& path);

// Writes a manifest (CSV) for entries; paths are written relative to its folder when inside it.
void write_manifest(const std::string& manifest_path, const std::vector<CheckpointEntry>& entries);

}  // namespace fisheval
