#include "eval/trainer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "base/numeric.h"
#include "base/error.h"
#include "eval/progress.h"
#include "eval/sweep.h"
#include "solvers/layer_statistics.h"

namespace fs = std::filesystem;

namespace fisheval {
namespace {

std::vector<int64_t> range(int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

c10::ScalarType train_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat;
  if (name == "float64") return torch::kDouble;
  throw InputError(fmt::format("unknown --dtype '{}' (float32, float64)", name));
}

void prepare_out(const TrainOptions& o) {
  if (o.out.empty()) throw InputError("--out DIR is required");
  const fs::path out(o.out);
  if (fs::exists(out) && !fs::is_directory(out)) throw InputError(fmt::format("--out '{}' is not a folder", o.out));
  if (fs::exists(out / "manifest.csv")) {
    if (!o.overwrite) {
      throw InputError(fmt::format("'{}' already holds a training run (manifest.csv); choose another --out or pass "
                                   "--overwrite",
                                   o.out));
    }
    for (const auto& e : fs::directory_iterator(out)) {
      const auto name = e.path().filename().string();
      if ((name.rfind("step_", 0) == 0 && e.path().extension() == ".pt") || name == "manifest.csv" ||
          name == "curve.csv") {
        fs::remove(e.path());
      }
    }
  }
  fs::create_directories(out);
}

// The ViT backbone for vit-lora: pre-trained here on the classes 0 … K−1 of the training
// pool, or read from `o.pretrained`.
std::unique_ptr<NativeModel> pretrained_backbone(const TrainOptions& o, const Dataset& train,
                                                 const std::vector<int64_t>& pool, const Dataset* test,
                                                 c10::Device device, c10::ScalarType dtype) {
  ModelConfig cfg = o.model;
  cfg.model = "vit";
  cfg.num_classes = o.pretrain_classes;
  if (!o.pretrained.empty()) {
    auto model = load_native_checkpoint(o.pretrained);
    const auto& c = model->config();
    if (c.model != "vit" || c.input_shape != cfg.input_shape || c.patch != cfg.patch || c.dim != cfg.dim ||
        c.depth != cfg.depth || c.heads != cfg.heads || c.mlp_dim != cfg.mlp_dim) {
      throw InputError(fmt::format("--pretrained '{}' is a {} that does not match the vit-lora backbone ({})",
                                   o.pretrained, describe_config(c), describe_config(cfg)));
    }
    return model;
  }
  if (o.pretrain_classes < 2 || o.pretrain_classes > o.model.num_classes) {
    throw InputError(fmt::format("--pretrain-classes must be in 2..{}", o.model.num_classes));
  }
  const auto select = [&](const Dataset& data, const std::vector<int64_t>& indices) {
    const auto targets = data.get(indices).targets;
    const auto* t = targets.data_ptr<int64_t>();
    std::vector<int64_t> kept;
    for (size_t i = 0; i < indices.size(); ++i) {
      if (t[i] >= 0 && t[i] < o.pretrain_classes) kept.push_back(indices[i]);
    }
    return kept;
  };
  const auto sub = select(train, pool);
  auto model = make_builtin_model(cfg, o.seed + 7919);
  model->to(device, dtype);
  const auto params = model->trainable_names();
  set_trainable(*model, params);
  OptimiserOptions oo;
  oo.name = "adamw";
  oo.weight_decay = 0.01;
  auto opt = make_optimiser(oo);
  constexpr int64_t kBatch = 64;
  const int64_t per_epoch = static_cast<int64_t>(sub.size()) / kBatch;
  Progress progress("pretrain", per_epoch * o.pretrain_epochs, o.progress);
  const auto say = [&](const std::string& line) {
    if (o.progress) progress.message(line);
  };
  say(fmt::format("fisheval train: pre-training the ViT backbone on {} training samples of classes "
                               "0..{} for {} epoch(s) (AdamW, lr {:g}, batch {})",
                               sub.size(), o.pretrain_classes - 1, o.pretrain_epochs, o.pretrain_lr, kBatch));
  int64_t step = 0;
  for (int64_t e = 0; e < o.pretrain_epochs; ++e) {
    for (const auto& idx : epoch_batches(sub, kBatch, o.seed + 7919, e)) {
      const auto s = opt->step(*model, params, train.get(idx).to(device, dtype), o.pretrain_lr, step++);
      progress.update(step, fmt::format("epoch {}/{} loss {:.4f}", e + 1, o.pretrain_epochs, s.loss));
    }
  }
  NativeCheckpointInfo info;
  info.step = step;
  info.epoch = static_cast<double>(o.pretrain_epochs);
  info.notes["purpose"] = fmt::format("vit-lora backbone pre-trained on classes 0..{}", o.pretrain_classes - 1);
  if (test) {
    const auto ev = evaluate_model(*model, *test, select(*test, range(0, test->size())), device, dtype);
    info.metrics["test_accuracy"] = ev.accuracy;
    info.metrics["test_loss"] = ev.loss;
    say(fmt::format("fisheval train: pre-trained backbone: test accuracy {:.4f} on classes 0..{}",
                                 ev.accuracy, o.pretrain_classes - 1));
  }
  save_native_checkpoint(*model, (fs::path(o.out) / "pretrained.pt").string(), info);
  return model;
}

// Every parameter of the backbone except its head, copied into the vit-lora model.
void copy_backbone(const NativeModel& backbone, NativeModel& model) {
  const auto names = backbone.parameter_names();
  for (const auto& name : model.parameter_names()) {
    if (name.rfind("head.", 0) == 0) continue;
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;  // adapters
    model.set_parameter(name, backbone.parameter(name).detach().to(model.parameter(name).options()).clone());
  }
}

std::set<int64_t> save_points(const TrainOptions& o, int64_t per_epoch, int64_t total) {
  std::set<int64_t> at{0, total};
  if (o.save_every > 0) {
    for (int64_t s = o.save_every; s < total; s += o.save_every) at.insert(s);
  }
  if (o.save_epochs > 0) {
    for (int64_t k = 1;; ++k) {
      const auto s = static_cast<int64_t>(std::llround(k * o.save_epochs * per_epoch));
      if (s >= total) break;
      if (s > 0) at.insert(s);
    }
  }
  if (o.save_every <= 0 && !(o.save_epochs > 0)) {
    for (int64_t s = per_epoch; s < total; s += per_epoch) at.insert(s);
  }
  return at;
}

std::string fmt_num(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : "nan"; }

}  // namespace

double default_lr(const std::string& optimiser) {
  // The winners of the search in docs/RESULTS.md (MLP on Fashion-MNIST, validation
  // accuracy; ef and sf at the default damping).
  if (optimiser == "sgd") return 0.03;
  if (optimiser == "adamw") return 3e-3;
  if (optimiser == "ief") return 1.0;
  if (optimiser == "ef") return 2.0;
  if (optimiser == "sf") return 0.1;
  // The layer-structured optimisers graft onto Adam's step length (the winners of the
  // autoencoder search in docs/RESULTS.md: 1e-2 for all of them, Adam's own 3e-3).
  if (solvers::has_layer_statistics(optimiser)) return 1e-2;
  throw InputError(fmt::format("unknown optimizer '{}' ({})", optimiser, fmt::join(optimiser_names(), ", ")));
}

TrainSummary train(const TrainOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.epochs < 1 && o.max_steps < 1) throw InputError("--epochs must be at least 1");
  if (o.batch_size < 1) throw InputError("--batch-size must be positive");
  if (o.valid_samples < 0 || o.eval_samples < 0) throw InputError("--valid-samples and --eval-samples must be ≥ 0");
  if (o.schedule != "auto" && o.schedule != "constant" && o.schedule != "linear") {
    throw InputError(fmt::format("--schedule '{}' must be auto, constant or linear", o.schedule));
  }
  if (o.normalise != "auto" && o.normalise != "on" && o.normalise != "off") {
    throw InputError(fmt::format("--normalise '{}' must be auto, on or off", o.normalise));
  }
  const auto device = resolve_device(o.device);
  const auto dtype = train_dtype(o.dtype);
  OptimiserOptions oo = o.optimiser;
  const bool paper_schedule = oo.name == "ef" || oo.name == "sf";
  oo.normalise = o.normalise == "on" || (o.normalise == "auto" && paper_schedule);
  if (oo.normalise && !is_ngd_optimiser(oo.name)) throw InputError("--normalise on applies to ef, sf and ief only");
  const bool linear = o.schedule == "linear" || (o.schedule == "auto" && paper_schedule);
  oo.seed = o.seed;
  auto optimiser = make_optimiser(oo);  // validates the name
  const double lr = o.lr >= 0 ? o.lr : default_lr(oo.name);
  if (!(lr > 0)) throw InputError("--lr must be positive");

  // Data: the training pool, a validation split at its end, the stage-evaluation subset.
  // "auto": Fashion-MNIST, with pixel targets for the autoencoder.
  const bool pixels = o.model.model == "autoencoder";
  const auto data_spec = o.data == "auto" ? (pixels ? "fashion-mnist-pixels:train" : "fashion-mnist:train") : o.data;
  const auto test_spec =
      o.test_data == "auto" ? (pixels ? "fashion-mnist-pixels:test" : "fashion-mnist:test") : o.test_data;
  const auto train_data = open_dataset(data_spec);
  const int64_t M = train_data->size();
  if (o.valid_samples >= M) throw InputError(fmt::format("--valid-samples {} leaves no training data", o.valid_samples));
  const auto pool = range(0, M - o.valid_samples);
  const auto valid = range(M - o.valid_samples, M);
  const int64_t E = o.eval_samples > 0 ? std::min<int64_t>(o.eval_samples, pool.size()) : pool.size();
  const std::vector<int64_t> eval_idx(pool.begin(), pool.begin() + E);
  std::unique_ptr<Dataset> test_data;
  if (!test_spec.empty()) test_data = open_dataset(test_spec);
  const int64_t per_epoch = static_cast<int64_t>(pool.size()) / o.batch_size;
  if (per_epoch < 1) {
    throw InputError(fmt::format("batch size {} exceeds the {} training samples", o.batch_size, pool.size()));
  }
  int64_t total = o.epochs * per_epoch;
  if (o.max_steps > 0) total = o.epochs > 0 ? std::min(total, o.max_steps) : o.max_steps;

  prepare_out(o);
  Progress progress("train", total, o.progress);
  const auto say = [&](const std::string& line) {
    if (o.progress) progress.message(line);
  };

  // The model.
  std::unique_ptr<NativeModel> model;
  if (!o.init.empty()) {
    model = load_native_checkpoint(o.init);
  } else {
    model = make_builtin_model(o.model, o.seed);
    if (o.model.model == "vit-lora") {
      const auto backbone = pretrained_backbone(o, *train_data, pool, test_data.get(), device, dtype);
      copy_backbone(*backbone, *model);
    }
  }
  model->to(device, dtype);
  const auto params = select_parameters(*model, "");
  set_trainable(*model, params);
  const int64_t P = count_parameters(*model, params);
  say(fmt::format("fisheval train: {} ({} trainable parameters of {} tensors) on {} ({} training "
                               "samples, {} validation); {} lr {:g} ({}{}){}; {} steps of batch {} ({} per epoch)",
                               describe_config(model->config()), P, params.size(), train_data->description(),
                               pool.size(), valid.size(), oo.name, lr, linear ? "linear decay" : "constant",
                               oo.normalise ? ", normalised updates" : "",
                               is_ngd_optimiser(oo.name) ? fmt::format(", damping {:g} ({})", oo.damping,
                                                                       solvers::to_string(oo.damping_mode))
                                                         : "",
                               total, o.batch_size, per_epoch));

  TrainSummary summary;
  summary.lr = lr;
  summary.schedule = linear ? "linear" : "constant";
  summary.normalise = oo.normalise;
  summary.manifest = (fs::path(o.out) / "manifest.csv").string();
  summary.curve = (fs::path(o.out) / "curve.csv").string();
  std::ofstream curve(summary.curve);
  if (!curve) throw Error(fmt::format("cannot write '{}'", summary.curve));
  curve << "step,epoch,lr,loss,accuracy,update_norm,damping,status,seconds\n";

  NativeCheckpointInfo info;
  info.notes = o.notes;
  info.notes["optimizer"] = oo.name;
  info.notes["lr"] = fmt::format("{:g}", lr);
  info.notes["schedule"] = summary.schedule;
  info.notes["normalise"] = oo.normalise ? "on" : "off";
  info.notes["batch_size"] = std::to_string(o.batch_size);
  info.notes["seed"] = std::to_string(o.seed);
  info.notes["data"] = data_spec;
  info.loss = model->loss_hint();
  info.notes["dtype"] = o.dtype;
  if (is_ngd_optimiser(oo.name)) {
    info.notes["damping"] = fmt::format("{:g}", oo.damping);
    info.notes["damping_mode"] = solvers::to_string(oo.damping_mode);
  }
  if (solvers::has_layer_statistics(oo.name)) {
    info.notes["stat_decay"] = fmt::format("{:g}", oo.stat_decay);
    info.notes["precond_every"] = std::to_string(oo.precond_every);
    info.notes["precond_epsilon"] = fmt::format("{:g}", oo.precond_epsilon);
    info.notes["grafting"] = oo.grafting;
  }

  const auto save_stage = [&](int64_t step) {
    const double epoch = static_cast<double>(step) / per_epoch;
    CheckpointEntry entry;
    entry.path = (fs::path(o.out) / fmt::format("step_{:07}.pt", step)).string();
    entry.step = step;
    auto& m = info.metrics;
    m.clear();
    const auto tr = evaluate_model(*model, *train_data, eval_idx, device, dtype);
    m["train_loss"] = tr.loss;
    m["train_accuracy"] = tr.accuracy;
    if (!valid.empty()) {
      const auto va = evaluate_model(*model, *train_data, valid, device, dtype);
      m["valid_loss"] = va.loss;
      m["valid_accuracy"] = va.accuracy;
    }
    if (test_data) {
      const auto te = evaluate_model(*model, *test_data, range(0, test_data->size()), device, dtype);
      m["test_loss"] = te.loss;
      m["test_accuracy"] = te.accuracy;
    }
    m["seconds"] = seconds_since(t0);
    info.step = step;
    info.epoch = epoch;
    save_native_checkpoint(*model, entry.path, info);
    entry.extra["epoch"] = fmt_num(epoch);
    for (const auto& [k, v] : m) entry.extra[k] = fmt_num(v);
    summary.stages.push_back(entry);
    summary.final_metrics = m;
    write_manifest(summary.manifest, summary.stages);
    say(fmt::format("fisheval train: stage step {} (epoch {:.2f}): train loss {:.4f}, train accuracy "
                                 "{:.4f}{}",
                                 step, epoch, tr.loss, tr.accuracy,
                                 test_data ? fmt::format(", test accuracy {:.4f}", m["test_accuracy"]) : ""));
  };

  const auto saves = save_points(o, per_epoch, total);
  save_stage(0);
  int64_t step = 0;
  for (int64_t e = 0; step < total; ++e) {
    for (const auto& idx : epoch_batches(pool, o.batch_size, o.seed, e)) {
      if (step >= total) break;
      const double lr_t = linear ? lr * (1.0 - static_cast<double>(step) / total) : lr;
      StepStats s;
      try {
        s = optimiser->step(*model, params, train_data->get(idx).to(device, dtype), lr_t, step);
      } catch (const InputError&) {
        throw;
      } catch (const std::exception& ex) {
        summary.diverged = true;
        summary.diverged_reason = fmt::format("step {}: {}", step, ex.what());
        break;
      }
      // Row t: the batch loss and accuracy at θ_t (before update t), the update θ_t → θ_{t+1}.
      curve << fmt::format("{},{},{:g},{},{},{},{:g},{},{:.3f}\n", step, fmt_num(static_cast<double>(step) / per_epoch),
                           lr_t, fmt_num(s.loss), fmt_num(s.accuracy), fmt_num(s.update_norm), s.damping, s.status,
                           seconds_since(t0));
      ++step;
      progress.update(step, fmt::format("epoch {}/{} batch loss {:.4f}", e + 1, o.epochs, s.loss));
      if (saves.count(step)) save_stage(step);
    }
    if (summary.diverged) break;
  }
  curve.flush();
  summary.steps = step;
  if (summary.diverged) {
    progress.message(fmt::format("fisheval train: training diverged at {}; the stages saved before are in {}",
                                 summary.diverged_reason, summary.manifest));
  }
  summary.seconds = seconds_since(t0);
  return summary;
}

}  // namespace fisheval
