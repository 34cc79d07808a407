// Flags shared by `fisheval train` and `fisheval demo`: the built-in model's
// configuration and the optimiser.
#pragma once
#include "eval/cli/cli.h"
#include "eval/trainer.h"

namespace fisheval::cli {

po::options_description model_options();
void apply_model_options(const po::variables_map& vm, TrainOptions& o);

po::options_description optimiser_options();
void apply_optimiser_options(const po::variables_map& vm, TrainOptions& o);

// "128,64" → {128, 64}; InputError naming `flag` otherwise.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag);

}  // namespace fisheval::cli
