#!/usr/bin/env bash
# Builds fisheval with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# FISHEVAL_SANITIZE) in build-asan/ and runs the whole test suite with it: the GoogleTest
# binary and the end-to-end tests (which run the instrumented fisheval binary).
#
#   scripts/sanitize.sh [ctest arguments, e.g. -R Fuzz]
#
# LibTorch (the PyTorch wheel's), HDF5 and Boost (Debian's) are uninstrumented builds, so:
#   detect_container_overflow=0  std::vector annotations are only in our code; vectors
#                                grown in LibTorch and read here (or back) look overflowed
#   alloc_dealloc_mismatch=0,    memory allocated in one library and freed in another
#   new_delete_type_mismatch=0   (uninstrumented sized delete) is reported spuriously
#   LSan suppressions            scripts/sanitizers/lsan.supp: allocations LibTorch and
#                                its dependencies keep until exit (registries, thread pools)
#   UBSan suppressions           scripts/sanitizers/ubsan.supp (inline LibTorch headers)
#   halt_on_error=1              any UBSan finding in our code fails the test
# docs/RELIABILITY.md records what a run found.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${FISHEVAL_ASAN_BUILD_DIR:-build-asan}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_container_overflow=0:alloc_dealloc_mismatch=0:new_delete_type_mismatch=0:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/scripts/sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$ROOT/scripts/sanitizers/ubsan.supp}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFISHEVAL_SANITIZE=ON -DFISHEVAL_PCH=ON >&2
cmake --build "$BUILD" -j"$(nproc)" >&2
# The sanitized binaries are slower: generous per-test timeout.
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" --timeout 2400 "$@"
