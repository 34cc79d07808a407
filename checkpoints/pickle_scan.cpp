#include "checkpoints/pickle_scan.h"

#include <fmt/format.h>

#include <cstring>

namespace fisheval {
namespace {

// How an opcode's argument is laid out (pickletools' argument descriptors).
enum class Arg {
  kNone,
  kFixed,         // `width` bytes
  kLengthPrefix,  // a little-endian unsigned length of `width` bytes, then that many bytes
  kLine,          // text up to and including '\n'
  kTwoLines,      // two such lines (GLOBAL, INST)
  kMemoIndex,     // a memo index of `width` bytes (BINPUT, LONG_BINPUT)
  kMemoLine,      // a decimal memo index on a line (PUT)
  kUnknown,
};

struct Layout {
  Arg arg;
  size_t width;
};

Layout layout(uint8_t op) {
  switch (op) {
    // No argument.
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'R': case 'Q': case 'a':
    case 'b': case 'd': case '}': case 'e': case 'l': case ']': case 'o': case 's': case 'u':
    case 't': case ')': case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x81:
    case 0x92: case 0x93: case 0x94: case 0x8f: case 0x90: case 0x91: case 0x97: case 0x98:
      return {Arg::kNone, 0};
    // Fixed width.
    case 0x80: case 'K': case 'h': case 0x82: return {Arg::kFixed, 1};      // PROTO BININT1 BINGET EXT1
    case 'M': case 0x83: return {Arg::kFixed, 2};                           // BININT2 EXT2
    case 'J': case 'j': case 0x84: return {Arg::kFixed, 4};                 // BININT LONG_BINGET EXT4
    case 'G': return {Arg::kFixed, 8};                                      // BINFLOAT
    // Length-prefixed payloads.
    case 'U': case 'C': case 0x8c: case 0x8a: return {Arg::kLengthPrefix, 1};  // SHORT_BINSTRING SHORT_BINBYTES SHORT_BINUNICODE LONG1
    case 'T': case 'B': case 'X': case 0x8b: return {Arg::kLengthPrefix, 4};   // BINSTRING BINBYTES BINUNICODE LONG4
    case 0x8d: case 0x8e: case 0x96: case 0x95: return {Arg::kLengthPrefix, 8};  // BINUNICODE8 BINBYTES8 BYTEARRAY8 FRAME
    // Text arguments.
    case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': case 'g': return {Arg::kLine, 0};
    case 'c': case 'i': return {Arg::kTwoLines, 0};                         // GLOBAL INST
    // Memo writes.
    case 'q': return {Arg::kMemoIndex, 1};                                  // BINPUT
    case 'r': return {Arg::kMemoIndex, 4};                                  // LONG_BINPUT
    case 'p': return {Arg::kMemoLine, 0};                                   // PUT
    default: return {Arg::kUnknown, 0};
  }
}

uint64_t little_endian(const uint8_t* p, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace

std::string pickle_problem(const uint8_t* data, size_t size) {
  size_t pos = 0;
  while (pos < size) {
    const size_t at = pos;
    const uint8_t op = data[pos++];
    const size_t left = size - pos;
    const auto truncated = [&](const char* what) {
      return fmt::format("opcode 0x{:02x} at byte {}: {} runs past the end of the pickle ({} bytes)", op, at, what,
                         size);
    };
    const auto line_end = [&](size_t from) -> size_t {  // one past the '\n', or 0 if none
      const void* nl = std::memchr(data + from, '\n', size - from);
      return nl ? static_cast<size_t>(static_cast<const uint8_t*>(nl) - data) + 1 : 0;
    };
    const auto [arg, width] = layout(op);
    switch (arg) {
      case Arg::kUnknown:
        return "";  // not ours to judge
      case Arg::kNone:
        if (op == '.') return "";  // STOP: what follows is not read by the unpickler
        break;
      case Arg::kFixed:
        if (left < width) return truncated("its argument");
        pos += width;
        break;
      case Arg::kLengthPrefix: {
        if (left < width) return truncated("its length");
        const uint64_t length = little_endian(data + pos, width);
        pos += width;
        if (length > size - pos) {
          return fmt::format("opcode 0x{:02x} at byte {} declares {} bytes, but only {} follow", op, at, length,
                             size - pos);
        }
        pos += op == 0x95 ? 0 : static_cast<size_t>(length);  // a FRAME's bytes are opcodes: scan them
        break;
      }
      case Arg::kLine:
      case Arg::kTwoLines:
      case Arg::kMemoLine: {
        size_t end = line_end(pos);
        if (end != 0 && arg == Arg::kTwoLines) end = line_end(end);
        if (end == 0) return truncated("its text argument");
        if (arg == Arg::kMemoLine) {
          uint64_t index = 0;
          for (size_t i = pos; i + 1 < end && index <= size; ++i) {
            if (data[i] >= '0' && data[i] <= '9') index = index * 10 + (data[i] - '0');
          }
          if (index > size) return fmt::format("memo index {} at byte {} exceeds the pickle's size", index, at);
        }
        pos = end;
        break;
      }
      case Arg::kMemoIndex: {
        if (left < width) return truncated("its memo index");
        const uint64_t index = little_endian(data + pos, width);
        if (index > size) {
          return fmt::format("memo index {} at byte {} exceeds the pickle's size ({} bytes)", index, at, size);
        }
        pos += width;
        break;
      }
    }
  }
  return fmt::format("the pickle ends after {} bytes without its STOP opcode", size);
}

}  // namespace fisheval
