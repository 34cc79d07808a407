// The network linearised around θ on one batch: z = f(x; θ) and its Jacobian J_z
// with respect to the selected parameters θ ∈ R^P, available only as products
// (curvlinops' style). One forward pass is made and its graph kept; every product
// reuses it.
//
//   vjp(u)        = Σ_n J_{z_n}ᵀ u_n                          (one backward pass)
//   jvp(v)        = J_z v                                      (forward mode, or double backward)
//   per_sample(u) = rows J_{z_n}ᵀ u_n, [N, P]                  (e.g. u = ∇_z l: J, the per-sample gradients)
//   gram(u, w)    = per_sample(u) per_sample(w)ᵀ               (without the [N, P] rows when taps allow)
//
// Seeds u may carry a leading axis of S seed sets ([S, *z.shape]); rows are then
// ordered seed-major (row s·N + n).
//
// Per-sample rows come from layer taps (one backward per seed set, then a contraction
// with the stored layer inputs) when every selected parameter belongs to a tapped
// Linear/Conv2d layer, else from a per-sample loop (one forward and backward per
// sample). Both give the same numbers; the loop is the slow, obvious oracle.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/enum_table.h"
#include "checkpoints/model.h"
#include "mvp/param_layout.h"

namespace fisheval::mvp {

enum class PerSampleEngine { kAuto, kTaps, kLoop };
enum class JvpEngine { kAuto, kForward, kDoubleBackward, kTaps };

struct LinearisationOptions {
  PerSampleEngine per_sample = PerSampleEngine::kAuto;
  // kAuto: J_z D for many directions D from layer taps and one backward pass per output
  // unit when the taps cover θ and that is affordable (unit_grads_affordable), else
  // forward mode per direction (double backward if the model has no forward-mode rule).
  JvpEngine jvp = JvpEngine::kAuto;
  // What kAuto uses for a single JVP: forward mode unless the per-checkpoint probe
  // (probe_jvp_engine) found it failing or wrong for this model.
  JvpEngine auto_single = JvpEngine::kForward;
  // Most output units per sample (backward passes) for the taps route of jvp_many.
  int64_t max_output_units = 1024;
};

// Output gradients of the covered layers for S seed sets u_s ([S, *z]): per layer the
// gradient of ⟨u_s, z⟩ with respect to the layer's output in token form [S, N, T, d_out]
// (undefined for layers that own no selected parameter). One backward pass per seed set;
// every per-sample product of those seeds is then a contraction with the layer inputs.
struct TapGrads {
  std::vector<at::Tensor> per_layer;
  int64_t sets = 0;
};

inline constexpr EnumTable<PerSampleEngine, 3> kPerSampleEngines{
    "per-sample engine",
    {{{PerSampleEngine::kAuto, "auto"}, {PerSampleEngine::kTaps, "taps"}, {PerSampleEngine::kLoop, "loop"}}}};
inline constexpr EnumTable<JvpEngine, 4> kJvpEngines{"JVP engine",
                                                     {{{JvpEngine::kAuto, "auto"},
                                                       {JvpEngine::kForward, "forward"},
                                                       {JvpEngine::kDoubleBackward, "double-backward"},
                                                       {JvpEngine::kTaps, "taps"}}}};
inline PerSampleEngine parse_per_sample_engine(const std::string& name) { return kPerSampleEngines.parse(name); }
inline JvpEngine parse_jvp_engine(const std::string& name) { return kJvpEngines.parse(name); }

class Linearisation {
 public:
  // The model's selected parameters must already require gradients (set_trainable).
  Linearisation(Model& model, std::vector<std::string> params, const Inputs& inputs,
                LinearisationOptions options = {});
  ~Linearisation();
  Linearisation(const Linearisation&) = delete;
  Linearisation& operator=(const Linearisation&) = delete;

  int64_t num_samples() const { return inputs_.size(0); }
  const ParamLayout& layout() const { return layout_; }
  const at::Tensor& logits() const { return logits_; }  // detached
  at::ScalarType dtype() const { return logits_.scalar_type(); }
  c10::Device device() const { return logits_.device(); }

  at::Tensor vjp(const at::Tensor& u);
  at::Tensor jvp(const at::Tensor& v);
  at::Tensor per_sample(const at::Tensor& u);
  at::Tensor gram(const at::Tensor& u, const at::Tensor& w);
  // J_z dᵀ for the rows d of D [K, P]: [K, *z] (see LinearisationOptions::jvp).
  at::Tensor jvp_many(const at::Tensor& D);

  // The taps route (per_sample_engine() == kTaps only).
  TapGrads tap_grads(const at::Tensor& u);
  at::Tensor per_sample(const TapGrads& b);                      // [S·N, P]
  at::Tensor gram(const TapGrads& b, const TapGrads& c);         // [S·N, S'·N]
  at::Tensor combine(const TapGrads& b, const at::Tensor& w);    // Σ_{s,n} w_{sn} J_{z_n}ᵀ u_{sn}, [P]
  // Output-unit seeds: TapGrads of the Z one-hot seeds e_k (k over the Z = numel/N outputs of
  // a sample, set for every sample at once), so that ∂z_{n,k}/∂θ is a contraction; memoised.
  // Once they exist, tap_grads and layer_output_grad_tokens combine them (the VJP is linear
  // in its seed) instead of running a backward pass per seed set.
  bool unit_grads_affordable() const;
  const TapGrads& unit_grads();
  bool has_unit_grads() const { return unit_grads_ != nullptr; }

  // Layer taps, for the Kronecker and Shampoo methods.
  const std::vector<LayerSpec>& layers() const { return model_.layers(); }
  // Whether layer l has taps from this forward pass.
  bool has_tap(size_t l) const { return taps_[l].output.defined(); }
  // a [N, T, d_in] in token form (taps.h), detached.
  at::Tensor layer_input_tokens(size_t l) const;
  // b [S, N, T, d_out] in token form for seeds u ([S, *z] or [*z], then S = 1) for every
  // covered layer (owning a selected parameter; undefined for the others): one backward
  // pass per seed set for all of them at once, or none once unit_grads() has run (then b is
  // a combination of the output-unit taps, as for tap_grads).
  std::vector<at::Tensor> layer_output_grad_tokens(const at::Tensor& u);
  // Output gradients backpropagated from layer `source`'s output instead of the logits: for
  // seeds v [S, N, T, d_source] in token form, b_l [S, N, T, d_l] = ∂⟨v_s, o_source⟩/∂o_l
  // for each layer l in `layers` (each upstream of the source; one backward per seed set).
  std::vector<at::Tensor> layer_output_grads_from(size_t source, const at::Tensor& v,
                                                  const std::vector<size_t>& layers);
  // The layer's pre-activation output in token form, [N, T, d_out], detached.
  at::Tensor layer_output_tokens(size_t l) const;
  bool exported_with_taps() const { return model_.exported_with_taps(); }
  // Index of the selected parameter that is layer l's weight / bias, or -1.
  int weight_index(size_t l) const { return coverage_[l].first; }
  int bias_index(size_t l) const { return coverage_[l].second; }

  // Checks forward mode against double backward on one random direction, twice in a row
  // (forward-mode AD through TorchScript is known to return missing or zero tangents on a
  // repeated call). Returns kForward when both calls agree with double backward, else
  // kDoubleBackward with the reason in *why (e.g. an operation without a forward-mode
  // formula, such as the fused aten::_transformer_encoder_layer_fwd of a frozen
  // nn.TransformerEncoderLayer in eval mode).
  JvpEngine probe_jvp_engine(std::string* why);
  // The engine for single JVPs from now on (kForward or kDoubleBackward).
  void use_single_jvp_engine(JvpEngine engine) { jvp_engine_ = engine; }

  PerSampleEngine per_sample_engine() const { return engine_; }
  JvpEngine jvp_engine() const { return jvp_engine_; }
  std::string engine_note() const { return engine_note_; }

 private:
  std::vector<at::Tensor> param_tensors() const;
  at::Tensor seeds_with_axis(const at::Tensor& u) const;
  at::Tensor per_sample_taps(const at::Tensor& u);
  at::Tensor per_sample_loop(const at::Tensor& u);
  at::Tensor jvp_forward(const at::Tensor& v);
  at::Tensor jvp_double_backward(const at::Tensor& v);
  at::Tensor jvp_many_taps(const at::Tensor& D);
  void require_taps(const char* what) const;
  // Output gradients of the covered layers for one seed set.
  std::vector<at::Tensor> output_grads(const at::Tensor& u);
  // Layer l's output gradients for seeds [S, *z] from the output-unit taps, [S, N, T, d_out].
  at::Tensor from_unit_grads(size_t l, const at::Tensor& seeds) const;
  // The same for every covered layer (those output_grads returns), or nothing when the
  // output-unit taps do not exist for all of them.
  std::optional<std::vector<at::Tensor>> from_unit_grads(const at::Tensor& seeds) const;

  Model& model_;
  ParamLayout layout_;
  Inputs inputs_;
  at::Tensor graph_logits_;  // attached to the graph
  at::Tensor logits_;        // detached
  std::vector<LayerTap> taps_;
  std::vector<std::pair<int, int>> coverage_;  // per layer: (weight index, bias index) in layout_
  std::vector<at::Tensor> sample_logits_;       // loop engine: per-sample forward outputs
  std::unique_ptr<TapGrads> unit_grads_;
  int64_t max_output_units_ = 1024;
  PerSampleEngine engine_;
  JvpEngine jvp_engine_;
  bool jvp_auto_ = true;
  std::string engine_note_;
};

}  // namespace fisheval::mvp
