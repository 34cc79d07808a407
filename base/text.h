// Small string helpers shared by every layer.
#pragma once
#include <string>
#include <vector>

namespace fisheval {

// The first line of a (possibly multi-line) message, e.g. an exception's what().
inline std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// `text` as a JSON string literal, quotes included (", \\ and control characters escaped).
std::string json_string(const std::string& text);

// "a,b c" → {"a", "b", "c"}: items separated by commas or spaces, empty ones dropped (the
// syntax of list-valued options).
std::vector<std::string> split_list(const std::string& text);

}  // namespace fisheval
