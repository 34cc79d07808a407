// Shared command-line plumbing: every subcommand is `int run_<name>(args)`, options
// from Boost.Program_options with an optional INI config file (--config FILE, the
// same names as the flags; flags given on the command line win), and one error policy:
//   exit 0 success, 1 runtime failure, 2 bad input or usage, 3 finished but some
//   checkpoints failed.
#pragma once
#include <boost/program_options.hpp>

#include <string>
#include <vector>

#include "base/text.h"

namespace fisheval::cli {

namespace po = boost::program_options;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitPartial = 3;

struct Command {
  std::string name;
  std::string summary;
  int (*run)(const std::vector<std::string>& args);
};

const std::vector<Command>& commands();

// Parses args (after the subcommand name) with `options` (+ --help, --config) and
// `positional`. Returns false when --help was printed.
bool parse(const std::string& command, const std::string& usage, po::options_description& options,
           const po::positional_options_description& positional, const std::vector<std::string>& args,
           po::variables_map& vm);

// --read-timeout (eval, show, merge, report): the time limit of the guarded first read of
// each data, result or resume-part file (checkpoints/crash_guard.h); apply after parse().
void add_read_timeout_option(po::options_description& options);
void apply_read_timeout(const po::variables_map& vm);

// The effective configuration as INI text (every option with a value), for the results.
std::string effective_config(const po::variables_map& vm);

// The full command line, shell-quoted.
std::string command_line();
void set_command_line(int argc, char** argv);

int run_eval(const std::vector<std::string>& args);
int run_show(const std::vector<std::string>& args);
int run_merge(const std::vector<std::string>& args);
int run_methods(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
int run_report(const std::vector<std::string>& args);
int run_toy(const std::vector<std::string>& args);
int run_train(const std::vector<std::string>& args);
int run_demo(const std::vector<std::string>& args);

}  // namespace fisheval::cli

namespace fisheval::cli {
// OUT for shard I of N (0-based index): RESULTS.h5 → RESULTS.shard-I-of-N.h5 (N > 1).
std::string shard_file_name(const std::string& out, int64_t index, int64_t count);
}  // namespace fisheval::cli
