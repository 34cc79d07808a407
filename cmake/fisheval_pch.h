// Precompiled header: the LibTorch, HDF5 and fmt headers that most translation units use.
// Only compiled into the build; sources include what they use as usual.
#pragma once
#include <torch/torch.h>
#include <torch/script.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <string>
#include <vector>
