// IDX files (MNIST format) and Fashion-MNIST as installed by Debian's
// dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist/*-ubyte.gz).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>

#include "checkpoints/dataset.h"
#include "base/error.h"
#include "base/limits.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {

constexpr double kMean = 0.2860, kStd = 0.3530;

class GzFile {
 public:
  explicit GzFile(const std::string& path) : f_(gzopen(path.c_str(), "rb")) {}
  ~GzFile() {
    if (f_) gzclose(f_);
  }
  bool ok() const { return f_ != nullptr; }
  // Reads exactly n bytes or returns false.
  bool read(void* buf, size_t n) {
    auto* p = static_cast<unsigned char*>(buf);
    while (n > 0) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n, 1u << 30));
      const int got = gzread(f_, p, chunk);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  bool at_end() {
    unsigned char c;
    return gzread(f_, &c, 1) == 0;
  }

 private:
  gzFile f_;
};

class TensorDataset final : public Dataset {
 public:
  TensorDataset(at::Tensor inputs, at::Tensor targets, std::string description)
      : inputs_(std::move(inputs)), targets_(std::move(targets)), description_(std::move(description)) {}
  int64_t size() const override { return inputs_.size(0); }
  std::string description() const override { return description_; }
  Batch get(const std::vector<int64_t>& indices) const override {
    auto idx = torch::tensor(indices, torch::kLong);
    return Batch{inputs_.index_select(0, idx), targets_.index_select(0, idx), indices};
  }

 private:
  at::Tensor inputs_, targets_;
  std::string description_;
};

std::string find_file(const std::string& dir, const std::string& base) {
  for (const auto& name : {base + ".gz", base}) {
    const auto p = fs::path(dir) / name;
    if (fs::exists(p)) return p.string();
  }
  throw InputError(fmt::format("Fashion-MNIST file {}(.gz) not found in '{}': install Debian's package "
                               "(apt-get install dataset-fashion-mnist) or set FISHEVAL_FASHION_MNIST_DIR",
                               base, dir));
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  GzFile f(path);
  if (!f.ok()) throw InputError(fmt::format("cannot open IDX file '{}'", path));
  unsigned char magic[4];
  if (!f.read(magic, 4)) throw InputError(fmt::format("IDX file '{}' is empty or truncated", path));
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 4) {
    throw InputError(fmt::format("'{}' is not an unsigned-byte IDX file (magic {:02x}{:02x}{:02x}{:02x}, expected "
                                 "000008nn)",
                                 path, magic[0], magic[1], magic[2], magic[3]));
  }
  IdxArray out;
  uint64_t count = 1;
  for (int d = 0; d < magic[3]; ++d) {
    unsigned char b[4];
    if (!f.read(b, 4)) throw InputError(fmt::format("IDX file '{}' is truncated in its header", path));
    const uint32_t n = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
    out.dims.push_back(n);
    count = n == 0 || count <= max_load_bytes() / n ? count * n : max_load_bytes() + 1;
    if (count > max_load_bytes()) {
      throw InputError(fmt::format("IDX file '{}' declares more data than fits in memory (limit {} bytes, see "
                                   "FISHEVAL_MAX_LOAD_BYTES)",
                                   path, max_load_bytes()));
    }
  }
  // The data in chunks as they arrive, so that memory follows the bytes the file holds,
  // not what its header declares (a 20-byte file declaring 57 MB had all of it allocated
  // and zeroed first; up to half the memory by default; found by fuzz_idx).
  constexpr uint64_t kChunk = uint64_t(1) << 20;
  while (out.data.size() < count) {
    const size_t have = out.data.size();
    const size_t n = static_cast<size_t>(std::min(kChunk, count - have));
    out.data.resize(have + n);
    if (!f.read(out.data.data() + have, n)) {
      throw InputError(fmt::format("IDX file '{}' is truncated: its header declares {} bytes of data", path, count));
    }
  }
  if (!f.at_end()) throw InputError(fmt::format("IDX file '{}' has trailing data after {} bytes", path, count));
  return out;
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("FISHEVAL_FASHION_MNIST_DIR");
  return env && *env ? env : "/usr/share/datasets/fashion-mnist";
}

std::unique_ptr<Dataset> load_fashion_mnist(const std::string& split, int64_t limit, FashionMnistTargets kind) {
  if (split != "train" && split != "test") {
    throw InputError(fmt::format("Fashion-MNIST split '{}' must be train or test", split));
  }
  const auto dir = fashion_mnist_dir();
  if (!fs::exists(dir)) {
    throw InputError(fmt::format("Fashion-MNIST not found ('{}' does not exist): install Debian's package "
                                 "(apt-get install dataset-fashion-mnist) or set FISHEVAL_FASHION_MNIST_DIR",
                                 dir));
  }
  const std::string prefix = split == "train" ? "train" : "t10k";
  const auto images = read_idx(find_file(dir, prefix + "-images-idx3-ubyte"));
  const auto labels = read_idx(find_file(dir, prefix + "-labels-idx1-ubyte"));
  if (images.dims.size() != 3 || labels.dims.size() != 1 || images.dims[0] != labels.dims[0]) {
    throw InputError(fmt::format("Fashion-MNIST {} files do not match: images {} and labels {}", split,
                                 fmt::join(images.dims, "x"), fmt::join(labels.dims, "x")));
  }
  int64_t M = images.dims[0];
  if (limit > 0) M = std::min(M, limit);
  const int64_t H = images.dims[1], W = images.dims[2];
  auto raw = torch::from_blob(const_cast<uint8_t*>(images.data.data()), {images.dims[0], 1, H, W}, torch::kUInt8);
  auto inputs = (raw.narrow(0, 0, M).to(torch::kFloat) / 255.0 - kMean) / kStd;
  if (kind == FashionMnistTargets::kPixels) {
    // The pixel intensities in [0, 1], one Bernoulli target per pixel (reconstruction).
    auto pixels = raw.narrow(0, 0, M).reshape({M, H * W}).to(torch::kFloat) / 255.0;
    return std::make_unique<TensorDataset>(
        inputs.contiguous(), pixels.contiguous(),
        fmt::format("fashion-mnist-pixels:{} ({} samples, 1x{}x{}, targets: the {} pixel intensities)", split, M, H, W,
                    H * W));
  }
  auto lab = torch::from_blob(const_cast<uint8_t*>(labels.data.data()), {labels.dims[0]}, torch::kUInt8);
  auto targets = lab.narrow(0, 0, M).to(torch::kLong);
  if (targets.max().item<int64_t>() > 9) throw InputError("Fashion-MNIST labels out of range 0..9");
  return std::make_unique<TensorDataset>(inputs.contiguous(), targets.contiguous(),
                                         fmt::format("fashion-mnist:{} ({} samples, 1x{}x{}, 10 classes)", split, M, H, W));
}

std::unique_ptr<Dataset> open_dataset(const std::string& spec) {
  const std::string name = spec.substr(0, spec.find(':'));
  if (name == "fashion-mnist" || name == "fashion-mnist-pixels") {
    std::string rest = spec.substr(name.size());
    std::string split = "test";
    int64_t limit = 0;
    if (!rest.empty()) {
      rest = rest.substr(1);
      const auto colon = rest.find(':');
      split = rest.substr(0, colon);
      if (colon != std::string::npos) {
        try {
          limit = std::stoll(rest.substr(colon + 1));
        } catch (const std::exception&) {
          throw InputError(fmt::format("data '{}': COUNT must be an integer ({}[:train|:test[:COUNT]])", spec, name));
        }
      }
    }
    return load_fashion_mnist(split, limit,
                              name == "fashion-mnist" ? FashionMnistTargets::kLabels : FashionMnistTargets::kPixels);
  }
  if (!fs::exists(spec)) {
    throw InputError(fmt::format(
        "data '{}' does not exist (an HDF5 file, fashion-mnist[:train|:test] or fashion-mnist-pixels[:train|:test])",
        spec));
  }
  return load_hdf5_dataset(spec);
}

}  // namespace fisheval
