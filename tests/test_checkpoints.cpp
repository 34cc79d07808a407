// checkpoints/: parameter selection, layer specs from the tap convention, clear errors for
// bad checkpoints and data, series and manifests, batch plans.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "checkpoints/dataset.h"
#include "base/error.h"
#include "checkpoints/load.h"
#include "checkpoints/series.h"
#include "reports/h5.h"
#include "support.h"

namespace fs = std::filesystem;

namespace fisheval::test {
namespace {

std::string temp_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("fisheval-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

TEST(Parameters, SelectionBySavedFlagsAndByGlobs) {
  const auto model = load_model(fixture("lora_ce.pt"));
  EXPECT_EQ(select_parameters(*model, ""),
            (std::vector<std::string>{"body.lora_A.weight", "body.lora_B.weight", "head.weight", "head.bias"}));
  EXPECT_EQ(select_parameters(*model, "*lora*"), (std::vector<std::string>{"body.lora_A.weight", "body.lora_B.weight"}));
  EXPECT_EQ(select_parameters(*model, "head.*,body.base.bias").size(), 3u);
  EXPECT_NE(error_of([&] { select_parameters(*model, "nothing*"); }).find("matches no parameter"), std::string::npos);
  EXPECT_EQ(count_parameters(*model, select_parameters(*model, "*lora*")), 2 * 6 + 8 * 2);
}

TEST(Parameters, NanParametersAreNamed) {
  auto model = load_model(fixture("mlp_tanh_ce.pt"));
  model->to(torch::kCPU, torch::kDouble);
  auto w = model->parameter("2.weight").detach().clone();
  w[0][0] = std::nan("");
  model->set_parameter("2.weight", w);
  const auto msg = error_of([&] { check_finite_parameters(*model, model->parameter_names()); });
  EXPECT_NE(msg.find("'2.weight' contains NaN"), std::string::npos) << msg;
}

TEST(TorchScript, LayersFromTheTapConvention) {
  const auto mlp = load_model(fixture("mlp_tanh_ce.pt"));
  ASSERT_EQ(mlp->layers().size(), 3u);
  EXPECT_EQ(mlp->layers()[0].weight, "0.weight");
  EXPECT_EQ(mlp->layers()[0].bias, "0.bias");
  EXPECT_EQ(mlp->layers()[0].activation, "tanh");
  EXPECT_EQ(mlp->layers()[2].activation, "identity");
  EXPECT_EQ(mlp->loss_hint(), "cross-entropy");
  const auto conv = load_model(fixture("conv_ce.pt"));
  ASSERT_EQ(conv->layers().size(), 3u);
  EXPECT_EQ(conv->layers()[0].kind, LayerKind::kConv2d);
  EXPECT_EQ(conv->layers()[0].padding, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(conv->layers()[1].stride, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(conv->layers()[0].activation, "relu");
  EXPECT_EQ(load_model(fixture("mlp_tanh_mse.pt"))->loss_hint(), "squared-error");
}

TEST(TorchScript, BadCheckpointsGiveClearErrors) {
  const auto dir = temp_dir("bad-ckpt");
  EXPECT_NE(error_of([&] { load_model(dir + "/missing.pt"); }).find("cannot open checkpoint"), std::string::npos);
  std::ofstream(dir + "/empty.pt").close();
  EXPECT_NE(error_of([&] { load_model(dir + "/empty.pt"); }).find("empty or truncated"), std::string::npos);
  {
    std::ifstream in(fixture("mlp_tanh_ce.pt"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir + "/truncated.pt", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    std::ofstream(dir + "/garbage.pt", std::ios::binary) << "this is not a checkpoint at all";
  }
  EXPECT_NE(error_of([&] { load_model(dir + "/truncated.pt"); }).find("not a readable PyTorch archive"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_model(dir + "/garbage.pt"); }).find("garbage.pt"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Hdf5Data, ShapesAndErrors) {
  const auto data = load_hdf5_dataset(fixture("seq_ce.h5"));
  EXPECT_EQ(data->size(), 48);
  const auto b = data->get({3, 1});
  EXPECT_EQ(b.inputs.get().sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(b.targets.scalar_type(), torch::kLong);
  const auto dir = temp_dir("bad-h5");
  {
    auto f = h5::create_in_memory(dir + "/mismatch.h5");
    h5::write_array(f, "inputs", h5::Array{{3, 2}, std::vector<double>(6, 1.0)}, false);
    h5::write_array(f, "targets", h5::Array{{4}, std::vector<double>(4, 0.0)}, true);
    h5::save(f, dir + "/mismatch.h5");
  }
  {
    auto f = h5::create_in_memory(dir + "/notargets.h5");
    h5::write_array(f, "inputs", h5::Array{{3, 2}, std::vector<double>(6, 1.0)}, false);
    h5::save(f, dir + "/notargets.h5");
  }
  {
    auto f = h5::create_in_memory(dir + "/nan.h5");
    h5::write_array(f, "inputs", h5::Array{{2, 1}, {1.0, std::nan("")}}, false);
    h5::write_array(f, "targets", h5::Array{{2}, {0.0, 1.0}}, true);
    h5::save(f, dir + "/nan.h5");
  }
  std::ofstream(dir + "/corrupt.h5") << "not hdf5";
  EXPECT_NE(error_of([&] { load_hdf5_dataset(dir + "/mismatch.h5"); }).find("same first dimension"), std::string::npos);
  EXPECT_NE(error_of([&] { load_hdf5_dataset(dir + "/notargets.h5"); }).find("no dataset 'targets'"), std::string::npos);
  EXPECT_NE(error_of([&] { load_hdf5_dataset(dir + "/nan.h5"); }).find("NaN"), std::string::npos);
  EXPECT_NE(error_of([&] { load_hdf5_dataset(dir + "/corrupt.h5"); }).find("cannot read data file"), std::string::npos);
  EXPECT_NE(error_of([&] { open_dataset(dir + "/none.h5"); }).find("does not exist"), std::string::npos);
  fs::remove_all(dir);
}

TEST(BatchPlan, DeterministicAndWithoutRepeatsInABatch) {
  const auto seq = plan_batches(10, 4, 3, BatchSampling::kSequential, 0);
  EXPECT_EQ(seq[0], (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(seq[2], (std::vector<int64_t>{0, 1, 2, 3}));  // wraps to the start, never inside a batch
  const auto r1 = plan_batches(10, 4, 5, BatchSampling::kRandom, 7);
  EXPECT_EQ(r1, plan_batches(10, 4, 5, BatchSampling::kRandom, 7));
  EXPECT_NE(r1, plan_batches(10, 4, 5, BatchSampling::kRandom, 8));
  for (auto b : r1) {
    std::sort(b.begin(), b.end());
    EXPECT_EQ(std::unique(b.begin(), b.end()), b.end());
  }
  EXPECT_THROW(plan_batches(3, 4, 1, BatchSampling::kSequential, 0), InputError);
  EXPECT_THROW(plan_batches(10, 0, 1, BatchSampling::kSequential, 0), InputError);
}

TEST(Series, StepsFromFileNamesAndManifests) {
  EXPECT_EQ(step_from_filename("runs/a/ckpt_step1200.pt"), 1200);
  EXPECT_EQ(step_from_filename("epoch-3-step-450.pt"), 450);
  EXPECT_EQ(step_from_filename("final.pt"), -1);
  const auto files = series_from_files({"x/final.pt", "x/s10.pt"});
  EXPECT_EQ(files[0].step, 0);
  EXPECT_EQ(files[1].step, 10);

  const auto series = load_series(fixture("series"));
  ASSERT_EQ(series.size(), 3u);
  EXPECT_EQ(series[2].step, 100);
  EXPECT_EQ(series[2].extra.at("epoch"), "2");
  EXPECT_TRUE(fs::exists(series[1].path));

  const auto dir = temp_dir("series");
  std::vector<CheckpointEntry> entries{{dir + "/a_step5.pt", 5, {{"epoch", "1"}}}, {dir + "/b.pt", 9, {}}};
  write_manifest(dir + "/manifest.csv", entries);
  const auto back = load_series(dir);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].path, entries[0].path);
  EXPECT_EQ(back[1].step, 9);
  EXPECT_EQ(back[0].extra.at("epoch"), "1");

  std::ofstream(dir + "/bad1.csv") << "file,epoch\na.pt,1\n";
  std::ofstream(dir + "/bad2.csv") << "path,step\na.pt,twelve\n";
  std::ofstream(dir + "/bad3.csv") << "path,step\na.pt,1,extra\n";
  EXPECT_NE(error_of([&] { load_series(dir + "/bad1.csv"); }).find("'path' and 'step'"), std::string::npos);
  EXPECT_NE(error_of([&] { load_series(dir + "/bad2.csv"); }).find("not an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { load_series(dir + "/bad3.csv"); }).find("line 2"), std::string::npos);
  EXPECT_NE(error_of([&] { load_series(dir + "/nothing"); }).find("does not exist"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fisheval::test
