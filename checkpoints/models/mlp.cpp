// mlp: inputs flattened, then fc0 … fc{L−1} (hidden widths, each followed by the
// activation) and fc{L} to the logits:
//   h_0 = flatten(x),  h_{i+1} = act(W_i h_i + b_i),  z = W_L h_L + b_L.
// The names match nn.Sequential(OrderedDict(flatten, fc0, act0, fc1, …)).
#include <torch/torch.h>

#include "checkpoints/models/builtin.h"

namespace fisheval {
namespace {

class Mlp final : public NativeModel {
 public:
  Mlp(const ModelConfig& c, at::Generator& gen) : NativeModel(c) {
    int64_t in = c.input_shape[0] * c.input_shape[1] * c.input_shape[2];
    for (size_t i = 0; i < c.widths.size(); ++i) {
      hidden_.push_back(add_linear("fc" + std::to_string(i), in, c.widths[i], true, c.activation, true, gen));
      in = c.widths[i];
    }
    out_ = add_linear("fc" + std::to_string(c.widths.size()), in, c.num_classes, true, "identity", true, gen);
  }

 protected:
  at::Tensor forward_impl(const at::Tensor& x) override {
    auto h = x.reshape({x.size(0), -1});
    for (const auto l : hidden_) h = activate(config().activation, linear(l, h));
    return linear(out_, h);
  }

 private:
  std::vector<size_t> hidden_;
  size_t out_ = 0;
};

}  // namespace

at::Tensor activate(const std::string& name, const at::Tensor& x) {
  if (name == "tanh") return torch::tanh(x);
  if (name == "relu") return torch::relu(x);
  if (name == "gelu") return torch::gelu(x);
  return x;
}

std::unique_ptr<NativeModel> make_mlp(const ModelConfig& config, at::Generator& generator) {
  return std::make_unique<Mlp>(config, generator);
}

}  // namespace fisheval
