#include "eval/cli/train_options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/error.h"

namespace fisheval::cli {

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> out;
  std::string item;
  const auto number = [&](const std::string& t) {
    size_t used = 0;
    const int64_t v = std::stoll(t, &used);
    if (used != t.size()) throw std::invalid_argument("trailing");
    return v;
  };
  for (char ch : text + ",") {
    if (ch == ',' || ch == ' ') {
      if (item.empty()) continue;
      try {
        // W or WxK (K copies of W)
        const auto x = item.find('x');
        const int64_t repeat = x == std::string::npos ? 1 : number(item.substr(x + 1));
        if (repeat < 1 || repeat > 1000) throw std::invalid_argument("repeat");
        out.insert(out.end(), repeat, number(item.substr(0, x)));
      } catch (const std::exception&) {
        throw InputError(fmt::format("--{}: '{}' is not an integer (or WxK)", flag, item));
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
      ("model", po::value<std::string>()->default_value("mlp"),
       "built-in model: mlp | autoencoder (Bernoulli outputs, trained on the pixel intensities) | cnn | vit-lora")
      ("init", po::value<std::string>()->default_value(""),
       "start from this native checkpoint instead of a fresh model (its configuration wins)")
      ("widths", po::value<std::string>()->default_value(fmt::format("{}", fmt::join(d.widths, ","))),
       "mlp, autoencoder: hidden widths, e.g. 1000,500x8,250 (WxK = K layers of width W); autoencoder: also the "
       "presets paper (1000,500x8,250,30,250,500x8,1000, the default for it) and small "
       "(256,128x2,64,16,64,128x2,256)")
      ("activation", po::value<std::string>()->default_value(d.activation),
       "mlp, autoencoder, cnn: tanh | relu | gelu (the autoencoder's default: tanh)")
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
  const auto widths = vm["widths"].as<std::string>();
  if (c.model == "autoencoder" && (vm["widths"].defaulted() || !autoencoder_widths(widths).empty())) {
    c.widths = autoencoder_widths(vm["widths"].defaulted() ? "paper" : widths);
  } else {
    c.widths = parse_int_list(widths, "widths");
  }
  // The autoencoder's outputs are its input pixels.
  if (c.model == "autoencoder") c.num_classes = c.input_shape[0] * c.input_shape[1] * c.input_shape[2];
  c.activation = c.model == "autoencoder" && vm["activation"].defaulted() ? "tanh" : vm["activation"].as<std::string>();
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
      ("optimizer", po::value<std::string>()->default_value("ief"),
       "sgd | adamw | ef | sf | ief | kfac | shampoo | fim-shampoo | fishy | fishy-classifier")
      ("lr", po::value<double>()->default_value(-1.0, "auto"),
       "learning rate η (default per optimiser: sgd 0.03, adamw 3e-3, ief 1, ef 2, sf 0.1, the layer-structured "
       "ones 1e-2; for normalised updates η is the norm of the first update)")
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
      ("stat-decay", po::value<double>()->default_value(0.95, "0.95"),
       "kfac, shampoo, fim-shampoo, fishy, fishy-classifier: statistics averaged over steps, S ← βS + (1−β)S_batch")
      ("precond-every", po::value<int64_t>()->default_value(10),
       "the same: eigen-decompose the averaged statistics (refresh the preconditioner) every K steps")
      ("precond-epsilon", po::value<double>()->default_value(1e-4, "1e-4"),
       "the same: ε added to each factor relative to its largest eigenvalue (kfac: λ = ε σ_max(A) σ_max(B))")
      ("grafting", po::value<std::string>()->default_value("adam"),
       "the same: each layer's step length from adam (β₁ 0.9, β₂ 0.999, eps 1e-8) | sgd (the filtered gradient) | "
       "none; the preconditioner acts on the filtered gradient (β₁ 0.9)")
      ("local-layers", po::value<std::string>()->default_value(""),
       "fishy-classifier: the layers that sample locally, comma-separated layer names (default: the final fully "
       "connected layers, the Linear layers after the last Conv2d)")
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
  oo.stat_decay = vm["stat-decay"].as<double>();
  oo.precond_every = vm["precond-every"].as<int64_t>();
  oo.precond_epsilon = vm["precond-epsilon"].as<double>();
  oo.grafting = vm["grafting"].as<std::string>();
  oo.method_options.local_layers = split_list(vm["local-layers"].as<std::string>());
  const double wd = vm["weight-decay"].as<double>();
  oo.weight_decay = wd >= 0 ? wd : (oo.name == "adamw" ? 0.01 : 0.0);
}

}  // namespace fisheval::cli
