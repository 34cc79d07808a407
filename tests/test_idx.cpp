// Fashion-MNIST from Debian's IDX files (real data), IDX files that are broken in the
// usual ways (written here), and the seeded epoch batches of the trainer.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <unistd.h>

#include "checkpoints/dataset.h"
#include "base/error.h"

namespace fs = std::filesystem;

namespace fisheval::test {
namespace {

std::string temp_dir() {
  const auto dir = fs::temp_directory_path() / ("fisheval_idx_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir.string();
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

// An IDX header: magic 0 0 8 ndims, then the sizes big-endian.
std::vector<uint8_t> idx_header(std::vector<uint32_t> dims, uint8_t type = 0x08) {
  std::vector<uint8_t> out{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(d >> s));
  }
  return out;
}

// The InputError message of read_idx(path), or "" when it did not throw.
std::string idx_error(const std::string& path) {
  try {
    read_idx(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(FashionMnist, RealTrainAndTestSplits) {
  for (const auto& [split, count] : {std::pair<std::string, int64_t>{"train", 60000}, {"test", 10000}}) {
    const auto data = load_fashion_mnist(split);
    ASSERT_EQ(data->size(), count) << split;
    std::vector<int64_t> all(count);
    std::iota(all.begin(), all.end(), 0);
    const auto b = data->get(all);
    EXPECT_EQ(b.inputs.get().sizes(), (std::vector<int64_t>{count, 1, 28, 28}));
    EXPECT_EQ(b.inputs.get().scalar_type(), torch::kFloat);
    EXPECT_EQ(b.targets.scalar_type(), torch::kLong);
    EXPECT_EQ(b.targets.min().item<int64_t>(), 0);
    EXPECT_EQ(b.targets.max().item<int64_t>(), 9);
    // Fashion-MNIST is balanced: 6000 / 1000 images per class.
    const auto counts = torch::bincount(b.targets);
    EXPECT_TRUE(counts.eq(count / 10).all().item<bool>()) << counts;
    if (split == "train") {
      // Standardised with the training set's own mean and std (0.2860, 0.3530).
      EXPECT_NEAR(b.inputs.get().mean().item<double>(), 0.0, 2e-3);
      EXPECT_NEAR(b.inputs.get().std().item<double>(), 1.0, 2e-3);
    }
  }
}

TEST(FashionMnist, RawIdxFilesHaveTheirDocumentedShapes) {
  const auto dir = fashion_mnist_dir();
  const auto images = read_idx(dir + "/t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(images.dims, (std::vector<int64_t>{10000, 28, 28}));
  EXPECT_EQ(images.data.size(), 10000u * 28 * 28);
  const auto labels = read_idx(dir + "/train-labels-idx1-ubyte.gz");
  EXPECT_EQ(labels.dims, (std::vector<int64_t>{60000}));
  EXPECT_LE(*std::max_element(labels.data.begin(), labels.data.end()), 9);
}

TEST(FashionMnist, PixelTargetsAreTheRawIntensities) {
  // The IDX bytes read on their own, byte/255, against the targets of fashion-mnist-pixels.
  const auto images = read_idx(fashion_mnist_dir() + "/t10k-images-idx3-ubyte.gz");
  const auto data = open_dataset("fashion-mnist-pixels:test:50");
  ASSERT_EQ(data->size(), 50);
  std::vector<int64_t> idx(50);
  std::iota(idx.begin(), idx.end(), 0);
  const auto b = data->get(idx);
  ASSERT_EQ(b.targets.sizes(), (std::vector<int64_t>{50, 784}));
  EXPECT_EQ(b.targets.scalar_type(), torch::kFloat);
  for (int64_t i : {0, 17, 49}) {
    for (int64_t p : {0, 300, 406, 783}) {
      EXPECT_FLOAT_EQ(b.targets[i][p].item<float>(), images.data[i * 784 + p] / 255.0f) << i << " " << p;
    }
  }
  EXPECT_GE(b.targets.min().item<float>(), 0.0f);
  EXPECT_LE(b.targets.max().item<float>(), 1.0f);
  // The inputs are those of the labelled data.
  const auto labelled = open_dataset("fashion-mnist:test:50")->get(idx);
  EXPECT_TRUE(torch::equal(b.inputs.get(), labelled.inputs.get()));
  EXPECT_THROW(open_dataset("fashion-mnist-pixels:valid"), InputError);
}

TEST(FashionMnist, OpenDatasetSpecs) {
  EXPECT_EQ(open_dataset("fashion-mnist:train:100")->size(), 100);
  EXPECT_EQ(open_dataset("fashion-mnist:test")->size(), 10000);
  EXPECT_THROW(open_dataset("fashion-mnist:validation"), InputError);
  EXPECT_THROW(open_dataset("fashion-mnist:train:many"), InputError);
}

TEST(FashionMnist, MissingPackageIsAClearError) {
  const char* old = std::getenv("FISHEVAL_FASHION_MNIST_DIR");
  const std::string saved = old ? old : "";
  setenv("FISHEVAL_FASHION_MNIST_DIR", "/nonexistent/fashion-mnist", 1);
  try {
    load_fashion_mnist("train");
    ADD_FAILURE() << "no error for a missing folder";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install dataset-fashion-mnist"), std::string::npos) << e.what();
  }
  if (old) {
    setenv("FISHEVAL_FASHION_MNIST_DIR", saved.c_str(), 1);
  } else {
    unsetenv("FISHEVAL_FASHION_MNIST_DIR");
  }
}

TEST(IdxReader, ReadsWhatItIsGiven) {
  const auto dir = temp_dir();
  auto bytes = idx_header({2, 3});
  for (uint8_t v = 0; v < 6; ++v) bytes.push_back(v * 10);
  write_bytes(dir + "/ok.idx", bytes);
  write_gz(dir + "/ok.idx.gz", bytes);
  for (const auto* name : {"/ok.idx", "/ok.idx.gz"}) {
    const auto a = read_idx(dir + name);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a.data, (std::vector<uint8_t>{0, 10, 20, 30, 40, 50}));
  }
}

TEST(IdxReader, RejectsTruncatedFiles) {
  const auto dir = temp_dir();
  auto bytes = idx_header({10, 28, 28});
  bytes.resize(bytes.size() + 10 * 28 * 28 - 100, 7);  // 100 bytes short
  write_bytes(dir + "/short.idx", bytes);
  write_gz(dir + "/short.idx.gz", bytes);
  for (const auto* name : {"/short.idx", "/short.idx.gz"}) {
    const auto msg = idx_error(dir + name);
    EXPECT_NE(msg.find("truncated"), std::string::npos) << name << ": " << msg;
    EXPECT_NE(msg.find("7840 bytes"), std::string::npos) << msg;
  }
  auto header_only = idx_header({10, 28, 28});
  header_only.resize(9);  // the second size cut off
  write_bytes(dir + "/header.idx", header_only);
  EXPECT_NE(idx_error(dir + "/header.idx").find("truncated in its header"), std::string::npos);
  write_bytes(dir + "/empty.idx", {});
  EXPECT_NE(idx_error(dir + "/empty.idx").find("empty or truncated"), std::string::npos);
  auto trailing = idx_header({2});
  trailing.insert(trailing.end(), {1, 2, 3});
  write_bytes(dir + "/trailing.idx", trailing);
  EXPECT_NE(idx_error(dir + "/trailing.idx").find("trailing data"), std::string::npos);
}

TEST(IdxReader, RejectsWrongMagic) {
  const auto dir = temp_dir();
  auto floats = idx_header({4}, 0x0D);  // float data: not unsigned bytes
  floats.resize(floats.size() + 16, 0);
  write_bytes(dir + "/float.idx", floats);
  EXPECT_NE(idx_error(dir + "/float.idx").find("magic 00000d01"), std::string::npos) << idx_error(dir + "/float.idx");
  const std::string text = "this is not an IDX file at all";
  write_bytes(dir + "/text.idx", std::vector<uint8_t>(text.begin(), text.end()));
  EXPECT_NE(idx_error(dir + "/text.idx").find("not an unsigned-byte IDX file"), std::string::npos);
  EXPECT_NE(idx_error(dir + "/absent.idx").find("cannot open"), std::string::npos);
}

TEST(EpochBatches, SeededPermutationsCutIntoFullBatches) {
  std::vector<int64_t> pool;
  for (int64_t i = 100; i < 203; ++i) pool.push_back(i);  // 103 samples
  const auto e0 = epoch_batches(pool, 10, 5, 0);
  ASSERT_EQ(e0.size(), 10u);  // the last 3 samples do not make a batch
  std::set<int64_t> seen;
  for (const auto& b : e0) {
    EXPECT_EQ(b.size(), 10u);
    for (auto i : b) {
      EXPECT_TRUE(i >= 100 && i < 203);
      EXPECT_TRUE(seen.insert(i).second) << "sample " << i << " twice in one epoch";
    }
  }
  EXPECT_EQ(epoch_batches(pool, 10, 5, 0), e0);   // the same (seed, epoch): the same batches
  EXPECT_NE(epoch_batches(pool, 10, 5, 1), e0);   // another epoch: another order
  EXPECT_NE(epoch_batches(pool, 10, 6, 0), e0);   // another seed: another order
  EXPECT_THROW(epoch_batches(pool, 200, 5, 0), InputError);
}

}  // namespace
}  // namespace fisheval::test
