#include "checkpoints/series.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/atomic_file.h"
#include "base/error.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) {
    while (!cell.empty() && (cell.back() == '\r' || cell.back() == ' ')) cell.pop_back();
    while (!cell.empty() && cell.front() == ' ') cell.erase(cell.begin());
    cells.push_back(cell);
  }
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

std::vector<CheckpointEntry> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(fmt::format("cannot open manifest '{}'", path));
  std::string line;
  if (!std::getline(in, line)) throw InputError(fmt::format("manifest '{}' is empty", path));
  const auto header = split_csv_line(line);
  const auto col = [&](const std::string& name) -> int {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  const int path_col = col("path"), step_col = col("step");
  if (path_col < 0 || step_col < 0) {
    throw InputError(fmt::format("manifest '{}' must have a header with columns 'path' and 'step'", path));
  }
  const fs::path base = fs::path(path).parent_path();
  std::vector<CheckpointEntry> entries;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    const auto cells = split_csv_line(line);
    if (cells.size() != header.size()) {
      throw InputError(fmt::format("manifest '{}' line {}: {} cells, header has {}", path, line_no,
                                   cells.size(), header.size()));
    }
    CheckpointEntry e;
    fs::path p(cells[path_col]);
    e.path = (p.is_absolute() ? p : base / p).string();
    try {
      size_t used = 0;
      e.step = std::stoll(cells[step_col], &used);
      if (used != cells[step_col].size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      throw InputError(fmt::format("manifest '{}' line {}: step '{}' is not an integer", path, line_no,
                                   cells[step_col]));
    }
    for (size_t i = 0; i < header.size(); ++i) {
      if (static_cast<int>(i) != path_col && static_cast<int>(i) != step_col) e.extra[header[i]] = cells[i];
    }
    entries.push_back(std::move(e));
  }
  if (entries.empty()) throw InputError(fmt::format("manifest '{}' lists no checkpoints", path));
  return entries;
}

}  // namespace

int64_t step_from_filename(const std::string& path) {
  const std::string stem = fs::path(path).stem().string();
  int64_t end = static_cast<int64_t>(stem.size()) - 1;
  while (end >= 0 && !std::isdigit(static_cast<unsigned char>(stem[end]))) --end;
  if (end < 0) return -1;
  int64_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(stem[begin - 1]))) --begin;
  const std::string digits = stem.substr(begin, end - begin + 1);
  if (digits.size() > 18) return -1;
  return std::stoll(digits);
}

std::vector<CheckpointEntry> series_from_files(const std::vector<std::string>& paths) {
  std::vector<CheckpointEntry> entries;
  for (size_t i = 0; i < paths.size(); ++i) {
    const int64_t step = step_from_filename(paths[i]);
    entries.push_back(CheckpointEntry{paths[i], step >= 0 ? step : static_cast<int64_t>(i), {}});
  }
  return entries;
}

std::vector<CheckpointEntry> load_series(const std::string& manifest_or_folder) {
  const fs::path p(manifest_or_folder);
  if (!fs::exists(p)) throw InputError(fmt::format("series '{}' does not exist", manifest_or_folder));
  if (!fs::is_directory(p)) return read_manifest(p.string());
  if (fs::exists(p / "manifest.csv")) return read_manifest((p / "manifest.csv").string());
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(p)) {
    if (entry.is_regular_file() && entry.path().extension() == ".pt") files.push_back(entry.path().string());
  }
  if (files.empty()) {
    throw InputError(fmt::format("series folder '{}' has no manifest.csv and no *.pt files", manifest_or_folder));
  }
  auto entries = series_from_files(files);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.step != b.step ? a.step < b.step : a.path < b.path;
  });
  return entries;
}

void write_manifest(const std::string& manifest_path, const std::vector<CheckpointEntry>& entries) {
  std::set<std::string> extra_cols;
  for (const auto& e : entries) {
    for (const auto& kv : e.extra) extra_cols.insert(kv.first);
  }
  const fs::path base = fs::path(manifest_path).parent_path();
  std::ostringstream out;
  out << "path,step";
  for (const auto& c : extra_cols) out << "," << c;
  out << "\n";
  for (const auto& e : entries) {
    fs::path p(e.path);
    const auto rel = fs::relative(p, base.empty() ? fs::path(".") : base);
    const std::string shown = (!rel.empty() && rel.string().rfind("..", 0) != 0) ? rel.string() : p.string();
    out << shown << "," << e.step;
    for (const auto& c : extra_cols) {
      const auto it = e.extra.find(c);
      out << "," << (it == e.extra.end() ? "" : it->second);
    }
    out << "\n";
  }
  write_file_atomically(manifest_path, out.str());
}

}  // namespace fisheval
