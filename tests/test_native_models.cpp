// The built-in native models: their forward passes against references built from
// torch::nn modules (ViT with the LoRA adapters merged into the weights), their taps
// against the float64 autograd oracles (per-sample gradients, Jacobian products through
// set_parameter's dual tensors), and native checkpoints (round trip, broken files).
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "base/error.h"
#include "checkpoints/load.h"
#include "checkpoints/native_model.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "support.h"

namespace fs = std::filesystem;

namespace fisheval::test {
namespace {

ModelConfig small_config(const std::string& model, const std::string& activation = "tanh") {
  ModelConfig c;
  c.model = model;
  c.input_shape = {1, 8, 8};
  c.num_classes = 5;
  c.activation = activation;
  c.widths = {7, 6};
  c.channels = {3, 4};
  c.hidden = 6;
  c.patch = 4;
  c.dim = 8;
  c.depth = 2;
  c.heads = 2;
  c.mlp_dim = 10;
  c.lora_rank = 2;
  c.lora_alpha = 3;
  c.lora_targets = "q,v";
  return c;
}

// A float64 model with every LoRA B nonzero (so every adapter has gradients).
std::unique_ptr<NativeModel> small_model(const ModelConfig& c, uint64_t seed = 3) {
  auto m = make_builtin_model(c, seed);
  m->to(torch::kCPU, torch::kDouble);
  torch::manual_seed(static_cast<int64_t>(seed));
  for (const auto& name : m->parameter_names()) {
    if (name.find("lora_B") != std::string::npos) m->set_parameter(name, 0.3 * torch::randn_like(m->parameter(name)));
  }
  return m;
}

Batch small_batch(int64_t n, int64_t seed = 11) {
  torch::manual_seed(seed);
  Batch b;
  b.inputs = torch::randn({n, 1, 8, 8}, torch::kDouble);
  b.targets = torch::randint(0, 5, {n}, torch::kLong);
  return b;
}

std::string temp_path(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("fisheval_native_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

template <class M>
void copy_into(M& module_param, const at::Tensor& value) {
  torch::NoGradGuard ng;
  module_param.copy_(value);
}

struct Named {
  std::string label;
  ModelConfig config;
};
void PrintTo(const Named& n, std::ostream* os) { *os << n.label; }

std::vector<Named> all_models() {
  return {{"mlp_tanh", small_config("mlp", "tanh")}, {"mlp_relu", small_config("mlp", "relu")},
          {"mlp_gelu", small_config("mlp", "gelu")}, {"cnn", small_config("cnn", "relu")},
          {"autoencoder", small_config("autoencoder", "tanh")},
          {"vit", small_config("vit")},              {"vit_lora", small_config("vit-lora")}};
}

class NativeModelTest : public testing::TestWithParam<Named> {};

TEST_P(NativeModelTest, TapsGivePerSampleGradientsAndJacobianProducts) {
  auto m = small_model(GetParam().config);
  const auto params = select_parameters(*m, "");
  set_trainable(*m, params);
  const auto b = small_batch(6);
  mvp::Linearisation lin(*m, params, b.inputs);
  // Every trainable parameter of these models belongs to a tapped layer, except the
  // ViT's position embedding and layer norms.
  EXPECT_EQ(lin.per_sample_engine() == mvp::PerSampleEngine::kTaps, GetParam().config.model != "vit");
  const auto loss = mvp::make_loss("cross-entropy");
  const auto r = loss->logit_grad(lin.logits(), b.targets);
  const auto J = oracle::per_sample_grads(*m, params, b, true);
  EXPECT_GT(J.abs().sum(1).min().item<double>(), 0);  // no all-zero rows: a meaningful comparison
  EXPECT_LT(rel_err(lin.per_sample(r), J), 1e-10);
  EXPECT_LT(rel_err(lin.gram(r, r), torch::mm(J, J.t())), 1e-10);
  const auto Jz = oracle::logit_jacobian(*m, params, b.inputs);  // [N, C, P]
  const auto v = torch::randn({Jz.size(2)}, torch::kDouble);
  EXPECT_LT(rel_err(lin.jvp(v), torch::matmul(Jz, v)), 1e-10);  // forward mode through set_parameter
}

TEST_P(NativeModelTest, TapsAreLayerInputsAndPreActivationOutputs) {
  auto m = small_model(GetParam().config);
  const auto b = small_batch(3);
  m->forward(b.inputs);
  const auto taps = m->taps();
  const auto& layers = m->layers();
  ASSERT_EQ(taps.size(), layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    ASSERT_TRUE(taps[l].input.defined() && taps[l].output.defined()) << layers[l].name;
    const auto& s = layers[l];
    const auto w = m->parameter(s.weight);
    const auto bias = s.bias.empty() ? at::Tensor() : m->parameter(s.bias);
    const auto expected = s.kind == LayerKind::kLinear
                              ? torch::matmul(taps[l].input, w.t()) + (bias.defined() ? bias : torch::zeros({1}, w.options()))
                              : torch::conv2d(taps[l].input, w, bias, s.stride, s.padding);
    EXPECT_LT(rel_err(taps[l].output, expected), 1e-12) << s.name;
  }
  if (GetParam().config.model == "mlp") {
    // The next layer's input is the activation of this layer's (pre-activation) output.
    for (size_t l = 0; l + 1 < layers.size(); ++l) {
      const auto& act = layers[l].activation;
      const auto h = act == "tanh" ? torch::tanh(taps[l].output)
                     : act == "relu" ? torch::relu(taps[l].output)
                                     : torch::gelu(taps[l].output);
      EXPECT_LT(rel_err(taps[l + 1].input, h), 1e-14);
    }
    EXPECT_EQ(layers.back().activation, "identity");
  }
}

TEST_P(NativeModelTest, CheckpointRoundTrip) {
  auto m = small_model(GetParam().config);
  NativeCheckpointInfo info;
  info.step = 42;
  info.epoch = 1.5;
  info.metrics["test_accuracy"] = 0.75;
  info.notes["optimizer"] = "ief";
  const auto path = temp_path(GetParam().label + ".pt");
  save_native_checkpoint(*m, path, info);
  auto loaded = load_model(path);  // dispatch: not a TorchScript archive
  EXPECT_EQ(loaded->format(), "native:" + GetParam().config.model);
  EXPECT_EQ(loaded->parameter_names(), m->parameter_names());
  for (const auto& name : m->parameter_names()) {
    EXPECT_TRUE(torch::equal(loaded->parameter(name), m->parameter(name))) << name;
    EXPECT_EQ(loaded->saved_trainable(name), m->saved_trainable(name)) << name;
  }
  EXPECT_EQ(loaded->layers().size(), m->layers().size());
  const auto b = small_batch(4);
  EXPECT_TRUE(torch::equal(loaded->forward(b.inputs), m->forward(b.inputs)));
  NativeCheckpointInfo back;
  auto again = load_native_checkpoint(path, &back);
  EXPECT_EQ(back.step, 42);
  EXPECT_EQ(back.epoch, 1.5);
  EXPECT_EQ(back.metrics.at("test_accuracy"), 0.75);
  EXPECT_EQ(back.notes.at("optimizer"), "ief");
  EXPECT_EQ(again->config().widths, GetParam().config.widths);
  EXPECT_EQ(again->config().lora_alpha, GetParam().config.lora_alpha);
}

INSTANTIATE_TEST_SUITE_P(Builtin, NativeModelTest, testing::ValuesIn(all_models()),
                         [](const testing::TestParamInfo<Named>& i) { return i.param.label; });

TEST(NativeModels, MlpForwardIsTheWrittenFormula) {
  auto m = small_model(small_config("mlp", "gelu"));
  const auto x = small_batch(4).inputs.get();
  auto h = x.reshape({4, -1});
  h = torch::gelu(torch::matmul(h, m->parameter("fc0.weight").t()) + m->parameter("fc0.bias"));
  h = torch::gelu(torch::matmul(h, m->parameter("fc1.weight").t()) + m->parameter("fc1.bias"));
  const auto z = torch::matmul(h, m->parameter("fc2.weight").t()) + m->parameter("fc2.bias");
  EXPECT_LT(rel_err(m->forward(x), z), 1e-14);
}

TEST(NativeModels, AutoencoderForwardIsTheWrittenFormulaWithALinearCode) {
  auto c = small_config("autoencoder", "tanh");
  c.widths = {7, 3, 7};
  auto m = small_model(c);
  EXPECT_EQ(m->loss_hint(), "binary-cross-entropy");
  const auto x = small_batch(4).inputs.get();
  const auto lin = [&](const at::Tensor& h, int i) {
    const auto n = "fc" + std::to_string(i);
    return torch::matmul(h, m->parameter(n + ".weight").t()) + m->parameter(n + ".bias");
  };
  auto h = torch::tanh(lin(x.reshape({4, -1}), 0));
  h = lin(h, 1);  // the code layer (the narrowest) is linear
  h = torch::tanh(lin(h, 2));
  const auto z = lin(h, 3);  // logits of one Bernoulli per input pixel
  ASSERT_EQ(z.sizes(), (std::vector<int64_t>{4, 64}));
  EXPECT_LT(rel_err(m->forward(x), z), 1e-14);
  const auto& layers = m->layers();
  EXPECT_EQ(layers[1].activation, "identity");
  EXPECT_EQ(layers[3].activation, "sigmoid");  // Fishy's local family at the output: Bernoulli

  // The presets: the paper's [1000, 500×8, 250, 30, 250, 500×8, 1000] on 784 pixels.
  std::vector<int64_t> paper{1000, 500, 500, 500, 500, 500, 500, 500, 500, 250, 30,
                             250,  500, 500, 500, 500, 500, 500, 500, 500, 1000};
  EXPECT_EQ(autoencoder_widths("paper"), paper);
  EXPECT_EQ(autoencoder_widths("small"), (std::vector<int64_t>{256, 128, 128, 64, 16, 64, 128, 128, 256}));
  EXPECT_TRUE(autoencoder_widths("other").empty());
  ModelConfig pc;
  pc.model = "autoencoder";
  pc.widths = paper;
  pc.activation = "tanh";
  auto big = make_builtin_model(pc, 0);
  int64_t params = 0, in = 784;
  for (const int64_t w : paper) {
    params += (in + 1) * w;
    in = w;
  }
  params += (in + 1) * 784;
  int64_t counted = 0;
  for (const auto& n : big->parameter_names()) counted += big->parameter(n).numel();
  EXPECT_EQ(counted, params);
  EXPECT_EQ(big->layers()[10].activation, "identity");  // the 30-unit code
}

TEST(NativeModels, CnnForwardMatchesTorchNnModules) {
  const auto c = small_config("cnn", "relu");
  auto m = small_model(c);
  torch::nn::Sequential ref(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 3, 3).stride(2).padding(1)), torch::nn::ReLU(),
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).stride(2).padding(1)), torch::nn::ReLU(),
      torch::nn::Flatten(), torch::nn::Linear(4 * 2 * 2, 6), torch::nn::ReLU(), torch::nn::Linear(6, 5));
  ref->to(torch::kDouble);
  const std::vector<std::pair<int, std::string>> map{{0, "conv0"}, {2, "conv1"}, {5, "fc0"}, {7, "fc1"}};
  for (const auto& [i, name] : map) {
    auto params = ref[i]->named_parameters();
    copy_into(params["weight"], m->parameter(name + ".weight"));
    copy_into(params["bias"], m->parameter(name + ".bias"));
  }
  const auto x = small_batch(4).inputs.get();
  EXPECT_LT(rel_err(m->forward(x), ref->forward(x)), 1e-13);
}

TEST(NativeModels, VitLoraForwardMatchesMergedTorchNnReference) {
  const auto c = small_config("vit-lora");
  auto m = small_model(c);
  const double scale = c.lora_alpha / c.lora_rank;
  const auto p = [&](const std::string& n) { return m->parameter(n); };
  // W_eff = W + (α/r) B A for projections with adapters.
  const auto eff = [&](const std::string& proj) {
    auto w = p(proj + ".weight");
    if (proj.back() == 'q' || proj.back() == 'v') w = w + scale * torch::mm(p(proj + ".lora_B.weight"), p(proj + ".lora_A.weight"));
    return w;
  };
  const auto x = small_batch(3).inputs.get();
  namespace F = torch::nn::functional;
  // Patches by unfold (row-major over the grid, channel-major inside a patch).
  const auto patches = F::unfold(x, F::UnfoldFuncOptions({4, 4}).stride(4)).transpose(1, 2);
  auto h = torch::matmul(patches, p("patch_embed.weight").t()) + p("patch_embed.bias") + p("pos_embed");
  for (int b = 0; b < c.depth; ++b) {
    const std::string pre = "blocks." + std::to_string(b);
    torch::nn::LayerNorm n1(torch::nn::LayerNormOptions({c.dim}).eps(1e-5)), n2(torch::nn::LayerNormOptions({c.dim}).eps(1e-5));
    torch::nn::MultiheadAttention mha(torch::nn::MultiheadAttentionOptions(c.dim, c.heads));
    n1->to(torch::kDouble);
    n2->to(torch::kDouble);
    mha->to(torch::kDouble);
    copy_into(n1->weight, p(pre + ".norm1.weight"));
    copy_into(n1->bias, p(pre + ".norm1.bias"));
    copy_into(n2->weight, p(pre + ".norm2.weight"));
    copy_into(n2->bias, p(pre + ".norm2.bias"));
    const auto a = pre + ".attn.";
    copy_into(mha->in_proj_weight, torch::cat({eff(a + "q"), eff(a + "k"), eff(a + "v")}));
    copy_into(mha->in_proj_bias, torch::cat({p(a + "q.bias"), p(a + "k.bias"), p(a + "v.bias")}));
    copy_into(mha->out_proj->weight, eff(a + "o"));
    copy_into(mha->out_proj->bias, p(a + "o.bias"));
    const auto t = n1->forward(h).transpose(0, 1);  // [T, N, E]
    h = h + std::get<0>(mha->forward(t, t, t)).transpose(0, 1);
    const auto u = n2->forward(h);
    h = h + torch::matmul(torch::gelu(torch::matmul(u, p(pre + ".mlp.fc1.weight").t()) + p(pre + ".mlp.fc1.bias")),
                          p(pre + ".mlp.fc2.weight").t()) +
        p(pre + ".mlp.fc2.bias");
  }
  torch::nn::LayerNorm nf(torch::nn::LayerNormOptions({c.dim}).eps(1e-5));
  nf->to(torch::kDouble);
  copy_into(nf->weight, p("norm.weight"));
  copy_into(nf->bias, p("norm.bias"));
  const auto z = torch::matmul(nf->forward(h).mean(1), p("head.weight").t()) + p("head.bias");
  EXPECT_LT(rel_err(m->forward(x), z), 1e-12);
}

TEST(NativeModels, VitLoraTrainsOnlyAdaptersAndHead) {
  auto m = make_builtin_model(small_config("vit-lora"), 1);
  for (const auto& name : m->parameter_names()) {
    const bool adapter = name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
    const bool head = name.rfind("head.", 0) == 0;
    EXPECT_EQ(m->saved_trainable(name), adapter || head) << name;
    if (name.find(".lora_B.") != std::string::npos) EXPECT_EQ(m->parameter(name).abs().max().item<double>(), 0.0);
  }
  // Adapters on q and v only: 2 blocks × 2 projections × (A, B).
  int adapters = 0;
  for (const auto& l : m->layers()) adapters += l.name.find("lora_") != std::string::npos;
  EXPECT_EQ(adapters, 8);
}

TEST(NativeModels, SetParameterSwapsTheTensor) {
  auto m = small_model(small_config("mlp"));
  const auto x = small_batch(2).inputs;
  const auto before = m->forward(x);
  const auto w = m->parameter("fc2.weight");
  m->set_parameter("fc2.weight", torch::zeros_like(w));
  const auto after = m->forward(x);
  EXPECT_TRUE(torch::allclose(after, m->parameter("fc2.bias").expand_as(after)));
  m->set_parameter("fc2.weight", w);
  EXPECT_TRUE(torch::equal(m->forward(x), before));
  EXPECT_THROW(m->set_parameter("fc2.weight", torch::zeros({2, 2}, torch::kDouble)), Error);
  EXPECT_THROW(m->set_parameter("nope", w), Error);
  EXPECT_THROW(m->forward(torch::zeros({2, 1, 9, 9}, torch::kDouble)), InputError);
}

TEST(NativeModels, InvalidConfigsAreInputErrors) {
  auto c = small_config("vit-lora");
  c.patch = 3;  // does not divide 8
  EXPECT_THROW(make_builtin_model(c, 0), InputError);
  c = small_config("vit-lora");
  c.lora_targets = "q,x";
  EXPECT_THROW(make_builtin_model(c, 0), InputError);
  c = small_config("mlp");
  c.activation = "swish";
  EXPECT_THROW(make_builtin_model(c, 0), InputError);
  c.model = "resnet";
  EXPECT_THROW(make_builtin_model(c, 0), InputError);
}

std::string load_error(const std::string& path) {
  try {
    load_model(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

void write_file(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(NativeCheckpoints, BrokenFilesAreClearInputErrors) {
  auto m = make_builtin_model(small_config("mlp"), 0);
  const auto good = temp_path("good.pt");
  save_native_checkpoint(*m, good, {});
  std::ifstream in(good, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(temp_path("half.pt"), std::vector<char>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  EXPECT_NE(load_error(temp_path("half.pt")).find("not a readable PyTorch archive"), std::string::npos)
      << load_error(temp_path("half.pt"));
  const std::string text = "just some text, not a checkpoint";
  write_file(temp_path("text.pt"), std::vector<char>(text.begin(), text.end()));
  EXPECT_NE(load_error(temp_path("text.pt")).find("neither a TorchScript archive nor a native"), std::string::npos);

  // A pickled dict that is not ours.
  c10::impl::GenericDict other(c10::StringType::get(), c10::AnyType::get());
  other.insert("weights", torch::zeros({2}));
  write_file(temp_path("other.pt"), torch::pickle_save(other));
  EXPECT_NE(load_error(temp_path("other.pt")).find("without a 'format' entry"), std::string::npos)
      << load_error(temp_path("other.pt"));

  // Our format, but the state does not fit the config (widths 7,6 saved, config says 9,6).
  auto root = torch::pickle_load(bytes).toGenericDict();
  auto config = root.at("config").toGenericDict();
  config.insert_or_assign("widths", c10::List<int64_t>({9, 6}));
  write_file(temp_path("mismatch.pt"), torch::pickle_save(root));
  const auto msg = load_error(temp_path("mismatch.pt"));
  EXPECT_NE(msg.find("parameter 'fc0.weight' has shape [7, 64], the config needs [9, 64]"), std::string::npos) << msg;
}

}  // namespace
}  // namespace fisheval::test
