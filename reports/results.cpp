#include "reports/results.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <tuple>

#include "base/numeric.h"
#include "checkpoints/crash_guard.h"
#include "base/error.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {

std::string format_double(double v) { return fmt::format("{:.17g}", v); }

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

// Flushes a file (or folder) to the disk; false when the system reports a failure.
bool fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// Why a write into `folder` may have failed, from what the system says now: free
// space and the file-size limit (ulimit -f).
std::string write_failure_hint(const std::string& folder) {
  std::string hint;
  struct statvfs fs_info {};
  if (::statvfs(folder.c_str(), &fs_info) == 0) {
    const auto free_bytes = static_cast<unsigned long long>(fs_info.f_bavail) * fs_info.f_frsize;
    if (free_bytes < (16ull << 20)) hint += fmt::format("; the disk holding '{}' is full ({} bytes free)", folder, free_bytes);
  }
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    hint += fmt::format("; the file-size limit (ulimit -f) is {} bytes", static_cast<unsigned long long>(limit.rlim_cur));
  }
  return hint.empty() ? " (disk full or no permission?)" : hint;
}

std::string settings_text(const std::map<std::string, std::string>& settings) {
  std::string text;
  for (const auto& [k, v] : settings) text += k + "=" + v + "\n";
  return text;
}

std::map<std::string, std::string> parse_settings(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

// Writes through a temp file in the same folder, fsync, rename, then fsync of the
// folder: at any moment `path` is either absent, the old file or the complete new one.
template <class Fn>
void write_atomically(const std::string& path, Fn&& write) {
  const std::string tmp = path + ".tmp";
  auto folder = fs::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  const auto fail = [&](const std::string& why) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error(fmt::format("cannot write '{}': {}{}", path, why, write_failure_hint(folder)));
  };
  try {
    write(tmp);
  } catch (const H5::Exception& e) {
    fail(e.getDetailMsg());
  } catch (const Error& e) {
    fail(e.what());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  if (!fsync_path(tmp)) fail(fmt::format("flushing '{}' to the disk failed: {}", tmp, std::strerror(errno)));
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail(fmt::format("cannot rename '{}': {}", tmp, ec.message()));
  fsync_path(folder);
}

}  // namespace

const std::vector<MeasureSpec>& result_measures() {
  using S = MeasureShape;
  static const std::vector<MeasureSpec> specs = {
      {"gamma", S::kCell, false, "indicator γ(d) = sqrt(dᵀFd)/|dᵀg| (the paper's Eq. 15); lower is better"},
      {"gamma_rel_sgd", S::kCell, false, "γ(d)/γ(g); below 1 beats SGD"},
      {"gamma_rel_ng", S::kCell, false,
       "γ(d)/γ(natural gradient at λ=0) when a converged reference exists (≥ 1; 1 is exact), else NaN"},
      {"cosine_sgd", S::kCell, false, "cos(d, g)"},
      {"update_norm", S::kCell, false, "‖d‖"},
      {"d_dot_g", S::kCell, false, "dᵀg"},
      {"d_fisher_d", S::kCell, false, "dᵀFd (exact Fisher / GGN)"},
      {"seconds", S::kCell, false, "wall-clock seconds for the direction and its indicator"},
      {"solve_status", S::kCell, true,
       "0 exact, 1 pseudo-inverse (rank-deficient system), 2 not converged (CG cap), 3 λ→0 limit, -1 not computed"},
      {"cg_iterations", S::kCell, true, "CG iterations (ng-cg), else 0"},
      {"cg_residual", S::kCell, false, "final relative residual of CG (ng-cg), else NaN"},
      {"damping_effective", S::kDamping, false, "λ used: the requested damping times the relative-damping scale"},
      {"loss", S::kBatch, false, "batch loss L = Σ_n l_n"},
      {"grad_norm", S::kBatch, false, "‖g‖"},
      {"gamma_sgd", S::kBatch, false, "γ(g)"},
      {"gamma_ng", S::kBatch, false, "γ of the natural-gradient reference at λ=0 (NaN without one)"},
      {"ng_converged", S::kBatch, true, "1 when the natural-gradient reference converged, 0 when not, -1 without one"},
      {"ng_iterations", S::kBatch, true, "iterations of the natural-gradient reference (ng-cg; 0 for ng-dense)"},
      {"ng_residual", S::kBatch, false,
       "final relative residual ‖g − F d‖/‖g‖ of the natural-gradient reference (ng-cg), else NaN"},
      {"grad_norm_imbalance", S::kBatch, false, "max_n‖∇θl_n‖ / min_n‖∇θl_n‖"},
      {"logit_grad_norm_imbalance", S::kBatch, false, "max_n‖∇z l_n‖ / min_n‖∇z l_n‖"},
      {"kept_samples", S::kBatch, true, "samples kept by the near-duplicate filter (all nonzero when it is off)"},
      {"num_params", S::kBatch, true, "P, the number of evaluated parameters (scalars; a tied weight counts once)"},
      {"seconds_shared", S::kBatch, false, "seconds of shared per-batch work (forward, gradients, Gram matrices)"},
      {"per_sample_loss", S::kSample, false, "l_n"},
      {"target_prob", S::kSample, false, "p(y_n|x_n) (geometric mean over target tokens; NaN for squared error)"},
      {"logit_grad_norm_sq", S::kSample, false, "s_n = ‖∇_{z_n} l_n‖²"},
      {"per_sample_grad_norm", S::kSample, false, "‖∇θ l_n‖"},
      {"cg_residual_history", S::kCgHistory, false, "ng-cg relative residual per iteration (first entry 1)"},
  };
  return specs;
}

const MeasureSpec& measure_spec(const std::string& name) {
  for (const auto& m : result_measures()) {
    if (m.name == name) return m;
  }
  throw Error("unknown measure " + name);
}

int64_t RunInfo::unit_size(MeasureShape shape) const {
  int64_t n = 1;
  for (auto s : unit_shape(shape)) n *= s;
  return n;
}

std::vector<int64_t> RunInfo::unit_shape(MeasureShape shape) const {
  switch (shape) {
    case MeasureShape::kCell: return {num_methods(), num_dampings()};
    case MeasureShape::kDamping: return {num_dampings()};
    case MeasureShape::kBatch: return {};
    case MeasureShape::kSample: return {num_samples()};
    case MeasureShape::kCgHistory: return {num_dampings(), cg_history_length};
  }
  return {};
}

std::string RunInfo::fingerprint() const {
  std::string text = "fisheval-results-v1\n";
  for (size_t i = 0; i < checkpoint_paths.size(); ++i) text += fmt::format("ckpt {} {}\n", checkpoint_paths[i], checkpoint_steps[i]);
  for (const auto& b : batches) text += fmt::format("batch {}\n", fmt::join(b, ","));
  text += fmt::format("methods {}\n", fmt::join(methods, ","));
  for (double d : dampings) text += "damping " + format_double(d) + "\n";
  text += fmt::format("cg_history {}\n", cg_history_length);
  text += settings_text(settings);
  return fmt::format("{:016x}", fnv1a(text));
}

ResultFile empty_result(const RunInfo& info) {
  ResultFile r;
  r.info = info;
  r.checkpoint_status.assign(info.num_checkpoints(), "");
  r.checkpoint_parameters.assign(info.num_checkpoints(), "");
  r.method_status.assign(info.num_checkpoints() * info.num_methods(), "");
  r.done.assign(info.num_checkpoints() * info.num_batches(), 0);
  for (const auto& m : result_measures()) {
    if (m.shape == MeasureShape::kCgHistory && info.cg_history_length == 0) continue;
    h5::Array a;
    a.shape = {info.num_checkpoints(), info.num_batches()};
    for (auto s : info.unit_shape(m.shape)) a.shape.push_back(s);
    a.data.assign(a.size(), m.integer ? -1.0 : kNaN);
    r.measures[m.name] = std::move(a);
  }
  return r;
}

UnitResult ResultFile::unit(int64_t c, int64_t b) const {
  UnitResult u;
  u.checkpoint = c;
  u.batch = b;
  u.parameters = checkpoint_parameters[c];
  for (int64_t m = 0; m < info.num_methods(); ++m) {
    const auto& status = method_status[c * info.num_methods() + m];
    if (!status.empty()) u.method_status[m] = status;
  }
  for (const auto& [name, a] : measures) {
    const int64_t n = info.unit_size(measure_spec(name).shape);
    const int64_t start = (c * info.num_batches() + b) * n;
    u.values[name].assign(a.data.begin() + start, a.data.begin() + start + n);
  }
  return u;
}

void ResultFile::put(const UnitResult& unit) {
  for (auto& [name, a] : measures) {
    const int64_t n = info.unit_size(measure_spec(name).shape);
    const auto it = unit.values.find(name);
    if (it == unit.values.end()) continue;
    if (static_cast<int64_t>(it->second.size()) != n) {
      throw Error(fmt::format("internal: measure {} has {} values, expected {}", name, it->second.size(), n));
    }
    std::copy(it->second.begin(), it->second.end(), a.data.begin() + (unit.checkpoint * info.num_batches() + unit.batch) * n);
  }
  done[unit.checkpoint * info.num_batches() + unit.batch] = 1;
  if (!unit.parameters.empty()) checkpoint_parameters[unit.checkpoint] = unit.parameters;
  for (const auto& [m, status] : unit.method_status) {
    if (m >= 0 && m < info.num_methods()) method_status[unit.checkpoint * info.num_methods() + m] = status;
  }
}

void write_result_file(const std::string& path, const ResultFile& r) {
  write_atomically(path, [&](const std::string& tmp) {
    auto file = h5::create_in_memory(tmp);
    const auto& info = r.info;
    h5::write_checkpoint_axis(file, info.checkpoint_paths, info.checkpoint_steps);
    h5::Array batch{{info.num_batches()}, {}};
    for (int64_t b = 0; b < info.num_batches(); ++b) batch.data.push_back(static_cast<double>(b));
    h5::write_array(file, "batch", batch, true, "batch axis (batch number)");
    h5::Array samples{{info.num_batches(), info.num_samples()}, {}};
    for (const auto& b : info.batches) {
      for (auto i : b) samples.data.push_back(static_cast<double>(i));
    }
    h5::write_array(file, "batch_samples", samples, true, "sample indices (rows of the data) of each batch");
    h5::write_strings(file, "method", info.methods, "method axis");
    h5::write_array(file, "damping", h5::Array{{info.num_dampings()}, info.dampings}, false,
                    "damping axis λ as requested (absolute, or relative factors; see damping_effective)");
    for (const auto& m : result_measures()) {
      const auto it = r.measures.find(m.name);
      if (it != r.measures.end()) h5::write_array(file, m.name, it->second, m.integer, m.description);
    }
    h5::Array done{{info.num_checkpoints(), info.num_batches()}, {}};
    for (auto v : r.done) done.data.push_back(v);
    h5::write_array(file, "done", done, true, "1 where the (checkpoint, batch) unit was computed");
    h5::write_strings(file, "checkpoint_status", r.checkpoint_status,
                      "\"ok\", \"failed: <reason>\", or \"\" when the checkpoint was not run in this file");
    h5::write_strings(file, "checkpoint_parameters", r.checkpoint_parameters,
                      "the evaluated parameters of each checkpoint as JSON: [{\"name\", \"shape\", \"aliases\" (tied "
                      "weights)}, ...]; \"\" when the checkpoint was not run in this file");
    h5::write_strings(file, "method_status", r.method_status,
                      "per checkpoint and method: \"\" when it ran, \"skipped: <reason>\" when it does not apply or "
                      "would not fit (its cells are NaN)",
                      {info.num_checkpoints(), info.num_methods()});
    h5::write_attr(file, "settings", settings_text(info.settings));
    for (const auto& [k, v] : info.settings) h5::write_attr(file, k, v);
    h5::write_attr(file, "fingerprint", info.fingerprint());
    h5::write_attr(file, "cg_history_length", info.cg_history_length);
    for (const auto& [k, v] : r.metadata) {
      if (!info.settings.count(k) && k != "settings" && k != "fingerprint") h5::write_attr(file, k, v);
    }
    h5::save(file, tmp);
    file.close();
  });
}

namespace {

ResultFile read_result_file_here(const std::string& path) {
  auto file = h5::open_read(path);
  try {
    ResultFile r;
    auto& info = r.info;
    h5::read_checkpoint_axis(file, info.checkpoint_paths, info.checkpoint_steps);
    info.methods = h5::read_strings(file, "method");
    info.dampings = h5::read_array(file, "damping").data;
    const auto samples = h5::read_array(file, "batch_samples");
    if (samples.shape.size() != 2) throw InputError(fmt::format("'{}': dataset batch_samples must be 2-d", path));
    for (int64_t b = 0; b < samples.shape.at(0); ++b) {
      std::vector<int64_t> idx;
      for (int64_t n = 0; n < samples.shape.at(1); ++n) {
        // A sample index: a whole number in [0, 2⁵³] (the double it is read as holds it
        // exactly); anything else, converted, would be undefined (found by fuzz_results).
        const double v = samples.data[b * samples.shape[1] + n];
        if (!(v >= 0 && v <= 9007199254740992.0) || v != std::floor(v)) {
          throw InputError(fmt::format("'{}': dataset batch_samples holds {}, which is no sample index", path, v));
        }
        idx.push_back(static_cast<int64_t>(v));
      }
      info.batches.push_back(idx);
    }
    info.settings = parse_settings(h5::read_string_attr(file, "settings"));
    if (file.attrExists("cg_history_length")) {
      auto attr = file.openAttribute("cg_history_length");
      attr.read(H5::PredType::NATIVE_INT64, &info.cg_history_length);
    }
    const auto fingerprint = h5::read_string_attr(file, "fingerprint");
    if (fingerprint != info.fingerprint()) {
      throw InputError(fmt::format("'{}' is inconsistent: its configuration does not match its fingerprint", path));
    }
    if (info.checkpoint_steps.size() != info.checkpoint_paths.size()) {
      throw InputError(fmt::format("'{}': the checkpoint axis is inconsistent", path));
    }
    r.checkpoint_status = h5::read_strings(file, "checkpoint_status");
    if (static_cast<int64_t>(r.checkpoint_status.size()) != info.num_checkpoints()) {
      throw InputError(fmt::format("'{}': dataset checkpoint_status has {} entries for {} checkpoints", path,
                                   r.checkpoint_status.size(), info.num_checkpoints()));
    }
    r.checkpoint_parameters = h5::read_strings(file, "checkpoint_parameters");
    if (static_cast<int64_t>(r.checkpoint_parameters.size()) != info.num_checkpoints()) {
      throw InputError(fmt::format("'{}': dataset checkpoint_parameters has {} entries for {} checkpoints", path,
                                   r.checkpoint_parameters.size(), info.num_checkpoints()));
    }
    r.method_status = h5::read_strings(file, "method_status", {info.num_checkpoints(), info.num_methods()});
    if (info.cg_history_length < 0 || info.cg_history_length > (1 << 20)) {
      throw InputError(fmt::format("'{}': attribute cg_history_length is out of range", path));
    }
    for (const auto& m : result_measures()) {
      if (m.shape == MeasureShape::kCgHistory && info.cg_history_length == 0) continue;
      auto a = h5::read_array(file, m.name);
      std::vector<int64_t> expect{info.num_checkpoints(), info.num_batches()};
      for (auto s : info.unit_shape(m.shape)) expect.push_back(s);
      if (a.shape != expect) throw InputError(fmt::format("'{}': dataset {} has the wrong shape", path, m.name));
      r.measures[m.name] = std::move(a);
    }
    const auto done = h5::read_array(file, "done");
    for (double v : done.data) r.done.push_back(v != 0 ? 1 : 0);
    if (static_cast<int64_t>(r.done.size()) != info.num_checkpoints() * info.num_batches()) {
      throw InputError(fmt::format("'{}': dataset done has the wrong shape", path));
    }
    const int n_attrs = file.getNumAttrs();
    for (int i = 0; i < n_attrs; ++i) {
      auto attr = file.openAttribute(static_cast<unsigned>(i));
      const auto name = attr.getName();
      if (attr.getDataType().getClass() == H5T_STRING && !info.settings.count(name) && name != "settings" &&
          name != "fingerprint") {
        r.metadata[name] = h5::read_string_attr(file, name);
      }
    }
    return r;
  } catch (const H5::Exception& e) {
    throw InputError(fmt::format("cannot read result file '{}': {}", path, e.getDetailMsg()));
  }
}

}  // namespace

ResultFile read_result_file(const std::string& path) {
  refuse_if_reading_fails({path, fmt::format("result file '{}'", path)}, [&] { (void)read_result_file_here(path); });
  return read_result_file_here(path);
}

ResultFile merge_results(const std::vector<ResultFile>& shards, const std::vector<std::string>& names) {
  if (shards.empty()) throw InputError("merge: no result files given");
  const auto fingerprint = shards[0].info.fingerprint();
  for (size_t i = 1; i < shards.size(); ++i) {
    if (shards[i].info.fingerprint() != fingerprint) {
      throw InputError(fmt::format("merge: '{}' and '{}' come from different configurations (fingerprints {} and {}); "
                                   "only shards of one run can be merged",
                                   names[0], names[i], fingerprint, shards[i].info.fingerprint()));
    }
  }
  ResultFile merged = empty_result(shards[0].info);
  merged.metadata = shards[0].metadata;
  merged.metadata.erase("shard");
  const auto& info = merged.info;
  for (size_t i = 0; i < shards.size(); ++i) {
    for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
      const auto& status = shards[i].checkpoint_status[c];
      if (!status.empty() && (merged.checkpoint_status[c].empty() || status != "ok")) merged.checkpoint_status[c] = status;
      for (int64_t b = 0; b < info.num_batches(); ++b) {
        if (shards[i].is_done(c, b) && !merged.is_done(c, b)) merged.put(shards[i].unit(c, b));
      }
    }
  }
  for (int64_t c = 0; c < info.num_checkpoints(); ++c) {
    bool all = true;
    for (int64_t b = 0; b < info.num_batches(); ++b) all = all && merged.is_done(c, b);
    if (all) merged.checkpoint_status[c] = "ok";
  }
  return merged;
}

// ---------------------------------------------------------------------------------------------

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
    refuse_if_reading_fails({out_, fmt::format("result file '{}'", out_)}, [&] { (void)read_result_file_here(out_); });
    try {
      existing = read_result_file_here(out_);
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
  {
    const auto tmp = parts_fp.string() + ".tmp";
    std::ofstream fp(tmp);
    fp << fingerprint << "\n";
    if (!fp.flush()) throw Error(fmt::format("cannot write to '{}'{}", parts_, write_failure_hint(parts_)));
    fp.close();
    fs::rename(tmp, parts_fp);
  }
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
  write_atomically(path, [&](const std::string& tmp) {
    auto file = h5::create_in_memory(tmp);
    h5::write_attr(file, "fingerprint", result_.info.fingerprint());
    h5::write_attr(file, "parameters", unit.parameters);
    for (const auto& [m, status] : unit.method_status) h5::write_attr(file, fmt::format("method_status_{}", m), status);
    for (const auto& [name, a] : result_.measures) {
      const auto spec = measure_spec(name);
      h5::Array part{result_.info.unit_shape(spec.shape), unit.values.at(name)};
      h5::write_array(file, name, part, false);
    }
    h5::save(file, tmp);
    file.close();
  });
}

void ResultStore::set_checkpoint_status(int64_t c, const std::string& status) { result_.checkpoint_status[c] = status; }

void ResultStore::finish() {
  write_result_file(out_, result_);
  std::error_code ec;
  fs::remove_all(parts_, ec);
}

}  // namespace fisheval
