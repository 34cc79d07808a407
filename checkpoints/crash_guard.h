// Reading a damaged file must end in a clear message, never a crash. Some damage crashes
// the HDF5 library itself (1.10: a corrupted local heap or B-tree makes H5Lexists read
// through a null pointer, found by fuzz_hdf5_data), where no check of ours can run first.
// So a loader of such files reads the file once in a forked child process: if the child
// dies, the file is refused with InputError and this process, with everything it holds,
// goes on; if the child finishes (loaded or refused: either is fine), the real read follows.
#pragma once
#include <functional>
#include <string>

namespace fisheval {

// Runs `read` in a forked child process (which then ends with _exit(0), skipping every
// exit handler, so it never touches files this process has open). Throws InputError
// "WHAT is damaged: reading it crashed ..." when the child does not end that way. When
// fork fails, returns without probing.
void refuse_if_reading_crashes(const std::string& what, const std::function<void()>& read);

}  // namespace fisheval
