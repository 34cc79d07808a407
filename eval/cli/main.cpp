// fisheval: evaluate approximate natural-gradient updates against the exact natural
// gradient on real checkpoints. `fisheval COMMAND --help` documents each command.
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "base/error.h"
#include "eval/build_info.h"
#include "eval/error_text.h"
#include "eval/cli/cli.h"

namespace fisheval::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"eval", "score update methods on checkpoints × batches × dampings; write HDF5 results", run_eval},
      {"show", "print a summary table of a result file", run_show},
      {"merge", "join the shard files of one sharded run into one result file", run_merge},
      {"methods", "list the update methods", run_methods},
      {"train", "train a built-in model (mlp, cnn, vit-lora) with sgd/adamw/ef/sf/ief; write a checkpoint series",
       run_train},
      {"demo", "train on Fashion-MNIST, score every method on the stages, print the table", run_demo},
      {"bench", "time each stage of an evaluation as a multiple of one forward+backward pass", run_bench},
      {"report", "an HTML report with the paper's figures and tables of a result file", run_report},
      {"toy", "the toy least-squares problem of the paper's Figure 1: vector fields and trajectories", run_toy},
  };
  return list;
}

}  // namespace fisheval::cli

namespace {

void usage() {
  std::cout << "fisheval " << FISHEVAL_VERSION
            << " — how close are approximate natural-gradient updates to the exact one?\n\n"
               "usage: fisheval COMMAND [OPTIONS]   (fisheval COMMAND --help for its options)\n"
               "       fisheval --version           (versions of fisheval and LibTorch, CUDA, devices, BLAS, threads)\n\n"
               "commands:\n";
  for (const auto& c : fisheval::cli::commands()) std::cout << fmt::format("  {:<9} {}\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fisheval;
  // LibTorch's OpenMP threads spin while they wait for work (GNU OpenMP's default, read
  // when the library loads). On a machine shared with other processes (a loaded laptop,
  // a cluster node, tests run in parallel) a descheduled spinning thread stalls the others:
  // a small T5 unit took 88 s instead of 2 s. Unless the user chose a policy, run again
  // with OMP_WAIT_POLICY=passive set, which the freshly loaded library then reads.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: then go on as we are
  }
  cli::set_command_line(argc, argv);
  // Past a file-size limit (ulimit -f) a write must fail with EFBIG and a clear message,
  // not kill the process with SIGXFSZ before it can say why.
  std::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    usage();
    return argc < 2 ? cli::kExitBadInput : cli::kExitOk;
  }
  if (std::string(argv[1]) == "--version") {
    for (const auto& [key, value] : build_info()) std::cout << fmt::format("{:<17} {}\n", key, value);
    return cli::kExitOk;
  }
  const std::string name = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  for (const auto& c : cli::commands()) {
    if (c.name != name) continue;
    try {
      return c.run(args);
    } catch (const InputError& e) {
      std::cerr << "fisheval " << name << ": error: " << error_text(e) << "\n";
      return cli::kExitBadInput;
    } catch (const Error& e) {
      std::cerr << "fisheval " << name << ": error: " << error_text(e) << "\n";
      return cli::kExitFailure;
    } catch (const c10::Error& e) {
      const std::string what = e.what();
      std::cerr << "fisheval " << name << ": error (LibTorch): " << what.substr(0, what.find('\n')) << "\n";
      return cli::kExitFailure;
    } catch (const std::exception& e) {
      std::cerr << "fisheval " << name << ": error: " << e.what() << "\n";
      return cli::kExitFailure;
    }
  }
  std::cerr << "fisheval: unknown command '" << name << "'\n\n";
  usage();
  return cli::kExitBadInput;
}
