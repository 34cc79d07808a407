# LibTorch for fisheval: by default the one inside the project environment's PyTorch
# (.venv/, made by scripts/setup.sh from requirements.txt), a CUDA build.
#
#   FISHEVAL_PYTHON   the project environment's interpreter (default .venv/bin/python);
#                     it also runs every Python helper (plots, fixtures, tests).
#   Torch_DIR         another LibTorch's share/cmake/Torch (skips the lookup below).
#
# How the CUDA parts fit (docs/INSTALL.md has the details):
# * Torch's CMake package needs a CUDA toolkit (nvcc and headers, 12.6 or newer) at
#   configure time only: it checks the toolkit and sets flags. The machine's toolkit does
#   this; fisheval itself contains no CUDA source.
# * Linking and running use the CUDA libraries the wheel brought (site-packages/nvidia/*/lib,
#   found through libtorch_cuda.so's own $ORIGIN rpath): those are the versions
#   libtorch_cuda.so was built against. The machine's toolkit may be older (13.0 here
#   against the wheel's 13.2); its NCCL lacks symbols libtorch_cuda.so needs
#   (ncclPutSignal, ...), so the linker is pointed at the wheel's libraries first
#   (-rpath-link) and the toolkit's own libraries are left out of the link.
set(FISHEVAL_PYTHON "${PROJECT_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python of the project environment (torch, h5py, matplotlib, transformers, peft)")

if(NOT Torch_DIR)
  if(NOT EXISTS "${FISHEVAL_PYTHON}")
    message(FATAL_ERROR "No project environment at ${FISHEVAL_PYTHON}: run scripts/setup.sh "
                        "(or pass -DFISHEVAL_PYTHON=... or -DTorch_DIR=...)")
  endif()
  execute_process(
    COMMAND "${FISHEVAL_PYTHON}" -c "import os, torch; print(torch.utils.cmake_prefix_path + '/Torch'); print(os.path.dirname(os.path.dirname(torch.__file__)))"
    OUTPUT_VARIABLE _fisheval_torch_out RESULT_VARIABLE _fisheval_torch_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _fisheval_torch_rc EQUAL 0)
    message(FATAL_ERROR "${FISHEVAL_PYTHON} cannot import torch: run scripts/setup.sh")
  endif()
  string(REPLACE "\n" ";" _fisheval_torch_out "${_fisheval_torch_out}")
  list(GET _fisheval_torch_out 0 _fisheval_torch_dir)
  list(GET _fisheval_torch_out 1 FISHEVAL_SITE_PACKAGES)
  set(Torch_DIR "${_fisheval_torch_dir}" CACHE PATH "LibTorch's CMake package (from FISHEVAL_PYTHON's torch)")
endif()

# Torch's CUDA configuration warns about CMAKE_CUDA_ARCHITECTURES: it uses its own list.
set(CMAKE_CUDA_ARCHITECTURES OFF)
# (CMake 3.25 knows no C++20 dialect for nvcc; Torch would copy CMAKE_CXX_STANDARD to CUDA.)
set(CMAKE_CUDA_STANDARD 17)
find_package(Torch REQUIRED)

# The toolkit's libraries out of the link (see above); the wheel's CUDA libraries first.
list(FILTER TORCH_LIBRARIES EXCLUDE REGEX "^/usr/local/cuda")
set(FISHEVAL_TORCH_LINK_OPTIONS "")
if(NOT FISHEVAL_SITE_PACKAGES)
  get_filename_component(FISHEVAL_SITE_PACKAGES "${Torch_DIR}/../../../.." ABSOLUTE)
endif()
file(GLOB _fisheval_nvidia_libs LIST_DIRECTORIES true "${FISHEVAL_SITE_PACKAGES}/nvidia/*/lib")
foreach(dir ${_fisheval_nvidia_libs})
  list(APPEND FISHEVAL_TORCH_LINK_OPTIONS "-Wl,-rpath-link,${dir}")
endforeach()
if(TARGET torch_cuda OR EXISTS "${TORCH_INSTALL_PREFIX}/lib/libtorch_cuda.so")
  set(FISHEVAL_TORCH_CUDA ON)
else()
  set(FISHEVAL_TORCH_CUDA OFF)
endif()
message(STATUS "fisheval: LibTorch ${Torch_VERSION} from ${Torch_DIR} (CUDA compiled in: ${FISHEVAL_TORCH_CUDA})")
