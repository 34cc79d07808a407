// cnn: 3×3 convolutions with stride 2 and zero padding 1 (conv0, conv1, …; channels
// from the config, each followed by the activation; 28×28 → 14×14 → 7×7), then the
// flattened feature map through fc0 (hidden width, activation) and fc1 to the logits.
#include <torch/torch.h>

#include "checkpoints/models/builtin.h"

namespace fisheval {
namespace {

class Cnn final : public NativeModel {
 public:
  Cnn(const ModelConfig& c, at::Generator& gen) : NativeModel(c) {
    int64_t in = c.input_shape[0], h = c.input_shape[1], w = c.input_shape[2];
    for (size_t i = 0; i < c.channels.size(); ++i) {
      convs_.push_back(add_conv2d("conv" + std::to_string(i), in, c.channels[i], 3, 2, 1, c.activation, true, gen));
      in = c.channels[i];
      h = (h - 1) / 2 + 1;  // ⌊(h + 2·1 − 3)/2⌋ + 1
      w = (w - 1) / 2 + 1;
    }
    fc0_ = add_linear("fc0", in * h * w, c.hidden, true, c.activation, true, gen);
    fc1_ = add_linear("fc1", c.hidden, c.num_classes, true, "identity", true, gen);
  }

 protected:
  at::Tensor forward_impl(const at::Tensor& x) override {
    auto h = x;
    for (const auto l : convs_) h = activate(config().activation, conv2d(l, h));
    h = activate(config().activation, linear(fc0_, h.reshape({h.size(0), -1})));
    return linear(fc1_, h);
  }

 private:
  std::vector<size_t> convs_;
  size_t fc0_ = 0, fc1_ = 0;
};

}  // namespace

std::unique_ptr<NativeModel> make_cnn(const ModelConfig& config, at::Generator& generator) {
  return std::make_unique<Cnn>(config, generator);
}

}  // namespace fisheval
