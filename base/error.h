// The exception types of fisheval. They live in the lowest folder (base/) so that every
// layer above can throw them; the command line turns them into a clear message and a
// non-zero exit status, and the sweep decides per type what becomes a NaN cell:
//   InputError      bad input from the user (files, shapes, flags, a method that does not
//                   apply to a checkpoint): the cells stay NaN with the reason recorded;
//   NumericalError  a numerical failure of one computation (a NaN damping from a non-finite
//                   scale): its cells are recorded as NaN, as are LibTorch's LinAlgError (a
//                   factorisation that did not converge) and OutOfMemoryError;
//   SingularSystemError  a singular system refused under the `error` policy: the run stops;
//   anything else   a programming error (a shape mismatch, a broken invariant): it stops
//                   the run with the message; results already written stay on disk.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

namespace fisheval {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  // An error about one setting, named in the library's words (its name in the stored
  // configuration: "singular", "memory_budget", "loss"...), with the value that would avoid
  // it where there is one. The library knows nothing of the command line; eval/ shows the
  // setting as its flag ("(--singular pinv)"): eval/error_text.h.
  Error(const std::string& what, std::string setting, std::string suggestion = "")
      : std::runtime_error(what), setting_(std::move(setting)), suggestion_(std::move(suggestion)) {}
  const std::string& setting() const { return setting_; }
  const std::string& suggestion() const { return suggestion_; }

 private:
  std::string setting_, suggestion_;
};

// Bad input from the user (files, shapes, flags): exit status 2 at the command line.
class InputError : public Error {
 public:
  using Error::Error;
};

// A numerical failure of one computation (recorded as NaN by the sweep).
class NumericalError : public Error {
 public:
  using Error::Error;
};

// A singular system refused under the `error` singular policy. Not a NumericalError: the
// user asked for the run to stop rather than record the pseudo-inverse, so it propagates;
// it is about the setting "singular", whose value "pinv" would solve it.
class SingularSystemError : public Error {
 public:
  explicit SingularSystemError(const std::string& what) : Error(what, "singular", "pinv") {}
};

}  // namespace fisheval
