// The pickle bounds check (checkpoints/pickle_scan.h) on pickles made by CPython's own
// pickler (fixtures pickles/PROTO.pkl, protocols 0, 2, 4, 5), with the position and width
// of every length prefix and memo index taken from pickletools (PROTO.args), not from
// the code under test; and on a TorchScript archive the fuzzer damaged and a native
// checkpoint damaged by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "checkpoints/load.h"
#include "checkpoints/model.h"
#include "checkpoints/native_model.h"
#include "checkpoints/pickle_scan.h"
#include "support.h"

namespace fisheval {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

std::string problem(const Bytes& b) { return pickle_problem(b.data(), b.size()); }

// One line of PROTO.args: opcode name, its byte offset, its argument's offset, the
// argument's width in bytes (0: decimal text), its value (a length or a memo index).
struct ArgRow {
  std::string op;
  size_t at = 0, arg = 0, width = 0;
  uint64_t value = 0;
};

std::vector<ArgRow> read_args(const std::string& path) {
  std::ifstream in(path);
  std::vector<ArgRow> rows;
  ArgRow r;
  while (in >> r.op >> r.at >> r.arg >> r.width >> r.value) rows.push_back(r);
  return rows;
}

void put_le(Bytes& b, size_t at, size_t width, uint64_t v) {
  for (size_t i = 0; i < width; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

const int kProtocols[] = {0, 2, 4, 5};

std::string pickle_path(int proto, const char* ext) {
  return test::fixture("pickles/" + std::to_string(proto) + ext);
}

TEST(PickleScan, AcceptsCPythonPicklesOfEveryProtocol) {
  for (int proto : kProtocols) {
    const auto data = read_bytes(pickle_path(proto, ".pkl"));
    ASSERT_GT(data.size(), 1000u);
    EXPECT_EQ(problem(data), "") << "protocol " << proto;
  }
}

TEST(PickleScan, RefusesEveryTruncation) {
  // No strict prefix of a pickle is a pickle: it ends inside an argument or before STOP.
  for (int proto : kProtocols) {
    const auto data = read_bytes(pickle_path(proto, ".pkl"));
    for (size_t n = 0; n < data.size(); ++n) {
      const Bytes prefix(data.begin(), data.begin() + n);
      ASSERT_NE(problem(prefix), "") << "protocol " << proto << ", first " << n << " bytes";
    }
  }
}

TEST(PickleScan, RefusesEveryLengthBeyondTheData) {
  int tried = 0;
  for (int proto : kProtocols) {
    const auto data = read_bytes(pickle_path(proto, ".pkl"));
    for (const auto& row : read_args(pickle_path(proto, ".args"))) {
      if (row.op.find("PUT") != std::string::npos) continue;
      SCOPED_TRACE("protocol " + std::to_string(proto) + ", " + row.op + " at byte " + std::to_string(row.at));
      ASSERT_GT(row.width, 0u);
      const uint64_t follow = data.size() - row.arg - row.width;  // bytes after the length field
      const uint64_t max_value = row.width == 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * row.width)) - 1;
      // The largest length the field can hold, and one byte more than follows (when it fits).
      for (const uint64_t declared : {max_value, follow + 1}) {
        if (declared <= follow || declared > max_value) continue;
        Bytes bad = data;
        put_le(bad, row.arg, row.width, declared);
        const auto why = problem(bad);
        EXPECT_NE(why.find("declares " + std::to_string(declared) + " bytes"), std::string::npos) << why;
        ++tried;
      }
    }
  }
  EXPECT_GT(tried, 600);  // the 4-byte and 8-byte lengths, and the 1-byte ones near the end
}

TEST(PickleScan, RefusesMemoIndicesBeyondThePickle) {
  int binary = 0, text = 0;
  for (int proto : kProtocols) {
    const auto data = read_bytes(pickle_path(proto, ".pkl"));
    for (const auto& row : read_args(pickle_path(proto, ".args"))) {
      if (row.op.find("PUT") == std::string::npos) continue;
      SCOPED_TRACE("protocol " + std::to_string(proto) + ", " + row.op + " at byte " + std::to_string(row.at));
      Bytes bad = data;
      if (row.width == 4) {  // LONG_BINPUT
        put_le(bad, row.arg, 4, 0xFFFFFFFFu);
        ++binary;
      } else if (row.width == 0) {  // PUT: a decimal index on a line
        const auto digits = std::to_string(row.value);
        const std::string huge = "99999999999";
        bad.erase(bad.begin() + row.arg, bad.begin() + row.arg + digits.size());
        bad.insert(bad.begin() + row.arg, huge.begin(), huge.end());
        ++text;
      } else {
        continue;  // BINPUT's one byte cannot exceed these pickles' sizes
      }
      EXPECT_NE(problem(bad).find("memo index"), std::string::npos) << problem(bad);
    }
  }
  EXPECT_GT(binary, 50);
  EXPECT_GT(text, 300);
}

TEST(PickleScan, LeavesUnknownOpcodesToTheUnpickler) {
  const Bytes unknown = {0x80, 0x02, 0xff, 0x00};  // PROTO 2, then an opcode no protocol has
  EXPECT_EQ(problem(unknown), "");
}

TEST(PickleScan, DamagedArchiveIsRefusedBeforeLibTorchAllocates) {
  // Found by fuzz_torchscript: one string length (BINUNICODE at byte 551 of data.pkl) says 4177526798 bytes;
  // LibTorch 1.13's unpickler reserved and filled 4 GB for this 8 KB file. The fuzzer had also
  // damaged its central directory (record data/8 points at data/7's local header), which the
  // zip structure check (zip_scan.h), run first, now refuses; the pickle damage alone is
  // refused in DamagedNativeCheckpointIsRefused.
  const auto path = std::filesystem::path(FISHEVAL_SOURCE_DIR) / "tests" / "fuzz-regressions" / "torchscript" /
                    "fuzz-oom-pickle-length.pt";
  try {
    (void)load_model(path.string());
    FAIL() << "loaded a damaged archive";
  } catch (const InputError& e) {
    const std::string why = e.what();
    EXPECT_NE(why.find("not a readable PyTorch archive"), std::string::npos) << why;
    EXPECT_NE(why.find("does not match record 'lora_ce/data/8'"), std::string::npos) << why;
  }
}

TEST(PickleScan, DamagedNativeCheckpointIsRefused) {
  // A native checkpoint is a pickled dict (torch::pickle_save: a zip archive, data.pkl
  // stored uncompressed). Its key "format" is a BINUNICODE string: the 4 bytes before the
  // text are its length, 6. Declaring 2^31 bytes must be refused by the check, not
  // allocated by the unpickler.
  ModelConfig c;
  c.input_shape = {1, 4, 4};
  c.num_classes = 3;
  c.widths = {5};
  const auto path = (std::filesystem::temp_directory_path() / "fisheval-damaged-native.pt").string();
  save_native_checkpoint(*make_builtin_model(c, 1), path, {});
  auto bytes = read_bytes(path);
  const std::string key = "format";
  const auto it = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
  ASSERT_NE(it, bytes.end());
  const size_t at = static_cast<size_t>(it - bytes.begin()) - 4;
  ASSERT_EQ(bytes[at - 1], 'X');
  ASSERT_EQ(bytes[at], 6);
  put_le(bytes, at, 4, uint64_t(1) << 31);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  try {
    (void)load_model(path);
    FAIL() << "loaded a damaged checkpoint";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("declares 2147483648 bytes"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace fisheval
