// autoencoder: the deep autoencoder benchmark of second-order optimisation (Hinton and
// Salakhutdinov's network, made deeper in the Fishy paper). Inputs flattened, hidden
// Linear layers enc/dec fc0 … fc{L−1} of `widths`, then fc{L} back to the input size:
//   h_0 = flatten(x),  h_{i+1} = act_i(W_i h_i + b_i),  z = W_L h_L + b_L  (logits, [N, D])
// act_i is the configured activation except at the code layer — the first of the
// narrowest hidden layers — which is linear, as in the original network. The logits are
// those of one Bernoulli per input pixel: the loss is binary cross-entropy against the
// pixel intensities in [0, 1] (data "fashion-mnist-pixels", checkpoints/dataset.h).
#include <torch/torch.h>

#include <algorithm>

#include "checkpoints/models/builtin.h"

namespace fisheval {
namespace {

class Autoencoder final : public NativeModel {
 public:
  Autoencoder(const ModelConfig& c, at::Generator& gen) : NativeModel(c) {
    const int64_t D = c.input_shape[0] * c.input_shape[1] * c.input_shape[2];
    const auto code = std::min_element(c.widths.begin(), c.widths.end()) - c.widths.begin();
    int64_t in = D;
    for (size_t i = 0; i < c.widths.size(); ++i) {
      const std::string act = static_cast<int64_t>(i) == code ? "identity" : c.activation;
      acts_.push_back(act);
      hidden_.push_back(add_linear("fc" + std::to_string(i), in, c.widths[i], true, act, true, gen));
      in = c.widths[i];
    }
    out_ = add_linear("fc" + std::to_string(c.widths.size()), in, D, true, "sigmoid", true, gen);
  }

 protected:
  at::Tensor forward_impl(const at::Tensor& x) override {
    auto h = x.reshape({x.size(0), -1});
    for (size_t i = 0; i < hidden_.size(); ++i) h = activate(acts_[i], linear(hidden_[i], h));
    return linear(out_, h);
  }

 private:
  std::vector<size_t> hidden_;
  std::vector<std::string> acts_;
  size_t out_ = 0;
};

}  // namespace

std::vector<int64_t> autoencoder_widths(const std::string& preset) {
  const auto repeat = [](std::vector<int64_t>& v, int64_t width, int count) { v.insert(v.end(), count, width); };
  std::vector<int64_t> w;
  if (preset == "paper") {  // [1000, 500×8, 250, 30, 250, 500×8, 1000]
    w.push_back(1000);
    repeat(w, 500, 8);
    w.insert(w.end(), {250, 30, 250});
    repeat(w, 500, 8);
    w.push_back(1000);
  } else if (preset == "small") {  // [256, 128×2, 64, 16, 64, 128×2, 256]
    w.push_back(256);
    repeat(w, 128, 2);
    w.insert(w.end(), {64, 16, 64});
    repeat(w, 128, 2);
    w.push_back(256);
  }
  return w;
}

std::unique_ptr<NativeModel> make_autoencoder(const ModelConfig& config, at::Generator& generator) {
  return std::make_unique<Autoencoder>(config, generator);
}

}  // namespace fisheval
