// The direction algebra of solvers/direction_algebra.h: d, dᵀg, ‖d‖², J_z d and dᵀFd of a
// Direction in any of its forms, from the statistics cached in the BatchState.
#include "solvers/direction_algebra.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "solvers/kronecker.h"

namespace fisheval::solvers {
namespace {

// The block layout ([W | b] in the flat vector, solvers/kronecker.h) of a basis block.
kron::LayerBlock layout_block(const BasisBlock& blk) {
  return kron::LayerBlock{blk.layer, blk.weight, blk.bias, blk.rows, blk.cols};
}

}  // namespace

Direction materialised(BatchState& state, Direction dir) {
  dir.d = materialise(state, dir);
  dir.blocks.clear();
  dir.remainder = at::Tensor();
  return dir;
}

at::Tensor materialise(BatchState& state, const Direction& dir) {
  if (dir.d.defined()) return dir.d;
  auto d = dir.remainder.defined() ? dir.remainder.clone() : torch::zeros_like(state.grad());
  if (dir.true_weights.defined()) d += state.jt_times(dir.true_weights);
  if (dir.sampled_weights.defined()) d += state.sampled_jt_times(dir.sampled_weights);
  const auto& layout = state.lin().layout();
  for (const auto& blk : dir.blocks) {
    const auto dt = d.scalar_type();
    auto m = torch::mm(torch::mm(blk.U_out.to(dt), blk.X.to(dt)), blk.U_in.t().to(dt));  // U_out X U_inᵀ
    if (blk.thin()) {  // + U_out·diag(l)·G_left + G_right·diag(r)·U_inᵀ + c·G_perp
      const auto& sp = *blk.split;
      m += torch::mm(blk.U_out.to(dt), (blk.left_scale.unsqueeze(1) * sp.left).to(dt)) +
           torch::mm((sp.right * blk.right_scale.unsqueeze(0)).to(dt), blk.U_in.t().to(dt));
      if (blk.perp_coef != 0) {  // G_perp = G Q_in − U_out·G_left
        m += blk.perp_coef * (sp.GQ - torch::mm(blk.U_out, sp.left)).to(dt);
      }
    }
    kron::put_block(d, m, layout, layout_block(blk));
  }
  return d;
}

std::pair<double, double> products(BatchState& state, const Direction& dir) {
  const auto& g = state.grad();
  const bool weights_only = !dir.d.defined() && dir.has_weights() && dir.blocks.empty() && !dir.remainder.defined();
  const bool blocks_only = !dir.d.defined() && !dir.has_weights() && !dir.blocks.empty();
  if (weights_only) {
    // dᵀg = xᵀ(JJᵀ)1 + yᵀ(ĴJᵀ)1;  ‖d‖² = xᵀCx + 2 yᵀ(ĴJᵀ)x + yᵀĈy
    const auto& x = dir.true_weights;
    const auto& y = dir.sampled_weights;
    double dg = 0, dd = 0;
    const auto ones = torch::ones({state.num_samples()}, torch::kDouble);
    if (x.defined()) {
      const auto Cx = torch::mv(state.gram(), x);
      dg += Cx.sum().item<double>();
      dd += x.dot(Cx).item<double>();
    }
    if (y.defined()) {
      dg += y.dot(torch::mv(state.cross_gram(), ones)).item<double>();
      dd += y.dot(torch::mv(state.sampled_gram(), y)).item<double>();
      if (x.defined()) dd += 2 * y.dot(torch::mv(state.cross_gram(), x)).item<double>();
    }
    return {dg, dd};
  }
  if (blocks_only) {
    // Orthonormal columns: ⟨U_out X U_inᵀ, G⟩ = ⟨X, Ĝ⟩ with Ĝ = U_outᵀ G U_in and
    // ‖U_out X U_inᵀ‖ = ‖X‖. Thin bases add three terms orthogonal to it and to each other,
    // G's parts scaled (direction.h), with ℓ_r = ‖row r of G_left‖², ρ_r = ‖column r of G_right‖²:
    //   dᵀg  = ⟨X, Ĝ⟩ + Σ l_r ℓ_r + Σ r_r ρ_r + c‖G_perp‖²,
    //   ‖d‖² = ‖X‖² + Σ l_r² ℓ_r + Σ r_r² ρ_r + c²‖G_perp‖².
    // The remainder is zero on the blocks.
    double dg = 0, dd = 0;
    const auto g64 = g.to(torch::kDouble);
    const auto& layout = state.lin().layout();
    for (const auto& blk : dir.blocks) {
      at::Tensor rotated = blk.G_rotated;
      if (!rotated.defined()) {
        rotated = torch::mm(torch::mm(blk.U_out.t(), kron::block_of(g64, layout, layout_block(blk))), blk.U_in);
      }
      dg += (blk.X * rotated).sum().item<double>();
      dd += blk.X.square().sum().item<double>();
      if (blk.thin()) {
        const auto& sp = *blk.split;
        const double c = blk.perp_coef;
        const auto& l = blk.left_scale;
        const auto& r = blk.right_scale;
        dg += (l.dot(sp.left_row_sq) + r.dot(sp.right_col_sq)).item<double>() + c * sp.perp_norm_sq;
        dd += (l.square().dot(sp.left_row_sq) + r.square().dot(sp.right_col_sq)).item<double>() +
              c * c * sp.perp_norm_sq;
      }
    }
    if (dir.remainder.defined()) {
      const auto r = dir.remainder.to(torch::kDouble);
      dg += r.dot(g64).item<double>();
      dd += r.dot(r).item<double>();
    }
    return {dg, dd};
  }
  const auto d = materialise(state, dir).to(torch::kDouble);
  return {d.dot(g.to(torch::kDouble)).item<double>(), d.dot(d).item<double>()};
}

namespace {

at::Tensor weights_logit_jvp(BatchState& state, const Direction& dir) {
  // (J_z Jᵀ x)_{n,z} = Σ_m M[z, n, m] x_m with M = ⟨∂z_{n,z}/∂θ, ∇θ l_m⟩ from the taps.
  const auto& z = state.lin().logits();
  const int64_t N = state.num_samples(), Z = z.numel() / N;
  auto jd = torch::zeros({N, Z}, z.options());
  if (dir.true_weights.defined()) {
    jd.add_(torch::einsum("znm,m->nz", {state.unit_true_gram(), dir.true_weights.to(z.options())}));
  }
  if (dir.sampled_weights.defined()) {
    jd.add_(torch::einsum("znm,m->nz", {state.unit_sampled_gram(), dir.sampled_weights.to(z.options())}));
  }
  return jd.reshape(z.sizes());
}

std::string basis_key(const BasisBlock& blk) {
  return fmt::format("basis-taps/{}/{}/{}", blk.layer, static_cast<const void*>(blk.U_in.data_ptr()),
                     static_cast<const void*>(blk.U_out.data_ptr()));
}

// Stacks one field of the group's blocks: [K, ...] in the working dtype.
template <typename Field>
at::Tensor stacked(const std::vector<const BasisBlock*>& group, Field&& field, c10::ScalarType dtype) {
  std::vector<at::Tensor> parts;
  parts.reserve(group.size());
  for (const auto* blk : group) parts.push_back(field(*blk));
  return torch::stack(parts).to(dtype);
}

// J_z d_k of one layer block for the K directions of `group`, which share its bases (one
// method's dampings, or several methods with the same factors): [N, Z, K].
//   (J_z d)_{n,z} = Σ_t ⟨b_{z,n,t}, D ā_{n,t}⟩ = ⟨J_{n,z}, D⟩,  J_{n,z} = Σ_t b_{z,n,t} ā_{n,t}ᵀ,
// b = ∂z_{n,z}/∂out (output-unit taps), ā the layer input (with a 1 for the bias),
// D = U_out X U_inᵀ the block of d (thin bases: the rotated route, with their three further
// terms). All K directions go through each product at once (the damping axis is a column
// axis of one product, not a loop). Three ways, the cheapest for K by operation count:
//  rotated:  ã = U_inᵀ ā and b̃ = U_outᵀ b once per basis, then ⟨b̃, X_k ã⟩ for every k — no
//            back-rotation of X;
//  direct:   D_k = U_out X_k U_inᵀ, then ⟨b, D_k ā⟩;
//  jacobian: D_k as in direct, then ⟨J_{n,z}, D_k⟩ with the block's per-sample output-unit
//            Jacobian [N·Z, rows·cols], formed once per layer (and shared by every method).
// (Rotation wins for wide layers and few outputs; the Jacobian for many tokens and small
// blocks, e.g. LoRA factors; back-rotation for the rest.)
at::Tensor group_logit_jvp(BatchState& state, const std::vector<const BasisBlock*>& group) {
  const auto& first = *group.front();
  const auto& z = state.lin().logits();
  const int64_t N = state.num_samples(), Z = z.numel() / N, K = static_cast<int64_t>(group.size());
  const auto& units = state.lin().unit_grads();
  const auto dtype = z.scalar_type();
  const auto key = basis_key(first);
  const bool weight = first.weight >= 0, bias = first.bias >= 0;
  const auto& abar = state.layer_inputs(first.layer, weight, bias);  // [N, T, cols]
  const int64_t T = abar.size(1), rows = first.rows, cols = first.cols;
  const int64_t r_out = first.U_out.size(1), r_in = first.U_in.size(1);
  const double n = N, back_rotation = double(rows) * r_in * (r_out + cols);
  const double rotated_cost = (state.has_memo(key) ? 0.0 : n * Z * T * rows * r_out + n * T * cols * r_in) +
                              K * n * T * r_out * (r_in + Z);
  const double direct_cost = K * (back_rotation + n * T * rows * (cols + Z));
  const bool jacobian_fits = n * Z * rows * cols <= BatchState::kMaxUnitJacobian;
  const double jacobian_cost = (state.has_unit_jacobian(first.layer, weight, bias) ? 0.0 : n * Z * T * rows * cols) +
                               K * (back_rotation + n * Z * rows * cols);
  auto route = state.options().block_products;
  if (first.thin() || (route == BlockProducts::kJacobian && !jacobian_fits)) route = BlockProducts::kRotated;
  if (route == BlockProducts::kAuto) {
    route = direct_cost < rotated_cost ? BlockProducts::kDirect : BlockProducts::kRotated;
    if (jacobian_fits && jacobian_cost < std::min(direct_cost, rotated_cost)) route = BlockProducts::kJacobian;
  }
  // v_k = D_k ā (or X_k ã) for every k, laid out [N, T·r, K] to pair with taps [N, Z, T·r]
  // (the small matrices are laid out [r, K, c], so that the product comes out in that
  // layout and the large one is never permuted).
  const auto per_direction = [&](const at::Tensor& inputs, const at::Tensor& mats) {  // [N, T, c], [K, r, c]
    const int64_t r = mats.size(1), c = mats.size(2);
    const auto m = mats.permute({1, 0, 2}).reshape({r * K, c});               // [r·K, c]
    return torch::mm(inputs.reshape({N * T, c}), m.t()).view({N, T * r, K});  // [N·T, r·K] = [N, T·r, K]
  };
  const auto X = stacked(group, [](const BasisBlock& b) { return b.X; }, dtype);  // [K, r_out, r_in]
  if (route == BlockProducts::kRotated) {
    // ã [N, T, r_in], and b̃ laid out once as [N, Z, T·r_out].
    const auto& rotated = state.memo<std::pair<at::Tensor, at::Tensor>>(key, [&] {
      const auto bt = torch::matmul(units.per_layer[first.layer], first.U_out.to(dtype));  // [Z, N, T, r_out]
      return std::make_pair(torch::matmul(abar, first.U_in.to(dtype)),
                            bt.permute({1, 0, 2, 3}).reshape({N, Z, T * r_out}).contiguous());
    });
    auto jd = torch::bmm(rotated.second, per_direction(rotated.first, X));  // [N, Z, K]
    if (first.thin()) {
      // Thin bases, G's parts outside them (direction.h), each a sum over the basis side
      // that the method scales, formed once per basis as [N, Z, r] and then weighted:
      //   ⟨b, U_out·diag(l)·G_left ā⟩ = Σ_r l_r Σ_t b̃_r (G_left ā)_r,
      //   ⟨b, G_right·diag(r)·U_inᵀ ā⟩ = Σ_r r_r Σ_t (bᵀ G_right)_r ã_r,
      //   ⟨b, G_perp ā⟩ = ⟨b, G Q_in ā⟩ − Σ_r Σ_t b̃_r (G_left ā)_r (G Q_in's products shared).
      const auto& sp = *first.split;
      const auto& left = state.memo<at::Tensor>(fmt::format("left-jvp/{}", key), [&] {
        const auto la = torch::matmul(abar, sp.left.t().to(dtype));  // G_left ā: [N, T, r_out]
        return (rotated.second.reshape({N, Z, T, r_out}) * la.unsqueeze(1)).sum(2);
      });
      const auto& right = state.memo<at::Tensor>(fmt::format("right-jvp/{}", key), [&] {
        return torch::einsum("zntr,ntr->nzr",
                             {torch::matmul(units.per_layer[first.layer], sp.right.to(dtype)), rotated.first});
      });
      const auto L = stacked(group, [](const BasisBlock& b) { return b.left_scale; }, dtype);   // [K, r_out]
      const auto R = stacked(group, [](const BasisBlock& b) { return b.right_scale; }, dtype);  // [K, r_in]
      jd.add_(torch::matmul(left, L.t()) + torch::matmul(right, R.t()));
      std::vector<double> perp(K);
      for (int64_t k = 0; k < K; ++k) perp[k] = group[k]->perp_coef;
      if (std::any_of(perp.begin(), perp.end(), [](double c) { return c != 0; })) {
        const auto& gq = state.memo<at::Tensor>(
            fmt::format("gq-jvp/{}/{}", first.layer, static_cast<const void*>(sp.GQ.data_ptr())), [&] {
              return torch::einsum("zntr,ntr->nz",
                                   {units.per_layer[first.layer], torch::matmul(abar, sp.GQ.t().to(dtype))});
            });
        jd.add_((gq - left.sum(-1)).unsqueeze(-1) * torch::tensor(perp, torch::kDouble).to(jd.options()));
      }
    }
    return jd;
  }
  const auto D = torch::matmul(torch::matmul(first.U_out.to(dtype), X), first.U_in.t().to(dtype));  // [K, rows, cols]
  if (route == BlockProducts::kJacobian) {
    const auto& J = state.unit_jacobian(first.layer, weight, bias);  // [N·Z, rows·cols]
    return torch::mm(J, D.reshape({K, rows * cols}).t()).view({N, Z, K});
  }
  const auto& b = state.memo<at::Tensor>(fmt::format("units-by-sample/{}", first.layer), [&] {
    return units.per_layer[first.layer].permute({1, 0, 2, 3}).reshape({N, Z, T * rows}).contiguous();  // [N, Z, T·rows]
  });
  return torch::bmm(b, per_direction(abar, D));
}

// The directions given as basis blocks, [K_blocks, N, Z]: their blocks grouped by basis,
// each group's directions through group_logit_jvp together, in chunks that keep the
// [N, T·r, K] products under a fixed size.
at::Tensor blocks_logit_jvp(BatchState& state, const std::vector<const Direction*>& dirs) {
  const auto& z = state.lin().logits();
  const int64_t N = state.num_samples(), Z = z.numel() / N;
  auto out = torch::zeros({static_cast<int64_t>(dirs.size()), N, Z}, z.options());
  std::map<std::string, std::vector<std::pair<int64_t, const BasisBlock*>>> groups;
  for (size_t k = 0; k < dirs.size(); ++k) {
    for (const auto& blk : dirs[k]->blocks) {
      const auto split = static_cast<const void*>(blk.split.get());
      groups[fmt::format("{}/{}", basis_key(blk), split)].emplace_back(static_cast<int64_t>(k), &blk);
    }
  }
  constexpr double kMaxElements = 1 << 23;  // per [N, T·r, K] product (64 MiB in float64)
  for (const auto& [key, members] : groups) {
    const auto& blk = *members.front().second;
    const int64_t T = state.layer_inputs(blk.layer, blk.weight >= 0, blk.bias >= 0).size(1);
    const double per_k = double(N) * T * std::max({blk.rows, blk.U_out.size(1), int64_t(1)});
    const auto chunk = static_cast<size_t>(std::max(1.0, std::floor(kMaxElements / per_k)));
    for (size_t at = 0; at < members.size(); at += chunk) {
      const size_t end = std::min(members.size(), at + chunk);
      std::vector<const BasisBlock*> group;
      std::vector<int64_t> index;
      for (size_t i = at; i < end; ++i) {
        index.push_back(members[i].first);
        group.push_back(members[i].second);
      }
      const auto idx = torch::tensor(index, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
      out.index_add_(0, idx, group_logit_jvp(state, group).permute({2, 0, 1}));
    }
  }
  return out;
}

}  // namespace

at::Tensor logit_jvp(BatchState& state, const std::vector<Direction>& dirs) {
  const auto& z = state.lin().logits();
  const int64_t K = static_cast<int64_t>(dirs.size());
  std::vector<int64_t> shape{K};
  for (auto s : z.sizes()) shape.push_back(s);
  auto out = torch::zeros(shape, z.options());
  const bool units = state.lin().unit_grads_affordable();
  std::vector<int64_t> generic, blocked;
  std::vector<at::Tensor> rows;
  std::vector<const Direction*> block_dirs;
  for (int64_t k = 0; k < K; ++k) {
    const auto& dir = dirs[k];
    const bool weights = dir.has_weights() && dir.blocks.empty() && !dir.remainder.defined();
    const bool blocks = !dir.d.defined() && !dir.has_weights() && !dir.blocks.empty();
    if (units && weights) {
      out[k].copy_(weights_logit_jvp(state, dir));
    } else if (units && blocks) {
      blocked.push_back(k);
      block_dirs.push_back(&dir);
      if (dir.remainder.defined()) {
        generic.push_back(k);
        rows.push_back(dir.remainder);
      }
    } else {
      generic.push_back(k);
      rows.push_back(materialise(state, dir));
    }
  }
  const auto index = [&](const std::vector<int64_t>& ks) {
    return torch::tensor(ks, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
  };
  if (!blocked.empty()) {
    auto block_shape = shape;
    block_shape[0] = static_cast<int64_t>(blocked.size());
    out.index_add_(0, index(blocked), blocks_logit_jvp(state, block_dirs).reshape(block_shape));
  }
  if (!generic.empty()) out.index_add_(0, index(generic), state.lin().jvp_many(torch::stack(rows)));
  return out;
}

at::Tensor fisher_quad(BatchState& state, const std::vector<Direction>& dirs) {
  if (dirs.empty()) return torch::zeros({0}, torch::kDouble);
  return state.fisher().quad_of_jvp(logit_jvp(state, dirs));
}

at::Tensor fisher_quad(BatchState& state, const at::Tensor& D) {
  std::vector<Direction> dirs(D.size(0));
  for (int64_t k = 0; k < D.size(0); ++k) dirs[k].d = D[k];
  return fisher_quad(state, dirs);
}

const at::Tensor& sampled_times_grad(BatchState& state) {
  return state.memo<at::Tensor>("sampled-times-grad", [&] {
    // (Ĵ g)_{kn} = r̂_knᵀ (J_{z_n} g); J_z g = (J_z Jᵀ)1 in sample space when affordable, else one JVP.
    Direction gdir;
    gdir.d = state.grad();
    gdir.true_weights = torch::ones({state.num_samples()}, torch::kDouble);  // g = Jᵀ1
    const auto jg = logit_jvp(state, {gdir})[0].to(torch::kCPU, torch::kDouble);
    const auto u = state.sampled_logit_grad().to(torch::kCPU, torch::kDouble);
    const int64_t K = u.size(0), N = u.size(1);
    return (u * jg.unsqueeze(0)).reshape({K, N, -1}).sum(2).reshape({K * N});
  });
}

}  // namespace fisheval::solvers
