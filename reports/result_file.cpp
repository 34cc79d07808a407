#include "reports/result_file.h"

#include <fmt/format.h>

#include <cmath>

#include "base/error.h"
#include "checkpoints/crash_guard.h"

namespace fisheval {

void write_result_file(const std::string& path, const ResultFile& r) {
  h5::write_file(path, [&](H5::H5File& file) {
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
  });
}

ResultFile read_result_file_unguarded(const std::string& path) {
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
    info.settings = parse_settings_text(h5::read_string_attr(file, "settings"));
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

ResultFile read_result_file(const std::string& path) {
  refuse_if_reading_fails({path, fmt::format("result file '{}'", path)}, [&] { (void)read_result_file_unguarded(path); });
  return read_result_file_unguarded(path);
}

}  // namespace fisheval
