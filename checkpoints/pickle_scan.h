// A bounds check of a pickle before LibTorch's unpickler reads it.
//
// A TorchScript archive holds its module state and constants as pickles (data.pkl,
// constants.pkl, code/*.debug_pkl). LibTorch 1.13's unpickler trusts the lengths and memo
// indices written in them: one flipped byte in a string length (BINUNICODE, 4 bytes) made
// it reserve and fill 4 GB for an 8 KB checkpoint (found by fuzz_torchscript). This scan
// walks the opcodes (the formats of CPython's pickletools, protocols 0-5) and finds what
// no valid pickle has:
//   - an argument that runs past the end of the data (a length-prefixed string, bytes or
//     long whose declared length exceeds what is left; a truncated fixed-width argument;
//     a text argument without its newline; a FRAME longer than the rest);
//   - a memo index (BINPUT, LONG_BINPUT, PUT) larger than the pickle's size (a pickler
//     numbers its memo entries 0, 1, 2, ..., one per stored object, each at least one
//     opcode byte, so a valid index is below the size);
//   - data that ends before the STOP opcode.
// An opcode it does not know ends the scan without a verdict: the unpickler decides.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace fisheval {

// Empty when the scan found nothing wrong, else what is wrong and at which byte offset.
std::string pickle_problem(const uint8_t* data, size_t size);

}  // namespace fisheval
