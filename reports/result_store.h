// The resumable writer of a run: each finished (checkpoint, batch) unit is written at
// once to OUT.parts/unit-C-B.h5 (atomically, base/atomic_file.h), and OUT itself is
// assembled atomically at the end. A run killed at any moment and started again with the
// same configuration imports what exists and computes only what is missing.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "reports/result_schema.h"

namespace fisheval {

class ResultStore {
 public:
  // Refuses (InputError) an existing OUT or OUT.parts of another configuration unless
  // `overwrite`, in which case they are replaced.
  ResultStore(std::string out, RunInfo info, std::map<std::string, std::string> metadata, bool overwrite);

  const RunInfo& info() const { return result_.info; }
  bool done(int64_t c, int64_t b) const { return result_.is_done(c, b); }
  int64_t imported_units() const { return imported_; }
  // Records a finished unit: written to OUT.parts/ before this returns.
  void put(const UnitResult& unit);
  void set_checkpoint_status(int64_t c, const std::string& status);
  const ResultFile& result() const { return result_; }
  // Assembles OUT atomically and removes OUT.parts/.
  void finish();

 private:
  std::string out_, parts_;
  ResultFile result_;
  int64_t imported_ = 0;
};

}  // namespace fisheval
