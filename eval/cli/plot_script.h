// Running scripts/plot_results.py, the one plotting implementation, from the CLI.
//
// Python: $FISHEVAL_PYTHON, else the interpreter configured at build time
// (FISHEVAL_PYTHON, default the project environment's .venv/bin/python).
// Script: $FISHEVAL_SCRIPTS_DIR/plot_results.py, else the source tree's scripts/
// folder recorded at build time.
#pragma once
#include <string>
#include <vector>

namespace fisheval::cli {

struct PlotScript {
  std::string python;
  std::string script;
};

// Locates the interpreter and script and checks that Python runs and has numpy, h5py
// and matplotlib; throws fisheval::Error with what is missing and how to fix it.
PlotScript find_plot_script();

// Runs `python script args... --methods-json FILE` (FILE: the method registry as
// `fisheval methods --json` prints it, in a temporary file removed afterwards); its output
// goes to ours. Throws fisheval::Error (exit status 2 of the script: InputError) when it fails.
void run_plot_script(const PlotScript& plot, const std::vector<std::string>& args);

}  // namespace fisheval::cli
