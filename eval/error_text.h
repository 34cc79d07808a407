// How an error reads to the user. The library's errors name a setting in its own words
// (base/error.h: Error::setting(), e.g. "memory_budget", with a suggested value); the
// command line shows it as the flag that changes it: "… (--memory-budget)", "… (--singular
// pinv)". Used wherever eval/ reports an error: the command line's exit message, the
// sweep's warnings and the method_status it records.
#pragma once
#include <exception>
#include <string>

namespace fisheval {

// "--memory-budget" for "memory_budget".
std::string flag_of_setting(const std::string& setting);
// The whole message, with the flag appended when the error is about a setting.
std::string error_text(const std::exception& e);
// Its first line, likewise (for one-line warnings and statuses).
std::string error_line(const std::exception& e);

}  // namespace fisheval
