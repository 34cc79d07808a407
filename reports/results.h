// Result files, one job per header (include the one you need, or this one for all):
//   result_schema.h  the measures table, RunInfo and its fingerprint, ResultFile in memory
//   result_file.h    reading and writing a result file (the layout: docs/FORMAT.md)
//   merge.h          joining the shard files of one run
//   result_store.h   the resumable writer of a run (OUT.parts/, then OUT atomically)
#pragma once

#include "reports/merge.h"
#include "reports/result_file.h"
#include "reports/result_schema.h"
#include "reports/result_store.h"
