#include "eval/error_text.h"

#include <algorithm>

#include "base/error.h"
#include "base/text.h"

namespace fisheval {
namespace {

std::string with_flag(std::string text, const std::exception& e) {
  const auto* error = dynamic_cast<const Error*>(&e);
  if (!error || error->setting().empty()) return text;
  text += " (" + flag_of_setting(error->setting());
  if (!error->suggestion().empty()) text += " " + error->suggestion();
  return text + ")";
}

}  // namespace

std::string flag_of_setting(const std::string& setting) {
  std::string flag = "--" + setting;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::string error_text(const std::exception& e) { return with_flag(e.what(), e); }

std::string error_line(const std::exception& e) { return with_flag(first_line(e.what()), e); }

}  // namespace fisheval
