// fisheval methods: the registry, one line per method; with --json every field of each
// entry (base/method_info.h), which scripts/plot_results.py reads for its styles.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>

#include "base/method_info.h"
#include "eval/cli/cli.h"
#include "solvers/update_method.h"

namespace fisheval::cli {
namespace {

std::string methods_json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20) {
          out += fmt::format("\\u{:04x}", ch);
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string methods_json(const std::vector<MethodInfo>& methods) {
  std::string out = "[\n";
  for (size_t i = 0; i < methods.size(); ++i) {
    const auto& m = methods[i];
    std::vector<std::string> needs;
    for (const auto& n : need_names(m.needs)) needs.push_back(methods_json_string(n));
    out += fmt::format(
        "  {{\"name\": {}, \"summary\": {}, \"label\": {}, \"colour\": {}, \"linestyle\": {}, \"marker\": {}, "
        "\"linewidth\": {}, \"alpha\": {}, \"reference\": {}, \"records_residuals\": {}, \"needs\": [{}]}}{}\n",
        methods_json_string(m.name), methods_json_string(m.summary), methods_json_string(m.label),
        methods_json_string(m.colour), methods_json_string(m.linestyle), methods_json_string(m.marker), m.linewidth,
        m.alpha, m.reference, m.records_residuals, fmt::join(needs, ", "), i + 1 < methods.size() ? "," : "");
  }
  return out + "]\n";
}

int run_methods(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("json", po::bool_switch(),
                        "print every registry field of each method as a JSON array: name, summary, label, colour, "
                        "linestyle, marker, linewidth, alpha, reference, records_residuals, needs (list of names); "
                        "scripts/plot_results.py reads its styles from it");
  po::variables_map vm;
  if (!parse("methods", "[--json]", options, {}, args, vm)) return kExitOk;
  if (vm["json"].as<bool>()) {
    std::cout << methods_json(solvers::list_methods());
    return kExitOk;
  }
  for (const auto& m : solvers::list_methods()) std::cout << fmt::format("{:<12} {}\n", m.name, m.summary);
  return kExitOk;
}

}  // namespace fisheval::cli
