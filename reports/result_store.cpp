#include "reports/result_store.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <tuple>

#include "base/atomic_file.h"
#include "base/error.h"
#include "checkpoints/crash_guard.h"
#include "reports/result_file.h"

namespace fs = std::filesystem;

namespace fisheval {

ResultStore::ResultStore(std::string out, RunInfo info, std::map<std::string, std::string> metadata, bool overwrite)
    : out_(std::move(out)), parts_(out_ + ".parts"), result_(empty_result(info)) {
  result_.metadata = std::move(metadata);
  const auto fingerprint = info.fingerprint();
  const auto parts_fp = fs::path(parts_) / "FINGERPRINT";
  if (fs::exists(out_) && !overwrite) {  // (with --overwrite it is replaced unread)
    bool same = false;
    ResultFile existing;
    // A file that crashes or hangs HDF5 is refused by name (InputError) here; any other
    // unreadable file is one of a different configuration.
    refuse_if_reading_fails({out_, fmt::format("result file '{}'", out_)}, [&] { (void)read_result_file_unguarded(out_); });
    try {
      existing = read_result_file_unguarded(out_);
      same = existing.info.fingerprint() == fingerprint;
    } catch (const Error&) {
      same = false;
    }
    if (same) {
      for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
        for (int64_t b = 0; b < info.num_batches(); ++b) {
          if (existing.is_done(c, b)) {
            result_.put(existing.unit(c, b));
            ++imported_;
          }
        }
      }
    } else {
      throw InputError(fmt::format("'{}' exists and holds results of a different configuration (or is not a fisheval "
                                   "result file); choose another --out or pass --overwrite",
                                   out_));
    }
  }
  if (fs::exists(parts_)) {
    std::string old;
    std::ifstream(parts_fp.string()) >> old;
    // An empty or missing FINGERPRINT (a run killed while creating the folder) is no
    // conflict: every part carries its own fingerprint and is checked below.
    if (!old.empty() && old != fingerprint) {
      if (!overwrite) {
        throw InputError(fmt::format("'{}' holds partial results of a different configuration; remove it or pass "
                                     "--overwrite",
                                     parts_));
      }
      fs::remove_all(parts_);
    }
  }
  fs::create_directories(parts_);
  write_file_atomically(parts_fp.string(), fingerprint + "\n");
  std::vector<std::tuple<int64_t, int64_t, std::string>> parts;
  for (const auto& entry : fs::directory_iterator(parts_)) {
    const auto name = entry.path().filename().string();
    long long c = -1, b = -1;
    char tail[8] = {0};
    if (std::sscanf(name.c_str(), "unit-%lld-%lld.%3s", &c, &b, tail) != 3 || std::string(tail) != "h5") continue;
    if (c < 0 || b < 0 || c >= info.num_checkpoints() || b >= info.num_batches() || done(c, b)) continue;
    parts.emplace_back(c, b, entry.path().string());
  }
  // A part's unit, or nothing when the part is unreadable (e.g. from a full disk) or of
  // another configuration: its unit is then recomputed.
  const auto read_part = [&](int64_t c, int64_t b, const std::string& path) -> std::optional<UnitResult> {
    try {
      auto file = h5::open_read(path);
      if (h5::read_string_attr(file, "fingerprint") != fingerprint) return std::nullopt;
      UnitResult u;
      u.checkpoint = c;
      u.batch = b;
      for (const auto& [mname, a] : result_.measures) u.values[mname] = h5::read_array(file, mname).data;
      if (file.attrExists("parameters")) u.parameters = h5::read_string_attr(file, "parameters");
      for (int64_t m = 0; m < info.num_methods(); ++m) {
        const auto key = fmt::format("method_status_{}", m);
        if (file.attrExists(key)) u.method_status[m] = h5::read_string_attr(file, key);
      }
      return u;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  };
  // Every part is read first in one guarded child (crash_guard.h): a part that crashes or
  // hangs HDF5 is refused by name.
  std::vector<GuardedFile> guarded;
  for (const auto& [c, b, path] : parts) guarded.push_back({path, fmt::format("resume part '{}'", path)});
  try {
    refuse_if_reading_fails(guarded, [&](size_t i) { (void)std::apply(read_part, parts[i]); });
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}; delete it to recompute its unit", e.what()));
  }
  for (const auto& [c, b, path] : parts) {
    if (auto u = read_part(c, b, path)) {
      result_.put(*u);
      ++imported_;
    }
  }
  for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
    bool all = true;
    for (int64_t b = 0; b < info.num_batches(); ++b) all = all && done(c, b);
    if (all) result_.checkpoint_status[c] = "ok";
  }
}

void ResultStore::put(const UnitResult& unit) {
  result_.put(unit);
  const auto path = (fs::path(parts_) / fmt::format("unit-{}-{}.h5", unit.checkpoint, unit.batch)).string();
  h5::write_file(path, [&](H5::H5File& file) {
    h5::write_attr(file, "fingerprint", result_.info.fingerprint());
    h5::write_attr(file, "parameters", unit.parameters);
    for (const auto& [m, status] : unit.method_status) h5::write_attr(file, fmt::format("method_status_{}", m), status);
    for (const auto& [name, a] : result_.measures) {
      const auto spec = measure_spec(name);
      h5::Array part{result_.info.unit_shape(spec.shape), unit.values.at(name)};
      h5::write_array(file, name, part, false);
    }
  });
}

void ResultStore::set_checkpoint_status(int64_t c, const std::string& status) { result_.checkpoint_status[c] = status; }

void ResultStore::finish() {
  write_result_file(out_, result_);
  std::error_code ec;
  fs::remove_all(parts_, ec);
}

}  // namespace fisheval
