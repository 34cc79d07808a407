#include "eval/cli/cli.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "checkpoints/crash_guard.h"
#include "base/error.h"

namespace fisheval::cli {
namespace {
std::string g_command_line;

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \t\n'\"\\$`*?[]{}()<>|&;") == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string value_text(const boost::any& v) {
  if (v.type() == typeid(std::string)) return boost::any_cast<std::string>(v);
  if (v.type() == typeid(int64_t)) return std::to_string(boost::any_cast<int64_t>(v));
  if (v.type() == typeid(uint64_t)) return std::to_string(boost::any_cast<uint64_t>(v));
  if (v.type() == typeid(int)) return std::to_string(boost::any_cast<int>(v));
  if (v.type() == typeid(double)) return fmt::format("{}", boost::any_cast<double>(v));  // shortest round trip
  if (v.type() == typeid(bool)) return boost::any_cast<bool>(v) ? "true" : "false";
  throw std::logic_error("effective_config: an option of a type it cannot print");
}
}  // namespace

void set_command_line(int argc, char** argv) {
  std::vector<std::string> parts;
  for (int i = 0; i < argc; ++i) parts.push_back(shell_quote(argv[i]));
  g_command_line = fmt::format("{}", fmt::join(parts, " "));
}

std::string command_line() { return g_command_line; }

bool parse(const std::string& command, const std::string& usage, po::options_description& options,
           const po::positional_options_description& positional, const std::vector<std::string>& args,
           po::variables_map& vm) {
  po::options_description general("General");
  general.add_options()("help,h", "print this help and exit")(
      "config", po::value<std::string>(),
      "read options from an INI file (option = value, names as the flags without --); flags on the command "
      "line win");
  po::options_description all;
  all.add(options).add(general);
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: fisheval " << command << " " << usage << "\n\n" << all << "\n";
      return false;
    }
    if (vm.count("config")) {
      const auto path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw InputError(fmt::format("cannot open config file '{}'", path));
      po::store(po::parse_config_file(in, options, /*allow_unregistered=*/false), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw InputError(fmt::format("{} (see 'fisheval {} --help')", e.what(), command));
  }
  return true;
}

void add_read_timeout_option(po::options_description& options) {
  options.add_options()("read-timeout", po::value<double>(),
                        "seconds allowed for the separate process that reads each data, result or resume-part file "
                        "first (HDF5 crashes or loops forever on some damaged files), plus 1 s per 10 MB of the file; "
                        "past it the file is refused as damaged (exit 2); 0 = no limit (default: "
                        "FISHEVAL_READ_TIMEOUT, else 60)");
}

void apply_read_timeout(const po::variables_map& vm) {
  if (vm.count("read-timeout")) set_read_timeout(vm["read-timeout"].as<double>());
}

std::string effective_config(const po::variables_map& vm) {
  std::ostringstream out;
  for (const auto& [name, value] : vm) {
    if (name == "help" || name == "config" || value.empty()) continue;
    // A list option is one line per item: that is how an INI file gives it back.
    if (value.value().type() == typeid(std::vector<std::string>)) {
      for (const auto& item : value.as<std::vector<std::string>>()) out << name << " = " << item << "\n";
      continue;
    }
    out << name << " = " << value_text(value.value()) << "\n";
  }
  return out.str();
}

}  // namespace fisheval::cli
