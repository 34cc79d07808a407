// One table {value, text} per option enum: parse and to_string both come from it, so the
// names a user types, the names stored in result files and the names in messages agree.
//   constexpr EnumTable<Mode, 2> kModes{"damping mode", {{{Mode::kA, "absolute"}, {Mode::kB, "relative"}}}};
//   kModes.parse("relative")  → Mode::kB;  kModes.parse("x") → InputError "unknown damping mode 'x' (absolute, relative)"
//   kModes.text(Mode::kA)     → "absolute"
// Messages use the library's words (`what`); the command line adds the flag name.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "base/error.h"

namespace fisheval {

template <class E, std::size_t N>
struct EnumTable {
  const char* what;                                 // "damping mode": names the option in messages
  std::array<std::pair<E, const char*>, N> entries;  // in the order choices are listed

  E parse(std::string_view text) const {
    for (const auto& [value, name] : entries) {
      if (text == name) return value;
    }
    throw InputError("unknown " + std::string(what) + " '" + std::string(text) + "' (" + choices() + ")");
  }

  const char* text(E value) const {
    for (const auto& [v, name] : entries) {
      if (v == value) return name;
    }
    return "?";
  }

  // "a, b, c"
  std::string choices(std::string_view separator = ", ") const {
    std::string out;
    for (std::size_t i = 0; i < N; ++i) {
      if (i) out += separator;
      out += entries[i].second;
    }
    return out;
  }
};

}  // namespace fisheval
