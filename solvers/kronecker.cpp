#include "solvers/kronecker.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "base/error.h"
#include "solvers/eigh.h"

namespace fisheval::solvers::kron {
namespace {

std::vector<int64_t> lead_shape(const at::Tensor& flat) {
  return std::vector<int64_t>(flat.sizes().begin(), flat.sizes().end() - 1);
}

std::vector<int64_t> with(std::vector<int64_t> shape, std::initializer_list<int64_t> tail) {
  shape.insert(shape.end(), tail.begin(), tail.end());
  return shape;
}

// Keeps entries of a damped spectrum: all of them for λ > 0 (D ≥ 0), those above
// 1e-12·max at λ = 0.
at::Tensor kept_entries(const at::Tensor& D, double lambda) {
  if (lambda > 0) return torch::ones_like(D, torch::kBool);
  const double top = D.numel() ? D.max().item<double>() : 0.0;
  return D.gt(kPseudoInverseRcond * top).logical_and(D.gt(0));
}

}  // namespace

BlockPlan plan_blocks(const mvp::Linearisation& lin, const std::string& method) {
  const auto& layout = lin.layout();
  const auto& specs = lin.layers();
  // A parameter belongs to a block only when exactly one tapped layer owns it.
  std::vector<int> owners(layout.count(), 0);
  for (size_t l = 0; l < specs.size(); ++l) {
    if (lin.weight_index(l) >= 0) ++owners[lin.weight_index(l)];
    if (lin.bias_index(l) >= 0) ++owners[lin.bias_index(l)];
  }
  BlockPlan plan;
  std::vector<bool> owned(layout.count(), false);
  for (size_t l = 0; l < specs.size(); ++l) {
    LayerBlock block;
    block.layer = l;
    block.weight = lin.weight_index(l) >= 0 && owners[lin.weight_index(l)] == 1 ? lin.weight_index(l) : -1;
    block.bias = lin.bias_index(l) >= 0 && owners[lin.bias_index(l)] == 1 ? lin.bias_index(l) : -1;
    if (block.weight < 0 && block.bias < 0) continue;
    if (block.weight >= 0) {
      block.rows = layout.shape(block.weight)[0];
      block.cols = layout.numel(block.weight) / block.rows;
      owned[block.weight] = true;
    }
    if (block.bias >= 0) {
      block.rows = layout.numel(block.bias);
      block.cols += 1;
      owned[block.bias] = true;
    }
    plan.blocks.push_back(block);
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < layout.count(); ++i) {
    if (owned[i]) continue;
    plan.uncovered.push_back(static_cast<int>(i));
    plan.uncovered_size += layout.numel(i);
    names.push_back(layout.names()[i]);
  }
  if (plan.blocks.empty() && !names.empty()) {
    const size_t shown = std::min<size_t>(names.size(), 8);
    const auto why = lin.exported_with_taps()
                         ? std::string("they belong to no Linear/Conv2d layer (prompt-tuning embeddings, norms and "
                                       "free parameters have no layer block)")
                         : std::string("the checkpoint carries no layer taps; export the model with "
                                       "scripts/export_checkpoint.py, which taps nn.Linear and nn.Conv2d");
    throw InputError(fmt::format(
        "{} needs layer taps, but none of the evaluated parameters is the weight or bias of a tapped Linear/Conv2d "
        "layer (untapped: {}{}): {}. Methods without layer structure (sgd, ef, ief, ief-param, sf, ng-cg, ng-dense) "
        "run on any checkpoint",
        method, fmt::join(names.begin(), names.begin() + shown, ", "),
        names.size() > shown ? fmt::format(" and {} more", names.size() - shown) : "", why));
  }
  return plan;
}

at::Tensor block_of(const at::Tensor& flat, const mvp::ParamLayout& layout, const LayerBlock& block) {
  const auto lead = lead_shape(flat);
  std::vector<at::Tensor> parts;
  if (block.weight >= 0) {
    const int64_t wcols = block.cols - (block.bias >= 0 ? 1 : 0);
    parts.push_back(flat.narrow(-1, layout.offset(block.weight), layout.numel(block.weight))
                        .reshape(with(lead, {block.rows, wcols})));
  }
  if (block.bias >= 0) {
    parts.push_back(
        flat.narrow(-1, layout.offset(block.bias), layout.numel(block.bias)).reshape(with(lead, {block.rows, 1})));
  }
  return torch::cat(parts, -1);
}

void put_block(at::Tensor& flat, const at::Tensor& matrix, const mvp::ParamLayout& layout, const LayerBlock& block) {
  if (block.weight >= 0) {
    const int64_t wcols = block.cols - (block.bias >= 0 ? 1 : 0);
    flat.narrow(0, layout.offset(block.weight), layout.numel(block.weight))
        .copy_(matrix.narrow(1, 0, wcols).reshape({-1}));
  }
  if (block.bias >= 0) {
    flat.narrow(0, layout.offset(block.bias), layout.numel(block.bias)).copy_(matrix.select(1, block.cols - 1));
  }
}

at::Tensor uncovered_of(const at::Tensor& flat, const mvp::ParamLayout& layout, const BlockPlan& plan) {
  std::vector<at::Tensor> parts;
  for (const int i : plan.uncovered) parts.push_back(flat.narrow(-1, layout.offset(i), layout.numel(i)));
  if (parts.empty()) return torch::zeros(with(lead_shape(flat), {0}), flat.options());
  return torch::cat(parts, -1);
}

void put_uncovered(at::Tensor& flat, const at::Tensor& values, const mvp::ParamLayout& layout, const BlockPlan& plan) {
  int64_t offset = 0;
  for (const int i : plan.uncovered) {
    flat.narrow(0, layout.offset(i), layout.numel(i)).copy_(values.narrow(0, offset, layout.numel(i)));
    offset += layout.numel(i);
  }
}

at::Tensor augmented_inputs(const mvp::Linearisation& lin, const LayerBlock& block) {
  std::vector<at::Tensor> parts;
  if (block.weight >= 0) parts.push_back(lin.layer_input_tokens(block.layer).to(torch::kDouble));
  if (block.bias >= 0) {
    const auto out = lin.layer_output_tokens(block.layer);
    parts.push_back(torch::ones({out.size(0), out.size(1), 1}, out.options().dtype(torch::kDouble)));
  }
  return torch::cat(parts, -1);
}

FactorRows input_factor_rows(const at::Tensor& abar, bool reduce) {
  // expand: A = (1/(N·T)) Σ_{n,t} ā_nt ā_ntᵀ;  reduce: A = (1/N) Σ_n ā_n ā_nᵀ with ā_n = mean_t ā_nt.
  const auto rows = reduce ? abar.mean(1) : abar.reshape({-1, abar.size(2)});
  return {rows, 1.0 / static_cast<double>(rows.size(0))};
}

at::Tensor input_factor(const at::Tensor& abar, bool reduce) {
  const auto r = input_factor_rows(abar, reduce);
  return torch::mm(r.Z.t(), r.Z) * r.scale;
}

FactorRows output_factor_rows(const at::Tensor& b, const at::Tensor& weights, bool reduce) {
  const int64_t S = b.size(0), N = b.size(1), T = b.size(2), rows = b.size(3);
  const auto w = weights.defined() ? weights.to(b.options()) : torch::ones({S, N}, b.options());
  if (reduce) {
    // B = Σ_{s,n} w_sn b_sn b_snᵀ with b_sn = Σ_t b_snt.
    return {b.sum(2).reshape({S * N, rows}) * w.sqrt().reshape({S * N, 1}), 1.0};
  }
  // B = Σ_{s,n,t} w_sn b_snt b_sntᵀ.
  const auto wt = w.sqrt().unsqueeze(2).expand({S, N, T}).reshape({S * N * T, 1});
  return {b.reshape({S * N * T, rows}) * wt, 1.0};
}

at::Tensor output_factor(const at::Tensor& b, const at::Tensor& weights, bool reduce) {
  const auto r = output_factor_rows(b, weights, reduce);
  return torch::mm(r.Z.t(), r.Z) * r.scale;
}

at::Tensor per_sample_matrices(const at::Tensor& b_s, const at::Tensor& abar) {
  return torch::bmm(b_s.transpose(1, 2), abar);  // Σ_t b_nt ā_ntᵀ
}

std::pair<at::Tensor, at::Tensor> gradient_second_moments(const at::Tensor& b, const at::Tensor& abar,
                                                          const at::Tensor& w) {
  const int64_t S = b.size(0), N = b.size(1), T = b.size(2), rows = b.size(3), cols = abar.size(2);
  auto SL = torch::zeros({rows, rows}, abar.options());
  auto SR = torch::zeros({cols, cols}, abar.options());
  const bool kernel = T < std::min(rows, cols);
  const auto Ka = kernel ? torch::bmm(abar, abar.transpose(1, 2)) : at::Tensor();  // [N, T, T] ā·ā
  for (int64_t s = 0; s < S; ++s) {
    const auto ws = w[s].to(abar.options()).view({N, 1, 1});
    const auto& bs = b[s];
    if (kernel) {
      // Ĝ_nᵀ Ĝ_n = Ā_nᵀ (B_n B_nᵀ) Ā_n,  Ĝ_n Ĝ_nᵀ = B_nᵀ (Ā_n Ā_nᵀ) B_n
      const auto Kb = torch::bmm(bs, bs.transpose(1, 2)) * ws;  // [N, T, T]
      SR += torch::mm(abar.reshape({N * T, cols}).t(), torch::bmm(Kb, abar).reshape({N * T, cols}));
      SL += torch::mm(bs.reshape({N * T, rows}).t(), torch::bmm(Ka * ws, bs).reshape({N * T, rows}));
    } else {
      // √w_sn Ĝ_sn stacked: S_R from the rows [N·rows, cols], S_L from [rows, N·cols].
      const auto G = per_sample_matrices(bs, abar) * ws.sqrt();
      const auto X = G.reshape({N * rows, cols});
      const auto Y = G.transpose(0, 1).reshape({rows, N * cols});
      SR += torch::mm(X.t(), X);
      SL += torch::mm(Y, Y.t());
    }
  }
  return {SL, SR};
}

namespace {

// Rows Λ^{1/2} Qᵀ X_n of Σ_n X_nᵀ K_n X_n for kernels K_n = Q Λ Qᵀ [N, T, T] and X [N, T, d]: [N·T, d].
at::Tensor kernel_rows(const at::Tensor& K, const at::Tensor& X) {
  auto [lambda, Q] = symmetric_eigh(K);
  const auto rows = torch::bmm(Q.transpose(1, 2), X) * lambda.clamp_min(0).sqrt().unsqueeze(2);
  return rows.reshape({-1, X.size(2)});
}

}  // namespace

std::pair<FactorRows, FactorRows> gradient_second_moment_rows(const at::Tensor& b, const at::Tensor& abar,
                                                              const at::Tensor& w) {
  const int64_t S = b.size(0), N = b.size(1);
  const auto Ka = torch::bmm(abar, abar.transpose(1, 2));  // [N, T, T]
  std::vector<at::Tensor> left, right;
  for (int64_t s = 0; s < S; ++s) {
    const auto sw = w[s].to(abar.options()).clamp_min(0).sqrt().view({N, 1, 1});
    const auto bs = b[s] * sw;  // √w_sn b_snt
    left.push_back(kernel_rows(Ka, bs));                                       // S_L = Σ B_nᵀ (Ā_n Ā_nᵀ) B_n
    right.push_back(kernel_rows(torch::bmm(bs, bs.transpose(1, 2)), abar));    // S_R = Σ Ā_nᵀ (B_n B_nᵀ) Ā_n
  }
  return {{torch::cat(left), 1.0}, {torch::cat(right), 1.0}};
}

at::Tensor rotated_second_moment(const at::Tensor& b, const at::Tensor& abar, const at::Tensor& w,
                                 const at::Tensor& UB, const at::Tensor& UA) {
  const int64_t S = b.size(0), N = b.size(1);
  const auto a_rot = torch::matmul(abar, UA);  // ã_nt = U_Aᵀ ā_nt
  auto E = torch::zeros({UB.size(1), UA.size(1)}, abar.options());
  for (int64_t s = 0; s < S; ++s) {
    const auto b_rot = torch::matmul(b[s], UB);  // b̃_nt = U_Bᵀ b_nt
    // U_Bᵀ Ĝ_n U_A = Σ_t b̃_nt ã_ntᵀ
    const auto rotated = torch::bmm(b_rot.transpose(1, 2), a_rot);
    E += (rotated.square() * w[s].to(abar.options()).view({N, 1, 1})).sum(0);
  }
  return E;
}

Eigen symmetric_eigen(const at::Tensor& M) {
  const auto M64 = M.to(torch::kDouble);
  auto [values, vectors] = symmetric_eigh(M64);
  return {values.clamp_min(0), vectors, M.size(0)};
}

Eigen factor_eigen(const FactorRows& rows, Factorisation how) {
  const auto Z = rows.Z.to(torch::kDouble);
  const int64_t m = Z.size(0), d = Z.size(1);
  const bool thin = how == Factorisation::kThin || (how == Factorisation::kAuto && m < d);
  if (!thin) return symmetric_eigen(torch::mm(Z.t(), Z) * rows.scale);
  // K = scale·Z Zᵀ [m, m]; M (Zᵀv) = scale·Zᵀ(Z Zᵀ v) = σ Zᵀv and ‖Zᵀv‖² = σ/scale.
  const auto K = torch::mm(Z, Z.t()) * rows.scale;
  auto [sigma, V] = symmetric_eigh(K);
  const double top = m > 0 ? sigma.max().item<double>() : 0.0;
  const auto keep = sigma.gt(kPseudoInverseRcond * top).logical_and(sigma.gt(0)).nonzero().squeeze(1);
  sigma = sigma.index_select(0, keep);
  V = V.index_select(1, keep);
  const auto U = torch::mm(Z.t(), V) * (rows.scale / sigma).sqrt().unsqueeze(0);  // u = √scale·Zᵀv/√σ
  return {sigma, U, d};
}

at::Tensor rotate(const at::Tensor& UB, const at::Tensor& UA, const at::Tensor& G) {
  return torch::mm(torch::mm(UB.t(), G), UA);  // U_Bᵀ G U_A
}

std::pair<at::Tensor, bool> eigenbasis_scale(const at::Tensor& D, const at::Tensor& rotated, double lambda) {
  const auto keep = kept_entries(D, lambda);
  return {torch::where(keep, rotated / (D + lambda), torch::zeros_like(rotated)), !keep.all().item<bool>()};
}

std::pair<at::Tensor, bool> eigenbasis_apply(const at::Tensor& UB, const at::Tensor& UA, const at::Tensor& D,
                                             const at::Tensor& rotated, double lambda, at::ScalarType dtype) {
  const auto [scaled, dropped] = eigenbasis_scale(D, rotated, lambda);
  return {torch::mm(torch::mm(UB.to(dtype), scaled.to(dtype)), UA.t().to(dtype)), dropped};
}

std::pair<at::Tensor, bool> eigenbasis_solve(const at::Tensor& UB, const at::Tensor& UA, const at::Tensor& D,
                                             const at::Tensor& G, double lambda) {
  return eigenbasis_apply(UB, UA, D, rotate(UB, UA, G), lambda, G.scalar_type());
}

std::pair<at::Tensor, bool> inverse_power(const at::Tensor& values, double shift, double power) {
  const auto shifted = values + shift;
  const double top = shifted.numel() ? shifted.max().item<double>() : 0.0;
  const auto keep = shift > 0 ? shifted.gt(0) : shifted.gt(kPseudoInverseRcond * top).logical_and(shifted.gt(0));
  const auto inv = torch::where(keep, shifted.pow(-power), torch::zeros_like(shifted));
  return {inv, !keep.all().item<bool>()};
}

double top_value(const at::Tensor& values) { return values.numel() ? values.max().item<double>() : 0.0; }

std::pair<at::Tensor, bool> kronecker_solve(const Eigen& A, const Eigen& B, const at::Tensor& G, double lambda) {
  return eigenbasis_solve(B.vectors, A.vectors, torch::outer(B.values, A.values), G, lambda);
}

std::shared_ptr<const InputSplit> split_input(const at::Tensor& U_in, const at::Tensor& G) {
  auto out = std::make_shared<InputSplit>();
  out->GU = torch::mm(G, U_in);                      // G U_in
  out->GQ = G - torch::mm(out->GU, U_in.t());        // G Q_in
  out->gq_norm_sq = out->GQ.square().sum().item<double>();
  return out;
}

std::shared_ptr<const GradientSplit> split_gradient(const at::Tensor& U_out, const InputSplit& in) {
  auto out = std::make_shared<GradientSplit>();
  out->rotated = torch::mm(U_out.t(), in.GU);                  // Ĝ = U_outᵀ G U_in
  out->left = torch::mm(U_out.t(), in.GQ);                     // U_outᵀ G Q_in
  out->right = in.GU - torch::mm(U_out, out->rotated);         // Q_out G U_in
  out->GQ = in.GQ;
  out->left_row_sq = out->left.square().sum(1);
  out->right_col_sq = out->right.square().sum(0);
  // ‖Q_out G Q_in‖² = ‖G Q_in‖² − ‖P_out G Q_in‖²; clamped: both may be rounding-sized.
  out->perp_norm_sq = std::max(0.0, in.gq_norm_sq - out->left_row_sq.sum().item<double>());
  return out;
}

const at::Tensor& grad64(BatchState& state) {
  return state.memo<at::Tensor>("kron/g64", [&] { return state.grad().to(torch::kDouble); });
}

const std::shared_ptr<const GradientSplit>& gradient_split(BatchState& state, const LayerBlock& block,
                                                           const at::Tensor& U_out, const at::Tensor& U_in) {
  const auto ptr = [](const at::Tensor& t) { return static_cast<const void*>(t.data_ptr()); };
  const auto& in = state.memo<std::shared_ptr<const InputSplit>>(
      fmt::format("kron/split-in/{}/{}/{}", block.layer, block.weight, ptr(U_in)),
      [&] { return split_input(U_in, block_of(grad64(state), state.lin().layout(), block)); });
  return state.memo<std::shared_ptr<const GradientSplit>>(
      fmt::format("kron/split/{}/{}/{}/{}", block.layer, block.weight, ptr(U_out), ptr(U_in)),
      [&] { return split_gradient(U_out, *in); });
}

at::Tensor rotated_gradient(BatchState& state, const LayerBlock& block, const Eigen& out, const Eigen& in) {
  if (out.thin() || in.thin()) return gradient_split(state, block, out.vectors, in.vectors)->rotated;
  return rotate(out.vectors, in.vectors, block_of(grad64(state), state.lin().layout(), block));
}

std::pair<at::Tensor, bool> diagonal_solve(const at::Tensor& D, const at::Tensor& g, double lambda) {
  const auto keep = kept_entries(D, lambda);
  const auto x = torch::where(keep, g / (D + lambda), torch::zeros_like(g));
  return {x, !keep.all().item<bool>()};
}

const char* statistic_name(Statistic statistic) {
  switch (statistic) {
    case Statistic::kSampled: return "sampled";
    case Statistic::kExact: return "exact";
    case Statistic::kTrue: return "true";
    case Statistic::kTrueOverS: return "true-over-s";
  }
  return "?";
}

Seeds seeds_of(BatchState& state, Statistic statistic) {
  auto& lin = state.lin();
  const int64_t N = state.num_samples();
  const auto opts = torch::TensorOptions().dtype(torch::kDouble).device(lin.device());
  switch (statistic) {
    case Statistic::kSampled: {
      const auto& u = state.sampled_logit_grad();
      return {u, torch::full({u.size(0), N}, 1.0 / static_cast<double>(u.size(0)), opts)};
    }
    case Statistic::kExact: {
      const auto u = state.loss_fn().hessian_sqrt(lin.logits(), state.targets());
      return {u, torch::ones({u.size(0), N}, opts)};
    }
    case Statistic::kTrue:
      return {state.logit_grad().unsqueeze(0), torch::ones({1, N}, opts)};
    case Statistic::kTrueOverS: {
      const auto s = state.logit_grad_norm_sq().to(opts);
      const auto w = torch::where(s.gt(0), 1.0 / s, torch::zeros_like(s));
      return {state.logit_grad().unsqueeze(0), w.unsqueeze(0)};
    }
  }
  throw Error("unknown statistic");
}

void check_budget(BatchState& state, const BlockPlan& plan, Statistic statistic, const Budget& budget,
                  const std::string& method) {
  double factors = 0;
  for (const auto& b : plan.blocks) factors += 3.0 * 8.0 * (double(b.rows) * b.rows + double(b.cols) * b.cols);
  require_memory(budget, method, "its Kronecker factors and their eigenvectors", factors);
  if (statistic != Statistic::kExact) return;
  auto& lin = state.lin();
  const auto& z = lin.logits();
  const int64_t N = z.size(0);
  // Columns of the Hessian's square root: C per token for cross-entropy, every output for squared error.
  const int64_t R = state.loss_fn().name() == "cross-entropy" ? z.size(-1) : z.numel() / std::max<int64_t>(N, 1);
  require_output_units(budget, method, "the exact expectation over the outputs (use kfac, which samples them)", R);
  double seeds = double(R) * z.numel();
  for (const auto& b : plan.blocks) seeds += double(R) * lin.layer_output_tokens(b.layer).numel();
  require_memory(budget, method, "the output gradients of the exact expectation", 8.0 * seeds);
}

const BlockPlan& plan(BatchState& state, const std::string& method) {
  return state.memo<BlockPlan>("kron/plan", [&] { return plan_blocks(state.lin(), method); });
}

const std::vector<at::Tensor>& augmented_inputs(BatchState& state, const std::string& method) {
  return state.memo<std::vector<at::Tensor>>("kron/abar", [&] {
    std::vector<at::Tensor> out;
    for (const auto& block : plan(state, method).blocks) out.push_back(augmented_inputs(state.lin(), block));
    return out;
  });
}

const std::vector<at::Tensor>& output_grads(BatchState& state, Statistic statistic, const std::string& method) {
  // The 1/s_n weighting does not change b: it shares the true-label gradients.
  if (statistic == Statistic::kTrueOverS) statistic = Statistic::kTrue;
  return state.memo<std::vector<at::Tensor>>(fmt::format("kron/b/{}", statistic_name(statistic)), [&] {
    const auto& blocks = plan(state, method).blocks;
    const auto per_layer = state.lin().layer_output_grad_tokens(seeds_of(state, statistic).u);
    std::vector<at::Tensor> out;
    for (const auto& block : blocks) out.push_back(per_layer[block.layer].to(torch::kDouble));
    return out;
  });
}

const std::vector<Eigen>& input_factors(BatchState& state, bool reduce, Factorisation how, const std::string& method) {
  const auto key = fmt::format("kron/A/{}/{}", reduce ? "reduce" : "expand", factorisation_name(how));
  return state.memo<std::vector<Eigen>>(key, [&] {
    std::vector<Eigen> out;
    for (const auto& abar : augmented_inputs(state, method)) {
      out.push_back(factor_eigen(input_factor_rows(abar, reduce), how));
    }
    return out;
  });
}

const at::Tensor& statistic_weights(BatchState& state, Statistic statistic) {
  return state.memo<at::Tensor>(fmt::format("kron/w/{}", statistic_name(statistic)),
                                [&] { return seeds_of(state, statistic).weights; });
}

const at::Tensor& uncovered_rows(BatchState& state, Statistic statistic, const std::string& method) {
  if (statistic == Statistic::kTrueOverS) statistic = Statistic::kTrue;
  return state.memo<at::Tensor>(fmt::format("kron/rows/{}", statistic_name(statistic)), [&] {
    const auto& p = plan(state, method);
    auto& lin = state.lin();
    if (p.uncovered_size == 0) return at::Tensor();
    const auto u = seeds_of(state, statistic).u;
    std::vector<at::Tensor> per_seed;
    // One seed set at a time: the per-sample rows [N, P] are reduced to the uncovered entries.
    for (int64_t s = 0; s < u.size(0); ++s) {
      per_seed.push_back(uncovered_of(lin.per_sample(u[s]), lin.layout(), p).to(torch::kDouble));
    }
    return torch::stack(per_seed);
  });
}

}  // namespace fisheval::solvers::kron
