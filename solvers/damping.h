// Damping policies (docs/DEFINITIONS.md): λ absolute, or relative to one reference scale shared
// by every method of a batch:
//   per-sample : max_n ‖∇θ l_n‖² (the largest diagonal entry of C = JJᵀ)
//   sf         : the largest diagonal entry of the sampled Gram matrix ĴĴᵀ
//                (what the authors' code does for a negative λ).
#pragma once
#include <string>
#include <vector>

#include "base/enum_table.h"

namespace fisheval::solvers {

class BatchState;

enum class DampingMode { kAbsolute, kRelative };
enum class DampingReference { kPerSample, kSampled };

inline constexpr EnumTable<DampingMode, 2> kDampingModes{
    "damping mode", {{{DampingMode::kAbsolute, "absolute"}, {DampingMode::kRelative, "relative"}}}};
inline constexpr EnumTable<DampingReference, 2> kDampingReferences{
    "damping reference", {{{DampingReference::kPerSample, "per-sample"}, {DampingReference::kSampled, "sf"}}}};

inline DampingMode parse_damping_mode(const std::string& name) { return kDampingModes.parse(name); }
inline DampingReference parse_damping_reference(const std::string& name) { return kDampingReferences.parse(name); }
inline std::string to_string(DampingMode mode) { return kDampingModes.text(mode); }
inline std::string to_string(DampingReference reference) { return kDampingReferences.text(reference); }

// The factor λ is multiplied by: 1 in absolute mode, the reference scale otherwise.
double damping_scale(DampingMode mode, DampingReference reference, BatchState& state);

// "START:STOP:COUNT" → COUNT values log-spaced from START to STOP (inclusive); InputError
// naming the damping grid when malformed.
std::vector<double> log_grid(const std::string& spec);
// "1e-3,1e-2,0" → values.
std::vector<double> parse_damping_list(const std::string& spec);

}  // namespace fisheval::solvers
