#include "reports/report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/text.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {


// Mean and standard deviation (ddof = 1; 0 for one value) of the finite values.
MeanStd stats_of(const std::vector<double>& values) {
  MeanStd s;
  double sum = 0;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    sum += v;
    ++s.count;
  }
  if (s.count == 0) return s;
  s.mean = sum / static_cast<double>(s.count);
  double sq = 0;
  for (double v : values) {
    if (std::isfinite(v)) sq += (v - s.mean) * (v - s.mean);
  }
  s.std = s.count > 1 ? std::sqrt(sq / static_cast<double>(s.count - 1)) : 0.0;
  return s;
}

const h5::Array& measure(const ResultFile& r, const std::string& name) {
  const auto it = r.measures.find(name);
  if (it == r.measures.end()) throw InputError(fmt::format("the result file has no measure '{}'", name));
  return it->second;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{:.17g}", v) : "null"; }

std::string json_stats(const MeanStd& s) {
  return fmt::format("{{\"mean\": {}, \"std\": {}, \"count\": {}}}", json_number(s.mean), json_number(s.std), s.count);
}

// Short forms for the page (the exact numbers are in report.json).
std::string show_damping(double v) { return v == 0 ? "0" : fmt::format("{:.3g}", v); }
std::string show_stats(const MeanStd& s) {
  if (s.count == 0) return "—";
  return fmt::format("{:.4g} ± {:.2g}", s.mean, s.std);
}
std::string data_attrs(const MeanStd& s) {
  return fmt::format(" data-mean=\"{}\" data-std=\"{}\" data-count=\"{}\"", json_number(s.mean), json_number(s.std),
                     s.count);
}

std::string setting(const ResultFile& r, const std::string& key) {
  if (const auto it = r.info.settings.find(key); it != r.info.settings.end()) return it->second;
  if (const auto it = r.metadata.find(key); it != r.metadata.end()) return it->second;
  return "";
}

constexpr const char* kStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0 auto;
       max-width: 1260px; padding: 1.2em 1.6em 3em; color: #1b1b1b; line-height: 1.45; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #555; margin-top: 0; }
figure { margin: 1.2em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { color: #333; font-size: 0.92em; max-width: 70em; margin-top: 0.4em; }
figcaption b { color: #000; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #d9d9d9; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f4f6; }
td.name, th.name { text-align: left; }
td.best { font-weight: bold; }
td.wrap { white-space: normal; text-align: left; max-width: 60em; font-family: ui-monospace, monospace;
          font-size: 0.92em; word-break: break-all; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; vertical-align: -0.05em;
          border-radius: 2px; }
.note { color: #8a4b00; }
code { font-family: ui-monospace, monospace; font-size: 0.95em; }
details { margin: 0.6em 0; }
)";

// The registry entry of `name` among `methods` (nullptr for a name this build does not
// know, e.g. in an old file).
const MethodInfo* find_method_info(const std::vector<MethodInfo>& methods, const std::string& name) {
  for (const auto& m : methods) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

// The swatch colour of a method: its registry colour, neutral grey when unknown.
std::string method_colour(const std::vector<MethodInfo>& methods, const std::string& name) {
  const auto* m = find_method_info(methods, name);
  return m && !m->colour.empty() ? m->colour : "#999999";
}

// An exact natural-gradient solve (the quality table's floor); unknown names are not.
bool is_exact_reference(const std::vector<MethodInfo>& methods, const std::string& name) {
  const auto* m = find_method_info(methods, name);
  return m && m->reference;
}

// "the exact references": "A is", "A and B are", "A, B and C are" (registry order).
std::string references_phrase(const std::vector<MethodInfo>& methods) {
  std::vector<std::string> names;
  for (const auto& m : methods) {
    if (m.reference) names.push_back(m.name);
  }
  if (names.empty()) return "";
  if (names.size() == 1) return names[0] + " is";
  const auto last = names.back();
  names.pop_back();
  return fmt::format("{} and {} are", fmt::join(names, ", "), last);
}

std::string figures_html(const std::vector<ReportFigure>& figures) {
  std::string out;
  for (const auto& f : figures) {
    out += fmt::format("<figure id=\"{0}\"><img src=\"{0}\" alt=\"{1}\"><figcaption><b>{1}.</b> {2}</figcaption>"
                       "</figure>\n",
                       html_escape(f.file), html_escape(f.title), html_escape(f.caption));
  }
  return out;
}

std::string selection_heading(const QualityRow::At& at, const std::string& mode) {
  if (at.selection == "best") return "at each method's best damping (λ shown per cell)";
  return fmt::format("at the {} damping λ = {} ({})", at.selection == "smallest" ? "smallest" : "chosen",
                     show_damping(at.damping), mode);
}

}  // namespace

MeanStd cell_stats(const ResultFile& r, const std::string& name, int64_t c, int64_t m, int64_t j) {
  const auto& a = measure(r, name);
  const int64_t B = r.info.num_batches(), M = r.info.num_methods(), D = r.info.num_dampings();
  std::vector<double> values;
  for (int64_t b = 0; b < B; ++b) {
    if (r.is_done(c, b)) values.push_back(a.data[((c * B + b) * M + m) * D + j]);
  }
  return stats_of(values);
}

MeanStd batch_stats(const ResultFile& r, const std::string& name, int64_t c) {
  const auto& a = measure(r, name);
  const int64_t B = r.info.num_batches();
  std::vector<double> values;
  for (int64_t b = 0; b < B; ++b) {
    if (r.is_done(c, b)) values.push_back(a.data[c * B + b]);
  }
  return stats_of(values);
}

int64_t damping_index(const RunInfo& info, double value) {
  for (int64_t j = 0; j < info.num_dampings(); ++j) {
    const double d = info.dampings[j];
    if (d == value || (d != 0 && std::abs(d - value) <= 1e-9 * std::abs(d))) return j;
  }
  std::vector<std::string> axis;
  for (double d : info.dampings) axis.push_back(fmt::format("{:g}", d));
  throw InputError(fmt::format("damping {:g} is not on the file's damping axis ({})", value, fmt::join(axis, ", ")));
}

int64_t smallest_damping_index(const RunInfo& info) {
  if (info.dampings.empty()) throw InputError("the result file has an empty damping axis");
  return std::min_element(info.dampings.begin(), info.dampings.end()) - info.dampings.begin();
}

ReportTables make_report_tables(const ResultFile& r, int64_t chosen,
                                const std::function<bool(const std::string&)>& damped) {
  const auto& info = r.info;
  const int64_t C = info.num_checkpoints(), B = info.num_batches(), M = info.num_methods(), D = info.num_dampings();
  ReportTables t;
  t.smallest = smallest_damping_index(info);
  t.chosen = chosen;
  // Damping indices by increasing value (stable), for "ties: the smaller damping".
  std::vector<int64_t> order(D);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return info.dampings[a] < info.dampings[b]; });

  for (int64_t m = 0; m < M; ++m) {
    for (int64_t c = 0; c < C; ++c) {
      QualityRow row;
      row.method = info.methods[m];
      row.checkpoint = c;
      row.step = info.checkpoint_steps[c];
      const auto at = [&](const std::string& selection, int64_t j) {
        QualityRow::At a;
        a.selection = selection;
        a.damping_index = j;
        if (j >= 0) {
          a.damping = info.dampings[j];
          a.value = cell_stats(r, "gamma_rel_sgd", c, m, j);
        }
        return a;
      };
      row.at.push_back(at("smallest", t.smallest));
      if (chosen != t.smallest) row.at.push_back(at("chosen", chosen));
      // Best: the smallest mean over batches; ties go to the smaller damping.
      int64_t best = -1;
      double best_mean = 0;
      for (int64_t j : order) {
        const auto s = cell_stats(r, "gamma_rel_sgd", c, m, j);
        if (s.count > 0 && (best < 0 || s.mean < best_mean)) {
          best = j;
          best_mean = s.mean;
        }
      }
      row.at.push_back(at("best", best));
      t.quality.push_back(std::move(row));
    }
  }

  for (int64_t c = 0; c < C; ++c) {
    StageRow s;
    s.checkpoint = c;
    s.step = info.checkpoint_steps[c];
    s.path = info.checkpoint_paths[c];
    s.status = c < static_cast<int64_t>(r.checkpoint_status.size()) ? r.checkpoint_status[c] : "";
    for (int64_t b = 0; b < B; ++b) s.batches_done += r.is_done(c, b) ? 1 : 0;
    t.units_done += s.batches_done;
    s.loss = batch_stats(r, "loss", c);
    s.grad_norm = batch_stats(r, "grad_norm", c);
    s.grad_norm_imbalance = batch_stats(r, "grad_norm_imbalance", c);
    s.logit_grad_norm_imbalance = batch_stats(r, "logit_grad_norm_imbalance", c);
    t.stages.push_back(s);
  }

  // Time per method: Σ `seconds` over the computed directions of done units.
  const auto& seconds = measure(r, "seconds");
  for (int64_t m = 0; m < M; ++m) {
    TimingRow row;
    row.method = info.methods[m];
    const int64_t dampings_computed = damped(row.method) ? D : 1;
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t b = 0; b < B; ++b) {
        if (!r.is_done(c, b)) continue;
        for (int64_t j = 0; j < dampings_computed; ++j) {
          const double v = seconds.data[((c * B + b) * M + m) * D + j];
          if (!std::isfinite(v)) continue;
          row.total_seconds += v;
          ++row.directions;
        }
      }
    }
    if (row.directions > 0) row.mean_seconds = row.total_seconds / static_cast<double>(row.directions);
    t.timing.push_back(row);
  }
  if (r.measures.count("seconds_shared")) {
    const auto& shared = r.measures.at("seconds_shared");
    for (int64_t u = 0; u < C * B; ++u) {
      if (r.done[u] && std::isfinite(shared.data[u])) t.shared_seconds += shared.data[u];
    }
  }

  auto& run = t.run;
  run.emplace_back("command line", setting(r, "command_line"));
  run.emplace_back("fisheval version", setting(r, "fisheval_version"));
  run.emplace_back("LibTorch version", setting(r, "torch_version"));
  run.emplace_back("device", setting(r, "device"));
  const auto resolved = setting(r, "dtype_resolved");
  run.emplace_back("dtype", setting(r, "dtype") + (resolved.empty() ? "" : " → " + resolved));
  run.emplace_back("seed", setting(r, "seed"));
  run.emplace_back("data", setting(r, "data") + (setting(r, "data_description").empty()
                                                     ? ""
                                                     : " (" + setting(r, "data_description") + ")"));
  run.emplace_back("batches", fmt::format("{} per checkpoint of {} samples ({})", B, info.num_samples(),
                                          setting(r, "batch_sampling")));
  run.emplace_back("methods", fmt::format("{}", fmt::join(info.methods, ", ")));
  std::vector<std::string> dampings;
  for (double d : info.dampings) dampings.push_back(show_damping(d));
  run.emplace_back("damping", fmt::format("{} ({}{})", fmt::join(dampings, ", "), setting(r, "damping_mode"),
                                          setting(r, "damping_mode") == "relative"
                                              ? ", reference " + setting(r, "damping_reference")
                                              : ""));
  run.emplace_back("sampled labels per datum (K)", setting(r, "mc_samples"));
  run.emplace_back("natural-gradient reference", setting(r, "ng_reference"));
  run.emplace_back("loss", setting(r, "loss"));
  if (!setting(r, "shard").empty()) run.emplace_back("shard", setting(r, "shard"));
  return t;
}

std::vector<ReportFigure> read_figure_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("the plotting script wrote no figure list '{}'", path));
  std::vector<ReportFigure> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto a = line.find('\t');
    const auto b = a == std::string::npos ? a : line.find('\t', a + 1);
    if (b == std::string::npos) throw Error(fmt::format("'{}': malformed line '{}'", path, line));
    out.push_back({line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)});
  }
  return out;
}

std::string report_html(const ReportInput& in) {
  const auto& r = *in.result;
  const auto& t = *in.tables;
  const auto& info = r.info;
  const int64_t C = info.num_checkpoints(), M = info.num_methods();
  const auto mode = setting(r, "damping_mode").empty() ? std::string("absolute") : setting(r, "damping_mode");
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>" << html_escape(in.title) << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n";
  h << "<h1>" << html_escape(in.title) << "</h1>\n";
  h << fmt::format("<p class=\"sub\">Result file <code>{}</code> · {} checkpoint(s) × {} batch(es) of {} × {} "
                   "method(s) × {} damping value(s) ({} damping) · {} of {} units done · fisheval {}</p>\n",
                   html_escape(in.source), C, info.num_batches(), info.num_samples(), M, info.num_dampings(),
                   html_escape(mode), t.units_done, C * info.num_batches(), html_escape(setting(r, "fisheval_version")));
  h << "<p>The indicator γ(d) = √(dᵀFd) / |dᵀg| (Wu et al., NeurIPS 2024, Eq. 15) measures how close an update d "
       "is to the exact natural gradient: it is smallest for the natural gradient and invariant to the scale of d. "
       "γ/γ<sub>SGD</sub> below 1 means the method beats plain SGD; γ/γ<sub>NG</sub> = 1 means it is exact.</p>\n";
  for (const auto& s : t.stages) {
    if (!s.status.empty() && s.status != "ok") {
      h << fmt::format("<p class=\"note\">Checkpoint step {} ({}): {}</p>\n", s.step, html_escape(s.path),
                       html_escape(s.status));
    }
  }
  if (t.units_done < C * info.num_batches()) {
    h << "<p class=\"note\">Some (checkpoint, batch) units are not done (an interrupted run or one shard); the "
         "statistics use the finished ones only.</p>\n";
  }

  h << "<h2>Figures</h2>\n" << figures_html(in.figures);

  h << "<h2>Approximation quality γ/γ<sub>SGD</sub> per method and stage</h2>\n"
    << "<p>Mean ± standard deviation over batches, lower is better. The best approximate method of a stage is "
       "in bold"
    << (references_phrase(in.methods).empty()
            ? std::string()
            : " (" + references_phrase(in.methods) + " the exact natural gradient at λ = 0, the floor)")
    << ". Exact values: <a href=\"report.json\">report.json</a>, <a href=\"quality.csv\">quality.csv</a>.</p>\n";
  const size_t selections = t.quality.empty() ? 0 : t.quality.front().at.size();
  for (size_t k = 0; k < selections; ++k) {
    const auto& first = t.quality.front().at[k];
    h << "<h3>" << html_escape(selection_heading(first, mode)) << "</h3>\n<div class=\"scroll\"><table class=\"quality\" "
      << "data-selection=\"" << first.selection << "\">\n<tr><th class=\"name\">method</th>";
    for (int64_t c = 0; c < C; ++c) h << "<th>step " << info.checkpoint_steps[c] << "</th>";
    h << "</tr>\n";
    // The best (lowest) mean of each stage among the approximate methods (the exact
    // natural gradient, a registry `reference`, is always the lowest).
    std::vector<double> lowest(C, std::numeric_limits<double>::infinity());
    for (const auto& row : t.quality) {
      const auto& v = row.at[k].value;
      if (v.count > 0 && !is_exact_reference(in.methods, row.method)) {
        lowest[row.checkpoint] = std::min(lowest[row.checkpoint], v.mean);
      }
    }
    for (int64_t m = 0; m < M; ++m) {
      h << fmt::format("<tr data-method=\"{0}\"><td class=\"name\"><span class=\"swatch\" style=\"background:{1}\">"
                       "</span>{0}</td>",
                       html_escape(info.methods[m]), method_colour(in.methods, info.methods[m]));
      for (int64_t c = 0; c < C; ++c) {
        const auto& a = t.quality[m * C + c].at[k];
        const bool best =
            a.value.count > 0 && a.value.mean == lowest[c] && !is_exact_reference(in.methods, info.methods[m]);
        std::string text = show_stats(a.value);
        if (a.selection == "best" && a.damping_index >= 0) text += " @ λ=" + show_damping(a.damping);
        h << fmt::format("<td{} data-step=\"{}\" data-damping=\"{}\"{}>{}</td>", best ? " class=\"best\"" : "",
                         info.checkpoint_steps[c], json_number(a.damping), data_attrs(a.value), html_escape(text));
      }
      h << "</tr>\n";
    }
    h << "</table></div>\n";
  }

  h << "<h2>Checkpoints</h2>\n<div class=\"scroll\"><table class=\"stages\">\n<tr><th>step</th><th class=\"name\">"
       "checkpoint</th><th>status</th><th>batches done</th><th>loss Σ<sub>n</sub> l<sub>n</sub></th><th>‖g‖</th>"
       "<th>grad-norm imbalance</th><th>logit-grad-norm imbalance</th></tr>\n";
  for (const auto& s : t.stages) {
    h << fmt::format("<tr data-step=\"{}\"><td>{}</td><td class=\"name\">{}</td><td class=\"name\">{}</td><td>{}</td>",
                     s.step, s.step, html_escape(s.path), html_escape(s.status.empty() ? "not run" : s.status),
                     s.batches_done);
    for (const auto* v : {&s.loss, &s.grad_norm, &s.grad_norm_imbalance, &s.logit_grad_norm_imbalance}) {
      h << "<td" << data_attrs(*v) << ">" << html_escape(show_stats(*v)) << "</td>";
    }
    h << "</tr>\n";
  }
  h << "</table></div>\n";

  // Methods that did not apply to a checkpoint (method_status), with the recorded reason.
  std::string skipped;
  for (int64_t c = 0; c < r.info.num_checkpoints(); ++c) {
    for (int64_t m = 0; m < r.info.num_methods(); ++m) {
      const auto& why = r.method_status[c * r.info.num_methods() + m];
      if (why.empty()) continue;
      skipped += fmt::format("<tr><td>{}</td><td class=\"name\">{}</td><td class=\"name\">{}</td></tr>\n",
                             r.info.checkpoint_steps[c], html_escape(r.info.methods[m]), html_escape(why));
    }
  }
  if (!skipped.empty()) {
    h << "<h2>Methods skipped</h2>\n<p>These methods did not apply to a checkpoint, or would not fit the memory "
         "budget; their cells are NaN and the figures leave them out.</p>\n<div class=\"scroll\"><table "
         "class=\"skipped\">\n<tr><th>step</th><th class=\"name\">method</th><th class=\"name\">reason</th></tr>\n"
      << skipped << "</table></div>\n";
  }

  h << "<h2>Time per method</h2>\n<p>Wall-clock seconds for each direction and its indicator (<code>seconds</code>), "
       "summed over the finished units; an undamped method (sgd) is computed once per unit. Shared per-batch work "
       "(forward pass, gradients, Gram matrices): "
    << fmt::format("{:.3g}", t.shared_seconds) << " s in all.</p>\n"
    << "<table class=\"timing\">\n<tr><th class=\"name\">method</th><th>directions</th><th>total seconds</th>"
       "<th>mean seconds per direction</th></tr>\n";
  for (const auto& row : t.timing) {
    h << fmt::format("<tr data-method=\"{0}\" data-total=\"{2}\" data-mean=\"{3}\"><td class=\"name\"><span "
                     "class=\"swatch\" style=\"background:{4}\"></span>{0}</td><td>{1}</td><td>{5}</td><td>{6}</td></tr>\n",
                     html_escape(row.method), row.directions, json_number(row.total_seconds),
                     json_number(row.mean_seconds), method_colour(in.methods, row.method), fmt::format("{:.4g}", row.total_seconds),
                     row.directions ? fmt::format("{:.4g}", row.mean_seconds) : "—");
  }
  h << "</table>\n";

  h << "<h2>Run</h2>\n<table class=\"run\">\n";
  for (const auto& [label, value] : t.run) {
    h << "<tr><th class=\"name\">" << html_escape(label) << "</th><td class=\"wrap\">" << html_escape(value)
      << "</td></tr>\n";
  }
  h << "</table>\n<details><summary>All settings and attributes of the result file</summary>\n<table>\n";
  for (const auto& [k, v] : info.settings) {
    h << "<tr><th class=\"name\">" << html_escape(k) << "</th><td class=\"wrap\">" << html_escape(v) << "</td></tr>\n";
  }
  for (const auto& [k, v] : r.metadata) {
    h << "<tr><th class=\"name\">" << html_escape(k) << "</th><td class=\"wrap\">" << html_escape(v) << "</td></tr>\n";
  }
  h << "</table>\n</details>\n";

  if (!in.toy_figures.empty()) {
    h << "<h2>Background: why EF fails and iEF does not</h2>\n" << figures_html(in.toy_figures);
  }
  h << "<p class=\"sub\">Made by <code>" << html_escape(in.generated_by)
    << "</code>. Figures: scripts/plot_results.py (the same script makes them from any result file).</p>\n";
  h << "</body>\n</html>\n";
  return h.str();
}

std::string report_json(const ReportInput& in) {
  const auto& r = *in.result;
  const auto& t = *in.tables;
  const auto& info = r.info;
  std::ostringstream j;
  j << "{\n  \"source\": " << json_string(in.source) << ",\n  \"title\": " << json_string(in.title) << ",\n";
  j << "  \"damping_mode\": " << json_string(setting(r, "damping_mode")) << ",\n  \"dampings\": [";
  for (int64_t k = 0; k < info.num_dampings(); ++k) j << (k ? ", " : "") << json_number(info.dampings[k]);
  j << "],\n  \"methods\": [";
  for (int64_t k = 0; k < info.num_methods(); ++k) j << (k ? ", " : "") << json_string(info.methods[k]);
  j << "],\n  \"steps\": [";
  for (int64_t k = 0; k < info.num_checkpoints(); ++k) j << (k ? ", " : "") << info.checkpoint_steps[k];
  j << "],\n  \"smallest_damping\": " << json_number(info.dampings[t.smallest])
    << ",\n  \"chosen_damping\": " << json_number(info.dampings[t.chosen]) << ",\n  \"units_done\": " << t.units_done
    << ",\n  \"quality\": [\n";
  for (size_t i = 0; i < t.quality.size(); ++i) {
    const auto& q = t.quality[i];
    j << "    {\"method\": " << json_string(q.method) << ", \"checkpoint\": " << q.checkpoint << ", \"step\": " << q.step;
    for (const auto& a : q.at) {
      j << ", \"at_" << a.selection << "\": {\"damping_index\": " << a.damping_index
        << ", \"damping\": " << json_number(a.damping) << ", \"gamma_rel_sgd\": " << json_stats(a.value) << "}";
    }
    j << "}" << (i + 1 < t.quality.size() ? "," : "") << "\n";
  }
  j << "  ],\n  \"stages\": [\n";
  for (size_t i = 0; i < t.stages.size(); ++i) {
    const auto& s = t.stages[i];
    j << "    {\"checkpoint\": " << s.checkpoint << ", \"step\": " << s.step << ", \"path\": " << json_string(s.path)
      << ", \"status\": " << json_string(s.status) << ", \"batches_done\": " << s.batches_done
      << ", \"loss\": " << json_stats(s.loss) << ", \"grad_norm\": " << json_stats(s.grad_norm)
      << ", \"grad_norm_imbalance\": " << json_stats(s.grad_norm_imbalance)
      << ", \"logit_grad_norm_imbalance\": " << json_stats(s.logit_grad_norm_imbalance) << "}"
      << (i + 1 < t.stages.size() ? "," : "") << "\n";
  }
  j << "  ],\n  \"timing\": [\n";
  for (size_t i = 0; i < t.timing.size(); ++i) {
    const auto& row = t.timing[i];
    j << "    {\"method\": " << json_string(row.method) << ", \"directions\": " << row.directions
      << ", \"total_seconds\": " << json_number(row.total_seconds)
      << ", \"mean_seconds\": " << json_number(row.mean_seconds) << "}" << (i + 1 < t.timing.size() ? "," : "") << "\n";
  }
  j << "  ],\n  \"shared_seconds\": " << json_number(t.shared_seconds) << ",\n  \"run\": {";
  for (size_t i = 0; i < t.run.size(); ++i) {
    j << (i ? ", " : "") << "\n    " << json_string(t.run[i].first) << ": " << json_string(t.run[i].second);
  }
  j << "\n  },\n  \"metadata\": {";
  size_t n = 0;
  for (const auto* map : {&info.settings, &r.metadata}) {
    for (const auto& [k, v] : *map) j << (n++ ? ", " : "") << "\n    " << json_string(k) << ": " << json_string(v);
  }
  j << "\n  },\n  \"figures\": [";
  n = 0;
  for (const auto* list : {&in.figures, &in.toy_figures}) {
    for (const auto& f : *list) {
      j << (n++ ? ", " : "") << "\n    {\"file\": " << json_string(f.file) << ", \"title\": " << json_string(f.title)
        << ", \"caption\": " << json_string(f.caption) << "}";
    }
  }
  j << "\n  ]\n}\n";
  return j.str();
}

std::string quality_csv(const ReportInput& in) {
  std::ostringstream out;
  out << "method,step,selection,damping,mean,std,batches\n";
  for (const auto& q : in.tables->quality) {
    for (const auto& a : q.at) {
      const auto num = [](double v) { return std::isfinite(v) ? fmt::format("{:.17g}", v) : std::string("nan"); };
      out << q.method << "," << q.step << "," << a.selection << "," << num(a.damping) << "," << num(a.value.mean)
          << "," << num(a.value.std) << "," << a.value.count << "\n";
    }
  }
  return out.str();
}

void write_report(const std::string& dir, const ReportInput& in) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(fmt::format("cannot create the report folder '{}': {}", dir, ec.message()));
  write_file_atomically((fs::path(dir) / "report.json").string(), report_json(in));
  write_file_atomically((fs::path(dir) / "quality.csv").string(), quality_csv(in));
  write_file_atomically((fs::path(dir) / "index.html").string(), report_html(in));
}

}  // namespace fisheval
