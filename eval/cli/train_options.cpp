#include "eval/cli/train_options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "checkpoints/error.h"

namespace fisheval::cli {

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> out;
  std::string item;
  for (char ch : text + ",") {
    if (ch == ',' || ch == ' ') {
      if (item.empty()) continue;
      try {
        size_t used = 0;
        out.push_back(std::stoll(item, &used));
        if (used != item.size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        throw InputError(fmt::format("--{}: '{}' is not an integer", flag, item));
      }
      item.clear();
    } else {
      item += ch;
    }
  }
  return out;
}

po::options_description model_options() {
  const ModelConfig d;
  po::options_description model("Model");
  model.add_options()
      ("model", po::value<std::string>()->default_value("mlp"), "built-in model: mlp | cnn | vit-lora")
      ("init", po::value<std::string>()->default_value(""),
       "start from this native checkpoint instead of a fresh model (its configuration wins)")
      ("widths", po::value<std::string>()->default_value(fmt::format("{}", fmt::join(d.widths, ","))),
       "mlp: hidden widths")
      ("activation", po::value<std::string>()->default_value(d.activation), "mlp, cnn: tanh | relu | gelu")
      ("channels", po::value<std::string>()->default_value(fmt::format("{}", fmt::join(d.channels, ","))),
       "cnn: channels of the 3x3 stride-2 convolutions")
      ("hidden", po::value<int64_t>()->default_value(d.hidden), "cnn: width of the fully connected hidden layer")
      ("patch", po::value<int64_t>()->default_value(d.patch), "vit-lora: patch size (28x28 images: 7 → 16 tokens)")
      ("dim", po::value<int64_t>()->default_value(d.dim), "vit-lora: token width")
      ("depth", po::value<int64_t>()->default_value(d.depth), "vit-lora: transformer blocks")
      ("heads", po::value<int64_t>()->default_value(d.heads), "vit-lora: attention heads")
      ("mlp-dim", po::value<int64_t>()->default_value(d.mlp_dim), "vit-lora: hidden width of the block MLPs")
      ("lora-rank", po::value<int64_t>()->default_value(d.lora_rank), "vit-lora: adapter rank r")
      ("lora-alpha", po::value<double>()->default_value(d.lora_alpha), "vit-lora: adapter scale alpha (output × alpha/r)")
      ("lora-targets", po::value<std::string>()->default_value(d.lora_targets),
       "vit-lora: attention projections with adapters, from q,k,v,o")
      ("pretrained", po::value<std::string>()->default_value(""),
       "vit-lora: reuse this pre-trained backbone (a native 'vit' checkpoint, e.g. an earlier OUT/pretrained.pt)")
      ("pretrain-classes", po::value<int64_t>()->default_value(5),
       "vit-lora: pre-train the backbone on the classes 0..K-1 (the fine-tuning task has all classes)")
      ("pretrain-epochs", po::value<int64_t>()->default_value(2), "vit-lora: pre-training epochs (AdamW)")
      ("pretrain-lr", po::value<double>()->default_value(1e-3), "vit-lora: pre-training learning rate");
  return model;
}

void apply_model_options(const po::variables_map& vm, TrainOptions& o) {
  auto& c = o.model;
  c.model = vm["model"].as<std::string>();
  c.widths = parse_int_list(vm["widths"].as<std::string>(), "widths");
  c.activation = vm["activation"].as<std::string>();
  c.channels = parse_int_list(vm["channels"].as<std::string>(), "channels");
  c.hidden = vm["hidden"].as<int64_t>();
  c.patch = vm["patch"].as<int64_t>();
  c.dim = vm["dim"].as<int64_t>();
  c.depth = vm["depth"].as<int64_t>();
  c.heads = vm["heads"].as<int64_t>();
  c.mlp_dim = vm["mlp-dim"].as<int64_t>();
  c.lora_rank = vm["lora-rank"].as<int64_t>();
  c.lora_alpha = vm["lora-alpha"].as<double>();
  c.lora_targets = vm["lora-targets"].as<std::string>();
  validate_config(c);
  o.init = vm["init"].as<std::string>();
  o.pretrained = vm["pretrained"].as<std::string>();
  o.pretrain_classes = vm["pretrain-classes"].as<int64_t>();
  o.pretrain_epochs = vm["pretrain-epochs"].as<int64_t>();
  o.pretrain_lr = vm["pretrain-lr"].as<double>();
}

po::options_description optimiser_options() {
  po::options_description optim("Optimiser");
  optim.add_options()
      ("optimizer", po::value<std::string>()->default_value("ief"), "sgd | adamw | ef | sf | ief")
      ("lr", po::value<double>()->default_value(-1.0, "auto"),
       "learning rate η (default per optimiser: sgd 0.03, adamw 3e-3, ief 1, ef 2, sf 0.1; for normalised "
       "updates η is the norm of the first update)")
      ("schedule", po::value<std::string>()->default_value("auto"),
       "constant | linear (η_t = η(1 − t/T)) | auto (linear for ef and sf, as in the paper; else constant)")
      ("normalise", po::value<std::string>()->default_value("auto"),
       "ef, sf, ief: on (update d/‖d‖) | off | auto (on for ef and sf, as in the paper; off for ief)")
      ("damping", po::value<double>()->default_value(1e-6, "1e-6"), "ef, sf, ief: damping λ")
      ("damping-mode", po::value<std::string>()->default_value("relative"),
       "relative (λ × max_n ‖∇θ l_n‖² of the batch, or the sampled Gram's largest diagonal with "
       "--damping-reference sf) | absolute")
      ("damping-reference", po::value<std::string>()->default_value("per-sample"), "per-sample | sf")
      ("mc-samples", po::value<int64_t>()->default_value(1), "sf: sampled labels per datum")
      ("dedup-cosine", po::value<double>()->default_value(0.0),
       "ef, sf, ief: drop near-duplicate per-sample gradients (|cos| above this) before the Gram solve; 0 = off")
      ("momentum", po::value<double>()->default_value(0.0), "sgd: momentum")
      ("weight-decay", po::value<double>()->default_value(-1.0, "auto"),
       "sgd, adamw: weight decay (default: adamw 0.01 as in PyTorch, sgd 0)");
  return optim;
}

void apply_optimiser_options(const po::variables_map& vm, TrainOptions& o) {
  auto& oo = o.optimiser;
  oo.name = vm["optimizer"].as<std::string>();
  o.lr = vm["lr"].as<double>();
  o.schedule = vm["schedule"].as<std::string>();
  o.normalise = vm["normalise"].as<std::string>();
  oo.damping = vm["damping"].as<double>();
  oo.damping_mode = solvers::parse_damping_mode(vm["damping-mode"].as<std::string>());
  oo.damping_reference = solvers::parse_damping_reference(vm["damping-reference"].as<std::string>());
  oo.mc_samples = vm["mc-samples"].as<int64_t>();
  if (oo.mc_samples < 1) throw InputError("--mc-samples must be at least 1");
  oo.dedup_cosine = vm["dedup-cosine"].as<double>();
  if (oo.dedup_cosine < 0 || oo.dedup_cosine > 1) throw InputError("--dedup-cosine must be in [0, 1]");
  oo.momentum = vm["momentum"].as<double>();
  const double wd = vm["weight-decay"].as<double>();
  oo.weight_decay = wd >= 0 ? wd : (oo.name == "adamw" ? 0.01 : 0.0);
}

}  // namespace fisheval::cli
