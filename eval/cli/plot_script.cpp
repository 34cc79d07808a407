#include "eval/cli/plot_script.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "base/atomic_file.h"
#include "base/error.h"
#include "base/method_info.h"
#include "eval/cli/cli.h"
#include "solvers/update_method.h"

extern char** environ;

namespace fisheval::cli {
namespace {

constexpr int kScriptBadInput = 2;       // plot_results.py: bad input
constexpr int kScriptMissingModule = 3;  // plot_results.py: numpy / h5py / matplotlib missing

const char* env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Runs argv[0] (looked up on PATH when it has no '/') and returns its exit status, or
// -errno when it could not be started.
int run(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (err != 0) return -err;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -errno;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

const std::string kInstallHint =
    "fisheval draws its figures with scripts/plot_results.py, which needs Python 3 with numpy, h5py and matplotlib "
    "(Debian: apt-get install python3 python3-numpy python3-h5py python3-matplotlib); set FISHEVAL_PYTHON to "
    "another interpreter that has them";

}  // namespace

PlotScript find_plot_script() {
  PlotScript p;
  p.python = env_or("FISHEVAL_PYTHON", FISHEVAL_PYTHON_DEFAULT);
  const std::string dir = env_or("FISHEVAL_SCRIPTS_DIR", FISHEVAL_SCRIPTS_DIR_DEFAULT);
  p.script = (std::filesystem::path(dir) / "plot_results.py").string();
  if (!std::filesystem::is_regular_file(p.script)) {
    throw Error(fmt::format("the plotting script '{}' does not exist; set FISHEVAL_SCRIPTS_DIR to the folder holding "
                            "fisheval's plot_results.py (the source tree's scripts/)",
                            p.script));
  }
  const int rc = run({p.python, p.script, "check"});
  if (rc < 0) {
    throw Error(fmt::format("cannot run Python '{}': {}. {}", p.python, std::strerror(-rc), kInstallHint));
  }
  if (rc == kScriptMissingModule) {
    throw Error(fmt::format("Python '{}' lacks a module the figures need (named above). {}", p.python, kInstallHint));
  }
  if (rc != 0) {
    throw Error(fmt::format("'{} {} check' failed (exit status {}). {}", p.python, p.script, rc, kInstallHint));
  }
  return p;
}

void run_plot_script(const PlotScript& plot, const std::vector<std::string>& args) {
  std::cout.flush();  // our output first, then the script's
  std::cerr.flush();
  // The method styles for the script: `fisheval methods --json` in a temporary file.
  const auto methods = (std::filesystem::temp_directory_path() / fmt::format("fisheval-methods-{}.json", ::getpid()))
                           .string();
  write_file_atomically(methods, methods_json(solvers::list_methods()));
  std::vector<std::string> argv{plot.python, plot.script};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--methods-json", methods});
  const int rc = run(argv);
  std::error_code ec;
  std::filesystem::remove(methods, ec);
  if (rc == 0) return;
  const auto what = fmt::format("{} {}", plot.script, fmt::join(args, " "));
  if (rc < 0) throw Error(fmt::format("cannot run Python '{}': {}", plot.python, std::strerror(-rc)));
  if (rc == kScriptBadInput) throw InputError(fmt::format("the plotting script refused its input ({})", what));
  throw Error(fmt::format("the plotting script failed with exit status {} ({})", rc, what));
}

}  // namespace fisheval::cli
