// The zip structure check (checkpoints/zip_scan.h) on archives written by Python's
// zipfile (stored, deflated, ZIP64) and by PyTorch (torch.jit.save, torch.save), with the
// position of every record and end record taken from zipfile (fixtures zips/NAME.map), not
// from the code under test: every archive is accepted with exactly those records; every
// truncation, every offset or size pushed past the end, overlapping records and local
// headers that lie are refused; and the loaders refuse such archives before LibTorch
// reads them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "checkpoints/load.h"
#include "checkpoints/native_model.h"
#include "checkpoints/zip_scan.h"
#include "support.h"

// Helpers in a namespace of this file's own: unity builds compile several test files in one unit.
namespace fisheval::zip_scan_test {

using Bytes = std::vector<uint8_t>;

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const Bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

uint64_t get_le(const Bytes& b, size_t at, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(b[at + i]) << (8 * i);
  return v;
}

void put_le(Bytes& b, size_t at, size_t width, uint64_t v) {
  for (size_t i = 0; i < width; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

std::string problem(const Bytes& b) { return scan_zip(b.data(), b.size()).problem; }

// NAME.map, written by make_fixtures.py from Python's zipfile.
struct Map {
  uint64_t end = 0, cd_offset = 0, cd_size = 0, entries = 0;
  bool zip64 = false;
  uint64_t locator = 0, zip64_end = 0;
  std::vector<ZipRecord> records;
  std::vector<uint64_t> flags;
};

Map read_map(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  Map m;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string kind;
    row >> kind;
    if (kind == "end") row >> m.end;
    if (kind == "cd") row >> m.cd_offset >> m.cd_size >> m.entries;
    if (kind == "zip64") {
      m.zip64 = true;
      row >> m.locator >> m.zip64_end;
    }
    if (kind == "record") {
      ZipRecord r;
      uint64_t flags = 0;
      row >> r.name >> r.header_offset >> r.data_offset >> r.compressed_size >> r.size >> r.method >> flags;
      m.records.push_back(r);
      m.flags.push_back(flags);
    }
  }
  return m;
}

const char* const kArchives[] = {"stored.zip", "deflated.zip", "zip64.zip", "torchscript.pt", "native.pt"};

std::string archive(const std::string& name) { return test::fixture("zips/" + name); }

// Byte offsets of the central-directory entries, from the map's directory offset and each
// entry's three lengths.
std::vector<size_t> central_entries(const Bytes& b, const Map& m) {
  std::vector<size_t> at;
  size_t pos = m.cd_offset;
  for (uint64_t i = 0; i < m.entries; ++i) {
    at.push_back(pos);
    pos += 46 + get_le(b, pos + 28, 2) + get_le(b, pos + 30, 2) + get_le(b, pos + 32, 2);
  }
  EXPECT_EQ(pos, m.cd_offset + m.cd_size);
  return at;
}

TEST(ZipScan, AcceptsArchivesOfZipfileAndPyTorchWithTheirRecords) {
  for (const char* name : kArchives) {
    SCOPED_TRACE(name);
    const auto data = read_bytes(archive(name));
    const auto map = read_map(archive(name) + ".map");
    const auto scan = scan_zip(data.data(), data.size());
    EXPECT_EQ(scan.problem, "");
    EXPECT_TRUE(scan.has_end_record);
    ASSERT_EQ(scan.records.size(), map.records.size());
    for (size_t i = 0; i < map.records.size(); ++i) {
      const auto &got = scan.records[i], &want = map.records[i];
      EXPECT_EQ(got.name, want.name);
      EXPECT_EQ(got.header_offset, want.header_offset) << want.name;
      EXPECT_EQ(got.data_offset, want.data_offset) << want.name;
      EXPECT_EQ(got.compressed_size, want.compressed_size) << want.name;
      EXPECT_EQ(got.size, want.size) << want.name;
      EXPECT_EQ(got.method, want.method) << want.name;
    }
    // From the file, piece by piece: the same.
    const auto from_file = scan_zip_file(archive(name));
    EXPECT_EQ(from_file.problem, "");
    EXPECT_EQ(from_file.records.size(), scan.records.size());
  }
  // The fixture archives exercise what they should: ZIP64 end records in both zipfile's
  // ZIP64 archive and PyTorch's, ZIP64 fields in zipfile's, data descriptors in PyTorch's.
  EXPECT_TRUE(read_map(archive("zip64.zip") + ".map").zip64);
  EXPECT_TRUE(read_map(archive("torchscript.pt") + ".map").zip64);
  EXPECT_EQ(read_map(archive("torchscript.pt") + ".map").flags[0] & 0x8, 0x8u);
  // Every checkpoint the other tests use.
  int checkpoints = 0;
  for (const auto& dir : {test::fixtures_dir(), test::fixture("series")}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".pt") continue;
      EXPECT_EQ(scan_zip_file(entry.path().string()).problem, "") << entry.path();
      ++checkpoints;
    }
  }
  EXPECT_GT(checkpoints, 15);
}

TEST(ZipScan, RefusesEveryTruncation) {
  for (const char* name : kArchives) {
    const auto data = read_bytes(archive(name));
    for (size_t n = 0; n < data.size(); ++n) {
      const Bytes prefix(data.begin(), data.begin() + n);
      ASSERT_NE(problem(prefix), "") << name << ", first " << n << " of " << data.size() << " bytes";
    }
  }
}

TEST(ZipScan, RefusesEndRecordsThatPointElsewhere) {
  int tried = 0;
  for (const char* name : kArchives) {
    SCOPED_TRACE(name);
    const auto data = read_bytes(archive(name));
    const auto map = read_map(archive(name) + ".map");
    const auto refused = [&](size_t at, size_t width, uint64_t value) {
      Bytes bad = data;
      put_le(bad, at, width, value);
      ++tried;
      return problem(bad) != "";
    };
    // The plain end record: directory size and offset, entry counts, comment length. In a
    // ZIP64 archive a field may hold the ZIP64 marker, and then the ZIP64 record counts.
    const size_t e = map.end;
    for (const auto& [at, width] : {std::pair{e + 12, 4}, {e + 16, 4}, {e + 8, 2}, {e + 10, 2}}) {
      const uint64_t v = get_le(data, at, width);
      if (v == (width == 4 ? 0xFFFFFFFFu : 0xFFFFu)) continue;
      EXPECT_TRUE(refused(at, width, v + 1)) << "end record byte " << at - e;
      if (v > 0) EXPECT_TRUE(refused(at, width, v - 1)) << "end record byte " << at - e;
      EXPECT_TRUE(refused(at, width, data.size())) << "end record byte " << at - e;
    }
    EXPECT_TRUE(refused(e + 20, 2, 1));  // a comment past the end of the file
    EXPECT_TRUE(refused(e + 4, 2, 1));   // another disk
    if (!map.zip64) continue;
    // The ZIP64 locator's pointer and the ZIP64 end record's directory size, offset, counts.
    EXPECT_TRUE(refused(map.locator + 8, 8, map.zip64_end + 1));
    EXPECT_TRUE(refused(map.locator + 8, 8, data.size()));
    EXPECT_TRUE(refused(map.locator + 8, 8, ~uint64_t(0)));
    for (size_t field : {40, 48, 24, 32}) {
      const size_t at = map.zip64_end + field;
      const uint64_t v = get_le(data, at, 8);
      EXPECT_TRUE(refused(at, 8, v + 1)) << "ZIP64 end record byte " << field;
      if (v > 0) EXPECT_TRUE(refused(at, 8, v - 1)) << "ZIP64 end record byte " << field;
      EXPECT_TRUE(refused(at, 8, ~uint64_t(0) - 7)) << "ZIP64 end record byte " << field;
    }
  }
  EXPECT_GT(tried, 80);
}

TEST(ZipScan, RefusesDirectoryEntriesThatPointOutsideTheData) {
  int tried = 0;
  for (const char* name : kArchives) {
    SCOPED_TRACE(name);
    const auto data = read_bytes(archive(name));
    const auto map = read_map(archive(name) + ".map");
    const auto entries = central_entries(data, map);
    for (size_t i = 0; i < entries.size(); ++i) {
      const size_t c = entries[i];
      const auto& r = map.records[i];
      SCOPED_TRACE(r.name);
      const auto refusal = [&](size_t at, size_t width, uint64_t value) {
        Bytes bad = data;
        put_le(bad, at, width, value);
        ++tried;
        return problem(bad);
      };
      // The local header's offset: past the end, into the directory, into its own data.
      if (get_le(data, c + 42, 4) != 0xFFFFFFFF) {
        EXPECT_NE(refusal(c + 42, 4, data.size()), "");
        EXPECT_NE(refusal(c + 42, 4, map.cd_offset), "");
        EXPECT_NE(refusal(c + 42, 4, r.data_offset), "");
      }
      // The compressed size: data running into the central directory, or past the file.
      if (get_le(data, c + 20, 4) != 0xFFFFFFFF) {
        EXPECT_NE(refusal(c + 20, 4, map.cd_offset - r.data_offset + 1), "");
        EXPECT_NE(refusal(c + 20, 4, 0xFFFFFFFE), "");
      }
      // The name length: running past the directory.
      EXPECT_NE(refusal(c + 28, 2, 0xFFFF), "");
      // The extra fields' length: the same (or the next entry is not where it should be).
      EXPECT_NE(refusal(c + 30, 2, get_le(data, c + 30, 2) + 1), "");
    }
  }
  EXPECT_GT(tried, 150);
}

TEST(ZipScan, RefusesZip64FieldsPointingOutside) {
  // zipfile's ZIP64 archive: records past its lowered limit carry their offset and sizes in
  // a ZIP64 field (id 1) of their directory entry, the plain fields all ones.
  const auto data = read_bytes(archive("zip64.zip"));
  const auto map = read_map(archive("zip64.zip") + ".map");
  int tried = 0;
  for (size_t c : central_entries(data, map)) {
    const size_t name_len = get_le(data, c + 28, 2);
    size_t values = 0;
    for (size_t field : {24, 20, 42}) values += get_le(data, c + field, 4) == 0xFFFFFFFF ? 1 : 0;
    if (values == 0) continue;
    const size_t extra = c + 46 + name_len;
    ASSERT_EQ(get_le(data, extra, 2), 1u);  // the ZIP64 field comes first here
    for (size_t v = 0; v < values; ++v) {
      Bytes bad = data;
      put_le(bad, extra + 4 + 8 * v, 8, data.size());
      EXPECT_NE(problem(bad), "") << "entry at " << c << ", value " << v;
      ++tried;
    }
    Bytes no_field = data;  // another field id: the marked values have no ZIP64 field
    put_le(no_field, extra, 2, 0x7075);
    EXPECT_NE(problem(no_field).find("no ZIP64 field"), std::string::npos) << problem(no_field);
    Bytes short_field = data;
    put_le(short_field, extra + 2, 2, 8 * values - 8);
    EXPECT_NE(problem(short_field), "");
  }
  EXPECT_GE(tried, 4);
}

TEST(ZipScan, RefusesLocalHeadersThatLie) {
  for (const char* name : kArchives) {
    SCOPED_TRACE(name);
    const auto data = read_bytes(archive(name));
    const auto map = read_map(archive(name) + ".map");
    for (size_t i = 0; i < map.records.size(); ++i) {
      const auto& r = map.records[i];
      SCOPED_TRACE(r.name);
      const size_t h = r.header_offset;
      const auto refusal = [&](size_t at, size_t width, uint64_t value) {
        Bytes bad = data;
        put_le(bad, at, width, value);
        return problem(bad);
      };
      // Name and extra lengths: another name, or past the data area.
      EXPECT_NE(refusal(h + 26, 2, get_le(data, h + 26, 2) - 1), "");
      EXPECT_NE(refusal(h + 26, 2, 0xFFFF), "");
      EXPECT_NE(refusal(h + 28, 2, 0xFFFF), "");
      // Another method than the directory's; no signature.
      EXPECT_NE(refusal(h + 8, 2, r.method == 0 ? 8 : 0), "");
      EXPECT_NE(refusal(h, 4, 0), "");
      // Sizes: without a data descriptor (flag bit 3), they must be the directory's.
      if (!(map.flags[i] & 0x8)) {
        const auto why = refusal(h + 18, 4, r.compressed_size + 1);
        EXPECT_NE(why.find("directory entry"), std::string::npos) << why;
        EXPECT_NE(refusal(h + 22, 4, r.size + 1), "");
      }
    }
  }
}

TEST(ZipScan, RefusesOverlappingRecords) {
  // PyTorch's archives (data descriptors: the sizes are only in the directory). A stored
  // record grown into the next record's local header, sizes still consistent.
  for (const char* name : {"torchscript.pt", "native.pt"}) {
    SCOPED_TRACE(name);
    const auto data = read_bytes(archive(name));
    const auto map = read_map(archive(name) + ".map");
    const auto entries = central_entries(data, map);
    int tried = 0;
    for (size_t i = 0; i < map.records.size(); ++i) {
      const auto& r = map.records[i];
      if (r.method != 0) continue;
      uint64_t next = map.cd_offset;
      for (const auto& other : map.records) {
        if (other.header_offset > r.header_offset) next = std::min(next, other.header_offset);
      }
      if (next == map.cd_offset) continue;  // the last record: nothing to overlap
      Bytes bad = data;
      put_le(bad, entries[i] + 20, 4, next - r.data_offset + 1);
      put_le(bad, entries[i] + 24, 4, next - r.data_offset + 1);
      const auto why = problem(bad);
      EXPECT_NE(why.find("overlap"), std::string::npos) << r.name << ": " << why;
      ++tried;
    }
    EXPECT_GT(tried, 3);
  }
  // Two directory entries for the same bytes: the second pointing at the first's header.
  const auto data = read_bytes(archive("stored.zip"));
  const auto map = read_map(archive("stored.zip") + ".map");
  const auto entries = central_entries(data, map);
  Bytes twice = data;
  put_le(twice, entries[1] + 42, 4, map.records[0].header_offset);
  EXPECT_NE(problem(twice), "");
}

TEST(ZipScan, RefusesSizesNoReaderCanTrust) {
  const auto data = read_bytes(archive("deflated.zip"));
  const auto map = read_map(archive("deflated.zip") + ".map");
  const auto entries = central_entries(data, map);
  // a/repeated.txt: 8400 bytes deflated to 59. Declaring more than deflate's 1032:1 is
  // refused (LibTorch allocates the declared size before inflating).
  const size_t i = 2;
  ASSERT_EQ(map.records[i].name, "a/repeated.txt");
  const uint64_t comp = map.records[i].compressed_size;
  for (uint64_t declared : {comp * 1032 + 1031, comp * 1032 + 1032, uint64_t(0xFFFFFFF0)}) {
    Bytes bad = data;
    put_le(bad, entries[i] + 24, 4, declared);
    put_le(bad, map.records[i].header_offset + 22, 4, declared);
    const auto why = problem(bad);
    if (declared / 1032 > comp) {
      EXPECT_NE(why.find("more than deflate can expand to"), std::string::npos) << declared << ": " << why;
    } else {
      EXPECT_EQ(why, "") << declared;
    }
  }
  // The load limit.
  EXPECT_EQ(scan_zip(data.data(), data.size(), 8400).problem, "");
  EXPECT_NE(scan_zip(data.data(), data.size(), 8399).problem.find("declares 8400 bytes, more than the load limit"),
            std::string::npos);
  // A stored record whose two sizes differ.
  const auto stored = read_bytes(archive("stored.zip"));
  const auto smap = read_map(archive("stored.zip") + ".map");
  Bytes bad = stored;
  const size_t c = central_entries(stored, smap)[1];
  put_le(bad, c + 24, 4, smap.records[1].size + 1);
  put_le(bad, smap.records[1].header_offset + 22, 4, smap.records[1].size + 1);
  EXPECT_NE(problem(bad).find("stored record 'a/second.bin' declares"), std::string::npos) << problem(bad);
  // Compression methods miniz cannot read, and encryption.
  Bytes bzip2 = stored;
  put_le(bzip2, central_entries(stored, smap)[0] + 10, 2, 12);
  put_le(bzip2, smap.records[0].header_offset + 8, 2, 12);
  EXPECT_NE(problem(bzip2).find("compression method 12"), std::string::npos) << problem(bzip2);
  Bytes encrypted = stored;
  put_le(encrypted, central_entries(stored, smap)[0] + 8, 2, 1);
  EXPECT_NE(problem(encrypted).find("encrypted"), std::string::npos) << problem(encrypted);
}

TEST(ZipScan, FileThatIsNoZipHasNoEndRecord) {
  const std::string text = "just some text, not an archive at all";
  const auto scan = scan_zip(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  EXPECT_FALSE(scan.has_end_record);
  EXPECT_NE(scan.problem.find("no end-of-central-directory record"), std::string::npos);
  EXPECT_NE(scan_zip_file("/nonexistent/x.pt").problem.find("cannot read the file"), std::string::npos);
}

// Damaged PyTorch archives reach no LibTorch code: each loader refuses them by name.
TEST(ZipScan, LoadersRefuseDamagedArchivesBeforeLibTorchReadsThem) {
  const auto dir = std::filesystem::temp_directory_path() / "fisheval-zip-scan";
  std::filesystem::create_directories(dir);
  for (const char* name : {"torchscript.pt", "native.pt"}) {
    SCOPED_TRACE(name);
    const auto data = read_bytes(archive(name));
    const auto map = read_map(archive(name) + ".map");
    const auto entries = central_entries(data, map);
    std::vector<std::pair<std::string, Bytes>> damaged;
    Bytes outside = data;  // the central directory said to start past the end (both end records)
    put_le(outside, map.end + 16, 4, data.size() + 100);
    put_le(outside, map.zip64_end + 48, 8, data.size() + 100);
    damaged.emplace_back("directory outside the file", outside);
    Bytes overlap = data;  // the first record's data running over the second's header
    put_le(overlap, entries[0] + 20, 4, map.records[1].header_offset - map.records[0].data_offset + 64);
    put_le(overlap, entries[0] + 24, 4, map.records[1].header_offset - map.records[0].data_offset + 64);
    damaged.emplace_back("overlapping records", overlap);
    Bytes lying = data;  // a local header's name length that lies
    put_le(lying, map.records[2].header_offset + 26, 2, 200);
    damaged.emplace_back("local header lies", lying);
    for (size_t i = 0; i < damaged.size(); ++i) {
      const auto& [what, bytes] = damaged[i];
      const auto path = (dir / (std::string(name) + "-" + std::to_string(i))).string();
      write_bytes(path, bytes);
      try {
        (void)load_model(path);
        ADD_FAILURE() << what << ": loaded";
      } catch (const InputError& e) {
        const std::string why = e.what();
        EXPECT_NE(why.find("cannot load checkpoint '" + path + "': not a readable PyTorch archive"), std::string::npos)
            << what << ": " << why;
      }
      // The kind-specific loaders check too (the trainer calls load_native_checkpoint).
      EXPECT_THROW((void)load_native_checkpoint(path), InputError) << what;
      EXPECT_THROW((void)load_torchscript_model(path), InputError) << what;
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace fisheval::zip_scan_test
