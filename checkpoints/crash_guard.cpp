#include "checkpoints/crash_guard.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "checkpoints/error.h"

namespace fisheval {

void refuse_if_reading_crashes(const std::string& what, const std::function<void()>& read) {
  const pid_t child = ::fork();
  if (child < 0) return;  // no probe possible (e.g. a process limit): read as usual
  if (child == 0) {
    try {
      read();
    } catch (...) {
      // A refusal is the parent's to report, by reading again.
    }
    ::_exit(0);
  }
  int status = 0;
  pid_t done = -1;
  do {
    done = ::waitpid(child, &status, 0);
  } while (done < 0 && errno == EINTR);
  if (done < 0 || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) return;
  // Killed by a signal, or ended by a sanitizer's report (exit status 1 after SIGSEGV).
  const std::string how = WIFSIGNALED(status)
                              ? fmt::format("signal {}, {}", WTERMSIG(status), ::strsignal(WTERMSIG(status)))
                              : fmt::format("exit status {}", WEXITSTATUS(status));
  throw InputError(fmt::format("{} is damaged: reading it crashed the HDF5 library ({}) in a separate process; "
                               "nothing else was affected",
                               what, how));
}

}  // namespace fisheval
