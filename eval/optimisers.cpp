#include "eval/optimisers.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <cmath>

#include "base/error.h"
#include "eval/sweep.h"
#include "mvp/linearisation.h"
#include "mvp/loss.h"
#include "solvers/batch_state.h"
#include "solvers/layer_statistics.h"

namespace fisheval {
namespace {

std::vector<at::Tensor> tensors_of(Model& model, const std::vector<std::string>& params) {
  std::vector<at::Tensor> out;
  for (const auto& name : params) out.push_back(model.parameter(name));
  return out;
}


std::vector<at::Tensor> snapshot(const std::vector<at::Tensor>& ps) {
  std::vector<at::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone());
  return out;
}

// ‖θ_new − θ_old‖, and a check that θ_new is finite.
double change_norm(const std::vector<at::Tensor>& now, const std::vector<at::Tensor>& before,
                   const std::vector<std::string>& names) {
  double sq = 0;
  for (size_t i = 0; i < now.size(); ++i) {
    const auto p = now[i].detach();
    if (!torch::isfinite(p).all().item<bool>()) {
      throw Error(fmt::format("the update made parameter '{}' non-finite", names[i]));
    }
    sq += (p - before[i]).to(torch::kDouble).square().sum().item<double>();
  }
  return std::sqrt(sq);
}

// sgd and adamw: torch::optim on the mean loss (1/N) Σ_n l_n.
class FirstOrder final : public Optimiser {
 public:
  explicit FirstOrder(const OptimiserOptions& o) : o_(o) {}
  std::string name() const override { return o_.name; }

  StepStats step(Model& model, const std::vector<std::string>& params, const Batch& batch, double lr,
                 int64_t) override {
    const auto ps = tensors_of(model, params);
    if (!optimiser_ || ps.size() != params_.size() || !std::equal(ps.begin(), ps.end(), params_.begin(),
                                                                   [](const auto& a, const auto& b) { return a.is_same(b); })) {
      // (Re)create the optimiser when the parameter tensors are new (first step, or the model moved).
      params_ = ps;
      if (o_.name == "sgd") {
        optimiser_ = std::make_unique<torch::optim::SGD>(
            params_, torch::optim::SGDOptions(lr).momentum(o_.momentum).weight_decay(o_.weight_decay));
      } else {
        optimiser_ = std::make_unique<torch::optim::AdamW>(
            params_, torch::optim::AdamWOptions(lr)
                         .betas(std::make_tuple(o_.beta1, o_.beta2))
                         .eps(o_.eps)
                         .weight_decay(o_.weight_decay));
      }
    }
    for (auto& group : optimiser_->param_groups()) group.options().set_lr(lr);
    torch::AutoGradMode grad_on(true);
    const auto logits = model.forward(batch.inputs);
    const auto loss_fn = model_loss(model);
    loss_fn->check(logits.detach(), batch.targets);
    const auto loss = loss_fn->per_sample(logits, batch.targets).mean();
    StepStats stats;
    stats.loss = loss.item<double>();
    stats.accuracy = batch_accuracy(*loss_fn, logits.detach(), batch.targets);
    if (!std::isfinite(stats.loss)) throw Error(fmt::format("the batch loss is not finite ({})", stats.loss));
    auto grads = torch::autograd::grad({loss}, ps, {}, /*retain_graph=*/false, false, /*allow_unused=*/true);
    const auto before = snapshot(ps);
    for (size_t i = 0; i < ps.size(); ++i) {
      auto& slot = ps[i].mutable_grad();
      slot = grads[i].defined() ? grads[i] : torch::zeros_like(ps[i]);
    }
    optimiser_->step();
    stats.update_norm = change_norm(ps, before, params);
    return stats;
  }

 private:
  OptimiserOptions o_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<torch::optim::Optimizer> optimiser_;
};

// ef, sf, ief: the direction of solvers/ for the batch, θ ← θ − η d (or η d/‖d‖).
class Ngd final : public Optimiser {
 public:
  explicit Ngd(const OptimiserOptions& o) : o_(o), method_(solvers::make_method(o.name, o.method_options)) {}
  std::string name() const override { return o_.name; }

  StepStats step(Model& model, const std::vector<std::string>& params, const Batch& batch, double lr,
                 int64_t step) override {
    StepStats stats;
    at::Tensor d;
    std::vector<at::Tensor> parts;
    {
      CurvatureBatch cb(model, params, batch, {.mc_samples = o_.mc_samples, .seed = batch_seed(o_.seed, step), .dedup_cosine = o_.dedup_cosine}, stats);
      auto& state = cb.state();
      stats.damping = o_.damping * solvers::damping_scale(o_.damping_mode, o_.damping_reference, state);
      const auto dir = method_->direction(state, stats.damping);
      stats.status = solvers::status_name(dir.status);
      d = dir.d.detach();
      parts = cb.lin().layout().split(d);
    }
    const double norm = d.norm().item<double>();
    if (!std::isfinite(norm)) throw Error(fmt::format("the {} direction is not finite", o_.name));
    if (norm == 0) return stats;  // nothing to learn from this batch (e.g. all samples fitted)
    // θ ← θ − η·s·d, s = 1/‖d‖ when normalised.
    const double factor = lr * (o_.normalise ? 1.0 / norm : 1.0);
    apply_update(model, params, parts, factor);
    stats.update_norm = factor * norm;
    return stats;
  }

 private:
  OptimiserOptions o_;
  std::unique_ptr<solvers::UpdateMethod> method_;
};

}  // namespace

std::unique_ptr<mvp::Loss> model_loss(const Model& model) {
  const auto hint = model.loss_hint();
  return mvp::make_loss(hint.empty() ? "cross-entropy" : hint);
}

double batch_accuracy(const mvp::Loss& loss, const at::Tensor& logits, const at::Tensor& targets) {
  if (loss.name() != "cross-entropy") return std::nan("");
  return logits.argmax(-1).eq(targets).to(torch::kDouble).mean().item<double>();
}

mvp::Linearisation& CurvatureBatch::checked(mvp::Linearisation& lin, const mvp::Loss& loss,
                                            const at::Tensor& targets) {
  loss.check(lin.logits(), targets);  // before the state reads the targets
  return lin;
}

CurvatureBatch::CurvatureBatch(Model& model, const std::vector<std::string>& params, const Batch& batch,
                               const solvers::BatchStateOptions& options, StepStats& stats)
    : loss_(model_loss(model)),
      lin_(model, params, batch.inputs),
      state_(checked(lin_, *loss_, batch.targets), *loss_, batch.targets, options) {
  stats.loss = state_.loss() / static_cast<double>(state_.num_samples());
  stats.accuracy = batch_accuracy(*loss_, lin_.logits(), batch.targets);
  if (!std::isfinite(stats.loss)) throw Error(fmt::format("the batch loss is not finite ({})", stats.loss));
}

void apply_update(Model& model, const std::vector<std::string>& params, const std::vector<at::Tensor>& parts,
                  double factor) {
  const auto ps = tensors_of(model, params);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < ps.size(); ++i) ps[i].sub_(parts[i].to(ps[i].options()), factor);
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!torch::isfinite(ps[i].detach()).all().item<bool>()) {
      throw Error(fmt::format("the update made parameter '{}' non-finite", params[i]));
    }
  }
}

std::vector<std::string> optimiser_names() {
  std::vector<std::string> names{"sgd", "adamw", "ef", "sf", "ief"};
  for (const auto& m : solvers::layer_statistics_methods()) names.push_back(m);
  return names;
}

bool is_ngd_optimiser(const std::string& name) { return name == "ef" || name == "sf" || name == "ief"; }

std::unique_ptr<Optimiser> make_optimiser(const OptimiserOptions& options) {
  if (options.name == "sgd" || options.name == "adamw") return std::make_unique<FirstOrder>(options);
  if (is_ngd_optimiser(options.name)) {
    if (options.damping < 0) throw InputError("--damping must be ≥ 0");
    return std::make_unique<Ngd>(options);
  }
  if (solvers::has_layer_statistics(options.name)) return make_layerwise_optimiser(options);
  throw InputError(fmt::format("unknown optimizer '{}' ({})", options.name, fmt::join(optimiser_names(), ", ")));
}

Evaluation evaluate_model(Model& model, const Dataset& data, const std::vector<int64_t>& indices, c10::Device device,
                          c10::ScalarType dtype, int64_t chunk) {
  torch::NoGradGuard no_grad;
  const auto loss_fn = model_loss(model);
  const bool classifies = loss_fn->name() == "cross-entropy";
  Evaluation e;
  double loss_sum = 0, correct = 0;
  for (size_t start = 0; start < indices.size(); start += static_cast<size_t>(chunk)) {
    const size_t end = std::min(indices.size(), start + static_cast<size_t>(chunk));
    const auto batch = data.get({indices.begin() + start, indices.begin() + end}).to(device, dtype);
    const auto logits = model.forward(batch.inputs);
    loss_sum += loss_fn->per_sample(logits, batch.targets).sum().item<double>();
    if (classifies) correct += logits.argmax(-1).eq(batch.targets).sum().item<double>();
  }
  e.samples = static_cast<int64_t>(indices.size());
  e.loss = e.samples ? loss_sum / e.samples : std::nan("");
  e.accuracy = e.samples && classifies ? correct / e.samples : std::nan("");
  return e;
}

}  // namespace fisheval
