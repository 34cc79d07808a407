// What the program knows about an update method besides its code: the registry entry's
// data (solvers/registry.cpp fills it; reports and the command line read it). Plain data,
// no LibTorch, so that every folder may use it.
#pragma once
#include <string>
#include <vector>

namespace fisheval {

// What a method needs from the batch (for up-front checks and documentation).
enum Need : unsigned {
  kNeedsGradient = 1u << 0,
  kNeedsPerSampleGradients = 1u << 1,  // J and C = JJᵀ
  kNeedsSampledGradients = 1u << 2,    // Ĵ (sampled labels)
  kNeedsFisherProducts = 1u << 3,      // F v
  kNeedsDenseFisher = 1u << 4,         // F as a matrix (small P only)
  kNeedsLayerTaps = 1u << 5,           // layer inputs / output gradients (Kronecker, Shampoo)
};


// Everything the rest of the program knows about a method: its registry entry. The
// report, the plots (through `fisheval methods --json`), the demo and the tests read these
// fields and nothing else; a method is one file under solvers/methods/ and one line of
// solvers/methods/method_list.h.
struct MethodInfo {
  std::string name;               // the --methods name
  std::string summary;            // one line, for --help, `fisheval methods` and reports
  std::string label;              // legend label in reports and figures
  std::string colour;             // #rrggbb, the same in the HTML report and every figure
  std::string linestyle = "-";    // matplotlib line style of its curves
  std::string marker = "o";       // matplotlib marker of its curves ("" for none)
  double linewidth = 1.8;         // points; wide and pale (alpha < 1) to stay visible under a coinciding curve
  double alpha = 1.0;
  bool damped = true;             // false: the damping axis does not apply (sgd: one direction for every λ)
  bool reference = false;         // an exact natural-gradient solve: a candidate for γ/γ_ng's reference (direct
                                  // solves before iterative ones, i.e. those with records_residuals; then registry order)
  bool records_residuals = false; // iterative: its directions carry a residual history (cg_residual_history)
  unsigned needs = kNeedsGradient;  // Need flags: what it takes from the batch
};

// The names of the Need flags set in `needs`, in flag order ("gradient", "per-sample-gradients", ...).
std::vector<std::string> need_names(unsigned needs);

// The entries as `fisheval methods --json` prints them (what scripts/plot_results.py reads
// for its styles): a JSON array in registry order, every field of each entry, needs as the
// list of need_names.
std::string methods_json(const std::vector<MethodInfo>& methods);

}  // namespace fisheval
