// The direction algebra of solvers/direction_algebra.h: d, dᵀg, ‖d‖², J_z d and dᵀFd of a
// Direction in any of its forms, from the statistics cached in the BatchState.
#include "solvers/direction_algebra.h"

#include <fmt/format.h>
#include <torch/torch.h>

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

at::Tensor block_logit_jvp(BatchState& state, const std::vector<const BasisBlock*>& blocks,
                           const std::map<std::string, int64_t>& uses) {
  // (J_z d)_{n,z} = Σ_blocks Σ_t ⟨b_{z,n,t}, D ā_{n,t}⟩, b = ∂z_{n,z}/∂out (output-unit taps),
  // ā the layer input (with a 1 for the bias), D = U_out X U_inᵀ the block of d (thin bases:
  // the rotated route, with their three further terms). Two ways:
  //  rotated: ã = U_inᵀ ā and b̃ = U_outᵀ b once per basis (Z·N·T·rows² + N·T·cols²), then
  //           ⟨b̃, X ã⟩ per direction — no back-rotation of X;
  //  direct:  D = U_out X U_inᵀ per direction (rows·cols·(rows+cols)), then ⟨b, D ā⟩.
  // The cheaper one for the number of directions sharing the basis in this call is used
  // (rotation wins for wide layers and few outputs; back-rotation for many tokens/outputs).
  const auto& z = state.lin().logits();
  const int64_t N = state.num_samples(), Z = z.numel() / N;
  auto jd = torch::zeros({N, Z}, z.options());
  const auto& units = state.lin().unit_grads();
  const auto dtype = z.scalar_type();
  for (const auto* blk : blocks) {
    const auto key = basis_key(*blk);
    const auto& abar = state.memo<at::Tensor>(
        fmt::format("layer-input-with-ones/{}/{}/{}", blk->layer, blk->weight >= 0, blk->bias >= 0), [&] {
      std::vector<at::Tensor> parts;
      const auto out = state.lin().layer_output_tokens(blk->layer);
      if (blk->weight >= 0) parts.push_back(state.lin().layer_input_tokens(blk->layer));
      if (blk->bias >= 0) parts.push_back(torch::ones({out.size(0), out.size(1), 1}, out.options()));
      return torch::cat(parts, -1);  // [N, T, cols]
    });
    const int64_t T = abar.size(1), rows = blk->rows, cols = blk->cols;
    const int64_t r_out = blk->U_out.size(1), r_in = blk->U_in.size(1);
    const auto it = uses.find(key);
    const int64_t K = it == uses.end() ? 1 : it->second;
    const bool have_rotated = state.has_memo(key);
    const double rotate_cost = have_rotated ? 0.0 : double(Z) * N * T * rows * r_out + double(N) * T * cols * r_in;
    const double direct_cost = double(K) * rows * r_in * (r_out + cols);
    const auto how = state.options().block_products;
    if (blk->thin() || how == BlockProducts::kRotated || (how == BlockProducts::kAuto && rotate_cost <= direct_cost)) {
      // ã [N, T, r_in], and b̃ laid out once as [N, Z, T·r_out], so that each direction's
      // ⟨b̃, X ã⟩ is one batched product without copying the taps again.
      const auto& rotated = state.memo<std::pair<at::Tensor, at::Tensor>>(key, [&] {
        const auto bt = torch::matmul(units.per_layer[blk->layer], blk->U_out.to(dtype));  // [Z, N, T, r_out]
        return std::make_pair(torch::matmul(abar, blk->U_in.to(dtype)),
                              bt.permute({1, 0, 2, 3}).reshape({N, Z, -1}).contiguous());
      });
      const auto v = torch::matmul(rotated.first, blk->X.t().to(dtype));  // X ã: [N, T, r_out]
      jd.add_(torch::bmm(rotated.second, v.reshape({N, -1, 1})).squeeze(-1));
      if (blk->thin()) {
        // Thin bases, G's parts outside them (direction.h), each a sum over the basis side
        // that the method scales, formed once per basis as [N, Z, r] and then weighted:
        //   ⟨b, U_out·diag(l)·G_left ā⟩ = Σ_r l_r Σ_t b̃_r (G_left ā)_r,
        //   ⟨b, G_right·diag(r)·U_inᵀ ā⟩ = Σ_r r_r Σ_t (bᵀ G_right)_r ã_r,
        //   ⟨b, G_perp ā⟩ = ⟨b, G Q_in ā⟩ − Σ_r Σ_t b̃_r (G_left ā)_r (G Q_in's products shared).
        const auto& sp = *blk->split;
        const auto& left = state.memo<at::Tensor>(fmt::format("left-jvp/{}", key), [&] {
          const auto la = torch::matmul(abar, sp.left.t().to(dtype));  // G_left ā: [N, T, r_out]
          return (rotated.second.reshape({N, Z, T, -1}) * la.unsqueeze(1)).sum(2);
        });
        const auto& right = state.memo<at::Tensor>(fmt::format("right-jvp/{}", key), [&] {
          return torch::einsum("zntr,ntr->nzr",
                               {torch::matmul(units.per_layer[blk->layer], sp.right.to(dtype)), rotated.first});
        });
        jd.add_(torch::matmul(left, blk->left_scale.to(dtype)) + torch::matmul(right, blk->right_scale.to(dtype)));
        if (blk->perp_coef != 0) {
          const auto& gq = state.memo<at::Tensor>(
              fmt::format("gq-jvp/{}/{}", blk->layer, static_cast<const void*>(sp.GQ.data_ptr())), [&] {
                return torch::einsum("zntr,ntr->nz",
                                     {units.per_layer[blk->layer], torch::matmul(abar, sp.GQ.t().to(dtype))});
              });
          jd.add_(gq - left.sum(-1), blk->perp_coef);
        }
      }
    } else {
      const auto D = torch::matmul(torch::matmul(blk->U_out, blk->X), blk->U_in.t()).to(dtype);  // [rows, cols]
      const auto v = torch::matmul(abar, D.t());                                                  // D ā: [N, T, rows]
      const auto& b = state.memo<at::Tensor>(fmt::format("units-by-sample/{}", blk->layer), [&] {
        return units.per_layer[blk->layer].permute({1, 0, 2, 3}).reshape({N, Z, -1}).contiguous();  // [N, Z, T·rows]
      });
      jd.add_(torch::bmm(b, v.reshape({N, -1, 1})).squeeze(-1));
    }
  }
  return jd.reshape(z.sizes());
}

}  // namespace

at::Tensor logit_jvp(BatchState& state, const std::vector<Direction>& dirs) {
  const auto& z = state.lin().logits();
  const int64_t K = static_cast<int64_t>(dirs.size());
  std::vector<int64_t> shape{K};
  for (auto s : z.sizes()) shape.push_back(s);
  auto out = torch::zeros(shape, z.options());
  const bool units = state.lin().unit_grads_affordable();
  // How many block directions share each basis (chooses rotated vs direct products).
  std::map<std::string, int64_t> uses;
  for (const auto& dir : dirs) {
    if (dir.d.defined() || dir.has_weights()) continue;
    for (const auto& b : dir.blocks) ++uses[basis_key(b)];
  }
  std::vector<int64_t> generic;
  std::vector<at::Tensor> rows;
  for (int64_t k = 0; k < K; ++k) {
    const auto& dir = dirs[k];
    const bool weights = dir.has_weights() && dir.blocks.empty() && !dir.remainder.defined();
    const bool blocks = !dir.d.defined() && !dir.has_weights() && !dir.blocks.empty();
    if (units && weights) {
      out[k].copy_(weights_logit_jvp(state, dir));
    } else if (units && blocks) {
      std::vector<const BasisBlock*> ptrs;
      for (const auto& b : dir.blocks) ptrs.push_back(&b);
      out[k].copy_(block_logit_jvp(state, ptrs, uses));
      if (dir.remainder.defined()) {
        generic.push_back(k);
        rows.push_back(dir.remainder);
      }
    } else {
      generic.push_back(k);
      rows.push_back(materialise(state, dir));
    }
  }
  if (!generic.empty()) {
    const auto idx = torch::tensor(generic, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
    out.index_add_(0, idx, state.lin().jvp_many(torch::stack(rows)));
  }
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
