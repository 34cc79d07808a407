// The one exception type of fisheval. It lives in the lowest layer (checkpoints/)
// so that every layer above can throw it; the command line turns it into a clear
// message and a non-zero exit status.
#pragma once
#include <stdexcept>
#include <string>

namespace fisheval {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Bad input from the user (files, shapes, flags): exit status 2 at the command line.
class InputError : public Error {
 public:
  explicit InputError(const std::string& what) : Error(what) {}
};

}  // namespace fisheval
