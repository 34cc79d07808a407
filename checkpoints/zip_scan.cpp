#include "checkpoints/zip_scan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fisheval {
namespace {

// Signatures and fixed sizes of the zip format (APPNOTE.TXT 4.3).
constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kZip64EndSize = 56, kZip64LocatorSize = 20;
constexpr uint64_t kMaxComment = 0xFFFF;
constexpr uint64_t kDeflateMaxRatio = 1032;  // deflate expands one byte to at most 1032

// Where the bytes come from: memory, or a file read piece by piece.
class Source {
 public:
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // n bytes at offset (within size()) into out; false when the read fails.
  virtual bool read(uint64_t offset, size_t n, uint8_t* out) const = 0;
};

class MemorySource final : public Source {
 public:
  MemorySource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t size() const override { return size_; }
  bool read(uint64_t offset, size_t n, uint8_t* out) const override {
    if (n > 0) std::memcpy(out, data_ + offset, n);
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

class FileSource final : public Source {
 public:
  FileSource(int fd, uint64_t size) : fd_(fd), size_(size) {}
  uint64_t size() const override { return size_; }
  bool read(uint64_t offset, size_t n, uint8_t* out) const override {
    size_t done = 0;
    while (done < n) {
      const ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      done += static_cast<size_t>(got);
    }
    return true;
  }

 private:
  int fd_;
  uint64_t size_;
};

uint64_t le(const uint8_t* p, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Thrown inside the scan with what is wrong; scan() turns it into ZipScan::problem.
struct Damage {
  std::string why;
};

std::vector<uint8_t> read_range(const Source& src, uint64_t offset, uint64_t n) {
  // Callers check offset + n <= size first.
  std::vector<uint8_t> out(static_cast<size_t>(n));
  if (!src.read(offset, out.size(), out.data())) {
    throw Damage{fmt::format("reading bytes {}-{} failed: {}", offset, offset + n, std::strerror(errno))};
  }
  return out;
}

// a + b <= limit, without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

struct EndRecord {
  uint64_t entries = 0, cd_size = 0, cd_offset = 0;
  uint64_t cd_end = 0;  // where the central directory must end: the first end record
};

// The end of central directory record: the last signature with a whole record after it
// (miniz picks the same one), then the ZIP64 records when a locator precedes it.
EndRecord find_end_record(const Source& src, ZipScan& scan) {
  const uint64_t size = src.size();
  if (size < kEndSize) throw Damage{fmt::format("the file is too short for a zip archive ({} bytes)", size)};
  const uint64_t window = std::min<uint64_t>(size, kEndSize + kMaxComment);
  const auto tail = read_range(src, size - window, window);
  size_t at = tail.size();
  for (size_t i = tail.size() - kEndSize + 1; i-- > 0;) {
    if (le(&tail[i], 4) == kEndSig) {
      at = i;
      break;
    }
  }
  if (at == tail.size()) throw Damage{"no end-of-central-directory record: not a zip archive"};
  scan.has_end_record = true;
  const uint8_t* e = &tail[at];
  const uint64_t end_at = size - window + at;
  const uint64_t comment = le(e + 20, 2);
  if (!fits(end_at + kEndSize, comment, size)) {
    throw Damage{fmt::format("the end record at byte {} declares a {}-byte comment, past the end of the file ({} bytes)",
                             end_at, comment, size)};
  }
  const uint64_t disk = le(e + 4, 2), cd_disk = le(e + 6, 2), on_disk = le(e + 8, 2), entries = le(e + 10, 2);
  const uint64_t cd_size = le(e + 12, 4), cd_offset = le(e + 16, 4);
  if (disk != 0 || cd_disk != 0 || on_disk != entries) {
    throw Damage{fmt::format("the end record at byte {} describes an archive of several disks", end_at)};
  }
  EndRecord r{entries, cd_size, cd_offset, end_at};

  // ZIP64: a locator right before the end record points at the ZIP64 end record.
  if (end_at < kZip64LocatorSize) return r;
  const uint64_t loc_at = end_at - kZip64LocatorSize;
  const auto loc = read_range(src, loc_at, kZip64LocatorSize);
  if (le(loc.data(), 4) != kZip64LocatorSig) {
    if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
      throw Damage{fmt::format("the end record at byte {} refers to ZIP64 values, but there is no ZIP64 locator",
                               end_at)};
    }
    return r;
  }
  const uint64_t z_disk = le(&loc[4], 4), z_at = le(&loc[8], 8), disks = le(&loc[16], 4);
  if (z_disk != 0 || disks > 1) {
    throw Damage{fmt::format("the ZIP64 locator at byte {} describes an archive of several disks", loc_at)};
  }
  if (!fits(z_at, kZip64EndSize, loc_at)) {
    throw Damage{fmt::format("the ZIP64 locator at byte {} points at byte {}, not before it", loc_at, z_at)};
  }
  const auto z = read_range(src, z_at, kZip64EndSize);
  const uint64_t z_record = le(&z[4], 8);
  if (le(z.data(), 4) != kZip64EndSig || z_record < kZip64EndSize - 12 || !fits(z_at + 12, z_record, loc_at)) {
    throw Damage{fmt::format("no valid ZIP64 end record at byte {} (where the locator points)", z_at)};
  }
  const uint64_t z_disk_no = le(&z[16], 4), z_cd_disk = le(&z[20], 4), z_on_disk = le(&z[24], 8);
  const uint64_t z_entries = le(&z[32], 8), z_cd_size = le(&z[40], 8), z_cd_offset = le(&z[48], 8);
  if (z_disk_no != 0 || z_cd_disk != 0 || z_on_disk != z_entries) {
    throw Damage{fmt::format("the ZIP64 end record at byte {} describes an archive of several disks", z_at)};
  }
  // The plain record repeats each value, or holds the ZIP64 marker (all bits set).
  const auto agrees = [](uint64_t plain, uint64_t full, uint64_t marker) { return plain == marker || plain == full; };
  if (!agrees(entries, z_entries, 0xFFFF) || !agrees(cd_size, z_cd_size, 0xFFFFFFFF) ||
      !agrees(cd_offset, z_cd_offset, 0xFFFFFFFF)) {
    throw Damage{fmt::format("the end record at byte {} and the ZIP64 end record at byte {} disagree", end_at, z_at)};
  }
  return EndRecord{z_entries, z_cd_size, z_cd_offset, z_at};
}

// One central-directory entry starting at `p` (46 + name + extra + comment bytes, all
// inside the directory, checked by the caller). Sizes and offset from its ZIP64 field
// where marked so.
ZipRecord read_central_entry(const uint8_t* p, uint64_t at) {
  ZipRecord r;
  const uint64_t flags = le(p + 8, 2), name_len = le(p + 28, 2), extra_len = le(p + 30, 2);
  r.method = static_cast<uint16_t>(le(p + 10, 2));
  r.compressed_size = le(p + 20, 4);
  r.size = le(p + 24, 4);
  uint64_t disk = le(p + 34, 2);
  r.header_offset = le(p + 42, 4);
  r.name.assign(reinterpret_cast<const char*>(p + kCentralSize), name_len);
  const auto where = [&] { return fmt::format("central-directory entry '{}' (byte {})", r.name, at); };
  // ZIP64 extended information (id 1): the values marked all-ones, in this order.
  uint64_t* marked[4] = {nullptr, nullptr, nullptr, nullptr};
  int n_marked = 0;
  if (r.size == 0xFFFFFFFF) marked[n_marked++] = &r.size;
  if (r.compressed_size == 0xFFFFFFFF) marked[n_marked++] = &r.compressed_size;
  if (r.header_offset == 0xFFFFFFFF) marked[n_marked++] = &r.header_offset;
  if (disk == 0xFFFF) marked[n_marked++] = &disk;
  if (n_marked > 0) {
    const uint8_t* extra = p + kCentralSize + name_len;
    bool found = false;
    for (uint64_t pos = 0; pos + 4 <= extra_len && !found;) {
      const uint64_t id = le(extra + pos, 2), len = le(extra + pos + 2, 2);
      if (pos + 4 + len > extra_len) break;
      if (id == 1) {
        const uint64_t need = 8 * static_cast<uint64_t>(n_marked - (disk == 0xFFFF ? 1 : 0)) + (disk == 0xFFFF ? 4 : 0);
        if (len < need) throw Damage{fmt::format("the ZIP64 field of the {} is too short", where())};
        for (int i = 0; i < n_marked; ++i) *marked[i] = le(extra + pos + 4 + 8 * i, marked[i] == &disk ? 4 : 8);
        found = true;
      }
      pos += 4 + len;
    }
    if (!found) throw Damage{fmt::format("the {} marks a ZIP64 value but has no ZIP64 field", where())};
  }
  if (disk != 0) throw Damage{fmt::format("the {} lies on disk {}", where(), disk)};
  if (flags & 0x41) throw Damage{fmt::format("the {} is encrypted", where())};
  if (r.method != 0 && r.method != 8) {
    throw Damage{fmt::format("the {} uses compression method {} (only stored and deflate are readable)", where(),
                             r.method)};
  }
  return r;
}

void check_record(const Source& src, ZipRecord& r, uint64_t data_end, uint64_t max_record_bytes) {
  const auto name = [&] { return fmt::format("record '{}'", r.name); };
  // The local header: inside the data area, the same record as its directory entry.
  if (!fits(r.header_offset, kLocalSize, data_end)) {
    throw Damage{fmt::format("the local header of {} at byte {} lies outside the data area (bytes 0-{})", name(),
                             r.header_offset, data_end)};
  }
  const auto h = read_range(src, r.header_offset, kLocalSize);
  if (le(h.data(), 4) != kLocalSig) throw Damage{fmt::format("no local header of {} at byte {}", name(), r.header_offset)};
  const uint64_t flags = le(&h[6], 2), method = le(&h[8], 2), comp = le(&h[18], 4), full = le(&h[22], 4);
  const uint64_t name_len = le(&h[26], 2), extra_len = le(&h[28], 2);
  if (!fits(r.header_offset + kLocalSize, name_len + extra_len, data_end)) {
    throw Damage{fmt::format("the local header of {} at byte {} runs past the data area (bytes 0-{})", name(),
                             r.header_offset, data_end)};
  }
  const auto local_name = read_range(src, r.header_offset + kLocalSize, name_len);
  if (std::string(local_name.begin(), local_name.end()) != r.name || method != r.method) {
    throw Damage{fmt::format("the local header at byte {} does not match {} (another name or method)",
                             r.header_offset, name())};
  }
  // Without a data descriptor (flag bit 3) the local header carries the sizes.
  const auto agrees = [](uint64_t local, uint64_t central) { return local == central || local == 0xFFFFFFFF; };
  if (!(flags & 0x8) && (!agrees(comp, r.compressed_size) || !agrees(full, r.size))) {
    throw Damage{fmt::format("the local header of {} declares {} compressed / {} bytes, its directory entry {} / {}",
                             name(), comp, full, r.compressed_size, r.size)};
  }
  // The data: inside the data area; sizes a reader can trust.
  r.data_offset = r.header_offset + kLocalSize + name_len + extra_len;
  if (!fits(r.data_offset, r.compressed_size, data_end)) {
    throw Damage{fmt::format("the data of {} (bytes {}-{}) runs past the data area (bytes 0-{})", name(), r.data_offset,
                             r.data_offset + r.compressed_size, data_end)};
  }
  if (r.method == 0 && r.compressed_size != r.size) {
    throw Damage{fmt::format("stored {} declares {} bytes of data and {} bytes uncompressed", name(),
                             r.compressed_size, r.size)};
  }
  if (r.method == 8 && r.size / kDeflateMaxRatio > r.compressed_size) {
    throw Damage{fmt::format("deflated {} declares {} bytes from {} compressed bytes, more than deflate can expand to",
                             name(), r.size, r.compressed_size)};
  }
  if (r.size > max_record_bytes) {
    throw Damage{fmt::format("{} declares {} bytes, more than the load limit ({} bytes, see FISHEVAL_MAX_LOAD_BYTES)",
                             name(), r.size, max_record_bytes)};
  }
}

ZipScan scan(const Source& src, uint64_t max_record_bytes) {
  ZipScan out;
  try {
    const auto end = find_end_record(src, out);
    // The central directory: inside the file, ending where the end records begin.
    if (end.cd_offset > end.cd_end || end.cd_size != end.cd_end - end.cd_offset) {
      throw Damage{fmt::format("the central directory (byte {}, {} bytes) does not end where the end record begins "
                               "(byte {})",
                               end.cd_offset, end.cd_size, end.cd_end)};
    }
    if (end.entries > end.cd_size / kCentralSize) {
      throw Damage{fmt::format("the end record declares {} entries, more than the central directory ({} bytes) holds",
                               end.entries, end.cd_size)};
    }
    // Entry by entry (a damaged end record may declare a directory as large as the file).
    uint64_t pos = end.cd_offset;
    for (uint64_t i = 0; i < end.entries; ++i) {
      const auto damaged_entry = [&](const char* what) {
        return Damage{fmt::format("central-directory entry {} of {} at byte {} {}", i + 1, end.entries, pos, what)};
      };
      if (end.cd_end - pos < kCentralSize) throw damaged_entry("runs past the directory's end");
      auto entry = read_range(src, pos, kCentralSize);
      if (le(entry.data(), 4) != kCentralSig) throw damaged_entry("is missing (no signature)");
      const uint64_t tail = le(&entry[28], 2) + le(&entry[30], 2) + le(&entry[32], 2);
      if (end.cd_end - pos - kCentralSize < tail) throw damaged_entry("runs past the directory's end");
      const auto rest = read_range(src, pos + kCentralSize, tail);
      entry.insert(entry.end(), rest.begin(), rest.end());
      out.records.push_back(read_central_entry(entry.data(), pos));
      pos += kCentralSize + tail;
    }
    if (pos != end.cd_end) {
      throw Damage{fmt::format("the central directory holds {} bytes after its {} entries", end.cd_end - pos,
                               end.entries)};
    }
    // Every record: its local header and data inside the data area (before the directory).
    for (auto& r : out.records) check_record(src, r, end.cd_offset, max_record_bytes);
    // No two records share bytes: sorted by position, each ends before the next begins.
    std::vector<const ZipRecord*> order;
    for (const auto& r : out.records) order.push_back(&r);
    std::sort(order.begin(), order.end(),
              [](const ZipRecord* a, const ZipRecord* b) { return a->header_offset < b->header_offset; });
    for (size_t i = 1; i < order.size(); ++i) {
      const auto& a = *order[i - 1];
      const auto& b = *order[i];
      if (a.data_offset + a.compressed_size > b.header_offset) {
        throw Damage{fmt::format("records '{}' (bytes {}-{}) and '{}' (from byte {}) overlap", a.name, a.header_offset,
                                 a.data_offset + a.compressed_size, b.name, b.header_offset)};
      }
    }
  } catch (const Damage& d) {
    out.problem = d.why;
  }
  return out;
}

}  // namespace

ZipScan scan_zip(const uint8_t* data, size_t size, uint64_t max_record_bytes) {
  return scan(MemorySource(data, size), max_record_bytes);
}

ZipScan scan_zip_file(const std::string& path, uint64_t max_record_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    ZipScan out;
    out.problem = fmt::format("cannot read the file: {}", std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return out;
  }
  auto out = scan(FileSource(fd, static_cast<uint64_t>(st.st_size)), max_record_bytes);  // does not throw
  ::close(fd);
  return out;
}

}  // namespace fisheval
