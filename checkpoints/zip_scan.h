// A structure check of a zip archive before LibTorch's zip reader (miniz) reads it.
//
// Checkpoints of both kinds are zip archives (torch.jit.save, torch.save and
// torch::pickle_save). miniz trusts the offsets and sizes written in them: LibTorch 1.13's
// copy read freed memory in mz_zip_reader_init on a damaged checkpoint (found by
// fuzz_torchscript). This scan reads only the archive's structures (the end records, the
// central directory, every local header), not the records' data, and finds what no
// archive written by PyTorch or Python's zipfile has:
//   - no end-of-central-directory record, or one whose comment runs past the end of the
//     file; a ZIP64 locator or ZIP64 end record outside the file, or disagreeing with the
//     plain end record; more than one disk;
//   - a central directory outside the file, not ending where the end records begin, or
//     holding a different number of entries than the end record says (or bytes after
//     the last one); an entry whose name or extra fields run past it; a size or offset
//     marked as ZIP64 without its ZIP64 field;
//   - an encrypted record, or a compression method miniz cannot read (not stored or
//     deflate);
//   - a local header outside the data area (the bytes before the central directory), with
//     another name or method than its central-directory entry, or sizes that disagree
//     with it (unless a data descriptor follows the data);
//   - record data running past the central directory, records that overlap, a stored
//     record whose sizes differ, a deflated record declaring more than deflate can expand
//     to (1032 bytes per compressed byte), or a record larger than a given limit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fisheval {

struct ZipRecord {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint64_t compressed_size = 0, size = 0;
  uint64_t header_offset = 0, data_offset = 0;  // local header, first byte of the data
};

struct ZipScan {
  bool has_end_record = false;  // an end-of-central-directory record was found
  std::string problem;          // empty when nothing is wrong, else what and where
  std::vector<ZipRecord> records;  // in central-directory order (complete only when problem is empty)
};

// `max_record_bytes`: the largest (uncompressed) record size accepted.
ZipScan scan_zip(const uint8_t* data, size_t size, uint64_t max_record_bytes = UINT64_MAX);
// The same on a file, reading only the structures. problem says so when it cannot be read.
ZipScan scan_zip_file(const std::string& path, uint64_t max_record_bytes = UINT64_MAX);

}  // namespace fisheval
