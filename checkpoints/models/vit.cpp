// vit: a small vision transformer on non-overlapping patches (pre-norm blocks):
//   tokens   t_i = W_e vec(patch_i) + b_e + pos_i                 (patch_embed, pos_embed)
//   block    h ← h + W_o MHA(LN₁(h)) + b_o,   h ← h + fc2(gelu(fc1(LN₂(h))))
//   MHA      softmax(q kᵀ/√d_h) v per head, q = W_q a + b_q (likewise k, v)
//   logits   z = W_head mean_i LN(h)_i + b_head
// vit-lora adds LoRA adapters to the projections named in lora_targets:
//   q = W_q a + b_q + (α/r) B(A a),  A: Linear(dim → r), B: Linear(r → dim), no biases,
// A initialised as a Linear layer, B with zeros (the adapter starts as the identity
// change). Only the adapters and the head are trainable in vit-lora.
#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>

#include "base/error.h"
#include "checkpoints/models/builtin.h"

namespace fisheval {
namespace {

struct Projection {
  size_t base = 0;
  bool lora = false;
  size_t lora_a = 0, lora_b = 0;
};

struct Block {
  std::string prefix;
  Projection q, k, v, o;
  size_t fc1 = 0, fc2 = 0;
};

class Vit final : public NativeModel {
 public:
  Vit(const ModelConfig& c, at::Generator& gen) : NativeModel(c) {
    const bool lora = c.model == "vit-lora";
    const bool base_trainable = !lora;
    const auto targets = lora ? lora_target_list(c.lora_targets) : std::vector<std::string>{};
    const int64_t tokens = (c.input_shape[1] / c.patch) * (c.input_shape[2] / c.patch);
    const int64_t patch_dim = c.input_shape[0] * c.patch * c.patch;
    embed_ = add_linear("patch_embed", patch_dim, c.dim, true, "identity", base_trainable, gen);
    add_parameter("pos_embed", torch::empty({tokens, c.dim}).normal_(0, 0.02, gen), base_trainable);
    for (int64_t b = 0; b < c.depth; ++b) {
      Block blk;
      blk.prefix = fmt::format("blocks.{}", b);
      add_norm(blk.prefix + ".norm1", base_trainable);
      const auto proj = [&](const std::string& which) {
        Projection p;
        const auto name = blk.prefix + ".attn." + which;
        p.base = add_linear(name, c.dim, c.dim, true, "identity", base_trainable, gen);
        if (std::find(targets.begin(), targets.end(), which) != targets.end()) {
          p.lora = true;
          p.lora_a = add_linear(name + ".lora_A", c.dim, c.lora_rank, false, "identity", true, gen);
          p.lora_b = add_linear(name + ".lora_B", c.lora_rank, c.dim, false, "identity", true, gen);
          param(name + ".lora_B.weight").zero_();
        }
        return p;
      };
      blk.q = proj("q");
      blk.k = proj("k");
      blk.v = proj("v");
      blk.o = proj("o");
      add_norm(blk.prefix + ".norm2", base_trainable);
      blk.fc1 = add_linear(blk.prefix + ".mlp.fc1", c.dim, c.mlp_dim, true, "gelu", base_trainable, gen);
      blk.fc2 = add_linear(blk.prefix + ".mlp.fc2", c.mlp_dim, c.dim, true, "identity", base_trainable, gen);
      blocks_.push_back(blk);
    }
    add_norm("norm", base_trainable);
    head_ = add_linear("head", c.dim, c.num_classes, true, "identity", true, gen);
  }

 protected:
  at::Tensor forward_impl(const at::Tensor& x) override {
    const auto& c = config();
    const int64_t N = x.size(0), C = x.size(1), p = c.patch;
    const int64_t gh = x.size(2) / p, gw = x.size(3) / p;
    // [N, C, gh, p, gw, p] → [N, gh·gw, C·p·p]: one row per patch.
    const auto patches = x.reshape({N, C, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5}).reshape({N, gh * gw, C * p * p});
    auto h = linear(embed_, patches) + param("pos_embed");
    const int64_t heads = c.heads, dh = c.dim / c.heads, T = gh * gw;
    const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
    for (const auto& blk : blocks_) {
      const auto a = norm(blk.prefix + ".norm1", h);
      const auto split = [&](const at::Tensor& t) { return t.reshape({N, T, heads, dh}).transpose(1, 2); };
      const auto q = split(project(blk.q, a)), k = split(project(blk.k, a)), v = split(project(blk.v, a));
      const auto att = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) * scale, -1);
      const auto mixed = torch::matmul(att, v).transpose(1, 2).reshape({N, T, c.dim});
      h = h + project(blk.o, mixed);
      const auto a2 = norm(blk.prefix + ".norm2", h);
      h = h + linear(blk.fc2, torch::gelu(linear(blk.fc1, a2)));
    }
    return linear(head_, norm("norm", h).mean(1));
  }

 private:
  void add_norm(const std::string& name, bool trainable) {
    add_parameter(name + ".weight", torch::ones({config().dim}), trainable);
    add_parameter(name + ".bias", torch::zeros({config().dim}), trainable);
  }
  at::Tensor norm(const std::string& name, const at::Tensor& x) {
    return torch::layer_norm(x, {config().dim}, param(name + ".weight"), param(name + ".bias"), 1e-5);
  }
  at::Tensor project(const Projection& p, const at::Tensor& x) {
    auto y = linear(p.base, x);
    if (p.lora) {
      const double scale = config().lora_alpha / static_cast<double>(config().lora_rank);
      y = y + scale * linear(p.lora_b, linear(p.lora_a, x));
    }
    return y;
  }

  size_t embed_ = 0, head_ = 0;
  std::vector<Block> blocks_;
};

}  // namespace

std::vector<std::string> lora_target_list(const std::string& targets) {
  std::vector<std::string> out;
  std::string item;
  for (char ch : targets + ",") {
    if (ch == ',' || ch == ' ') {
      if (item.empty()) continue;
      if (item != "q" && item != "k" && item != "v" && item != "o") {
        throw InputError(fmt::format("lora target '{}' is not an attention projection (q, k, v, o)", item));
      }
      if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
      item.clear();
    } else {
      item += ch;
    }
  }
  return out;
}

std::unique_ptr<NativeModel> make_vit(const ModelConfig& config, at::Generator& generator) {
  return std::make_unique<Vit>(config, generator);
}

}  // namespace fisheval
