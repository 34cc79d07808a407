#include "solvers/batch_state.h"

#include <fmt/format.h>
#include <torch/torch.h>

namespace fisheval::solvers {

BatchState::BatchState(mvp::Linearisation& lin, const mvp::Loss& loss, at::Tensor targets, BatchStateOptions options)
    : lin_(lin), loss_(loss), targets_(std::move(targets)), options_(options), fisher_(lin, loss, targets_) {}

const at::Tensor& BatchState::per_sample_loss() {
  if (!per_sample_loss_.defined()) per_sample_loss_ = loss_.per_sample(lin_.logits(), targets_).to(torch::kCPU, torch::kDouble);
  return per_sample_loss_;
}

double BatchState::loss() { return per_sample_loss().sum().item<double>(); }

const at::Tensor& BatchState::logit_grad() {
  if (!logit_grad_.defined()) logit_grad_ = loss_.logit_grad(lin_.logits(), targets_);
  return logit_grad_;
}

const at::Tensor& BatchState::logit_grad_norm_sq() {
  if (!s_.defined()) {
    const auto r = logit_grad().to(torch::kCPU, torch::kDouble);
    s_ = r.reshape({r.size(0), -1}).square().sum(1);
  }
  return s_;
}

const at::Tensor& BatchState::grad() {
  if (!g_.defined()) g_ = lin_.vjp(logit_grad());
  return g_;
}

const mvp::TapGrads* BatchState::true_taps() {
  if (lin_.per_sample_engine() != mvp::PerSampleEngine::kTaps) return nullptr;
  if (!true_taps_) true_taps_ = std::make_unique<mvp::TapGrads>(lin_.tap_grads(logit_grad()));
  return true_taps_.get();
}

const mvp::TapGrads* BatchState::sampled_taps() {
  if (lin_.per_sample_engine() != mvp::PerSampleEngine::kTaps) return nullptr;
  if (!sampled_taps_) sampled_taps_ = std::make_unique<mvp::TapGrads>(lin_.tap_grads(sampled_logit_grad()));
  return sampled_taps_.get();
}

const at::Tensor& BatchState::gram() {
  if (!gram_.defined()) {
    const auto* t = true_taps();
    gram_ = (t ? lin_.gram(*t, *t) : lin_.gram(logit_grad(), logit_grad())).to(torch::kCPU, torch::kDouble);
  }
  return gram_;
}

const at::Tensor& BatchState::per_sample_grad_norm() {
  if (!norms_.defined()) norms_ = gram().diagonal().clamp_min(0).sqrt();
  return norms_;
}

const at::Tensor& BatchState::kept() {
  if (!kept_.defined()) kept_ = near_duplicate_filter(gram(), options_.dedup_cosine);
  return kept_;
}

const at::Tensor& BatchState::sampled_logit_grad() {
  if (!sampled_.defined()) {
    sampled_ = loss_.sampled_logit_grad(lin_.logits(), targets_, options_.mc_samples, options_.seed);
  }
  return sampled_;
}

const at::Tensor& BatchState::sampled_gram() {
  if (!sampled_gram_.defined()) {
    const auto* t = sampled_taps();
    const auto& u = sampled_logit_grad();
    sampled_gram_ = (t ? lin_.gram(*t, *t) : lin_.gram(u, u)).to(torch::kCPU, torch::kDouble);
  }
  return sampled_gram_;
}

const at::Tensor& BatchState::sampled_kept() {
  if (!sampled_kept_.defined()) sampled_kept_ = near_duplicate_filter(sampled_gram(), options_.dedup_cosine);
  return sampled_kept_;
}

const at::Tensor& BatchState::sampled_times_grad() {
  if (!sampled_g_.defined()) {
    // (Ĵ g)_{kn} = r̂_knᵀ (J_{z_n} g); J_z g = (J_z Jᵀ)1 in sample space when affordable, else one JVP.
    Direction gdir;
    gdir.d = grad();
    gdir.true_weights = torch::ones({num_samples()}, torch::kDouble);  // g = Jᵀ1
    const auto jg = logit_jvp({gdir})[0].to(torch::kCPU, torch::kDouble);
    const auto u = sampled_logit_grad().to(torch::kCPU, torch::kDouble);
    const int64_t K = u.size(0), N = u.size(1);
    sampled_g_ = (u * jg.unsqueeze(0)).reshape({K, N, -1}).sum(2).reshape({K * N});
  }
  return sampled_g_;
}

at::Tensor BatchState::jt_times(const at::Tensor& x) {
  if (const auto* t = true_taps()) return lin_.combine(*t, x);
  const auto& r = logit_grad();
  std::vector<int64_t> shape(r.dim(), 1);
  shape[0] = r.size(0);
  return lin_.vjp(r * x.to(r.options()).view(shape));
}

at::Tensor BatchState::sampled_jt_times(const at::Tensor& y) {
  if (const auto* t = sampled_taps()) return lin_.combine(*t, y);
  const auto& u = sampled_logit_grad();
  std::vector<int64_t> shape(u.dim(), 1);
  shape[0] = u.size(0);
  shape[1] = u.size(1);
  return lin_.vjp((u * y.to(u.options()).view(shape)).sum(0));
}

const at::Tensor& BatchState::cross_gram() {
  if (!cross_gram_.defined()) {
    const auto* s = sampled_taps();
    const auto* t = true_taps();
    cross_gram_ = (s ? lin_.gram(*s, *t) : lin_.gram(sampled_logit_grad(), logit_grad())).to(torch::kCPU, torch::kDouble);
  }
  return cross_gram_;
}

namespace {

// The block [rows, cols] ([W | b]) of a flat parameter vector.
at::Tensor basis_block_matrix(const at::Tensor& flat, const mvp::ParamLayout& layout, const BasisBlock& blk) {
  std::vector<at::Tensor> parts;
  const int64_t wcols = blk.cols - (blk.bias >= 0 ? 1 : 0);
  if (blk.weight >= 0) {
    parts.push_back(flat.narrow(0, layout.offset(blk.weight), layout.numel(blk.weight)).reshape({blk.rows, wcols}));
  }
  if (blk.bias >= 0) parts.push_back(flat.narrow(0, layout.offset(blk.bias), blk.rows).reshape({blk.rows, 1}));
  return torch::cat(parts, 1);
}

}  // namespace

Direction BatchState::materialised(Direction dir) {
  dir.d = materialise(dir);
  dir.blocks.clear();
  dir.remainder = at::Tensor();
  return dir;
}

at::Tensor BatchState::materialise(const Direction& dir) {
  if (dir.d.defined()) return dir.d;
  auto d = dir.remainder.defined() ? dir.remainder.clone() : torch::zeros_like(grad());
  if (dir.true_weights.defined()) d += jt_times(dir.true_weights);
  if (dir.sampled_weights.defined()) d += sampled_jt_times(dir.sampled_weights);
  const auto& layout = lin_.layout();
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
    const int64_t wcols = blk.cols - (blk.bias >= 0 ? 1 : 0);
    if (blk.weight >= 0) {
      d.narrow(0, layout.offset(blk.weight), layout.numel(blk.weight)).copy_(m.narrow(1, 0, wcols).reshape({-1}));
    }
    if (blk.bias >= 0) d.narrow(0, layout.offset(blk.bias), layout.numel(blk.bias)).copy_(m.select(1, blk.cols - 1));
  }
  return d;
}

std::pair<double, double> BatchState::products(const Direction& dir) {
  const auto& g = grad();
  const bool weights_only = !dir.d.defined() && dir.has_weights() && dir.blocks.empty() && !dir.remainder.defined();
  const bool blocks_only = !dir.d.defined() && !dir.has_weights() && !dir.blocks.empty();
  if (weights_only) {
    // dᵀg = xᵀ(JJᵀ)1 + yᵀ(ĴJᵀ)1;  ‖d‖² = xᵀCx + 2 yᵀ(ĴJᵀ)x + yᵀĈy
    const auto& x = dir.true_weights;
    const auto& y = dir.sampled_weights;
    double dg = 0, dd = 0;
    const auto ones = torch::ones({num_samples()}, torch::kDouble);
    if (x.defined()) {
      const auto Cx = torch::mv(gram(), x);
      dg += Cx.sum().item<double>();
      dd += x.dot(Cx).item<double>();
    }
    if (y.defined()) {
      dg += y.dot(torch::mv(cross_gram(), ones)).item<double>();
      dd += y.dot(torch::mv(sampled_gram(), y)).item<double>();
      if (x.defined()) dd += 2 * y.dot(torch::mv(cross_gram(), x)).item<double>();
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
    const auto& layout = lin_.layout();
    for (const auto& blk : dir.blocks) {
      at::Tensor rotated = blk.G_rotated;
      if (!rotated.defined()) {
        rotated = torch::mm(torch::mm(blk.U_out.t(), basis_block_matrix(g64, layout, blk)), blk.U_in);
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
  const auto d = materialise(dir).to(torch::kDouble);
  return {d.dot(g.to(torch::kDouble)).item<double>(), d.dot(d).item<double>()};
}

at::Tensor BatchState::weights_logit_jvp(const Direction& dir) {
  // (J_z Jᵀ x)_{n,z} = Σ_m M[z, n, m] x_m with M = ⟨∂z_{n,z}/∂θ, ∇θ l_m⟩ from the taps.
  const auto& z = lin_.logits();
  const int64_t N = num_samples(), Z = z.numel() / N;
  auto jd = torch::zeros({N, Z}, z.options());
  if (dir.true_weights.defined()) {
    if (!unit_true_.defined()) unit_true_ = lin_.gram(lin_.unit_grads(), *true_taps()).reshape({Z, N, N});
    jd.add_(torch::einsum("znm,m->nz", {unit_true_, dir.true_weights.to(z.options())}));
  }
  if (dir.sampled_weights.defined()) {
    if (!unit_sampled_.defined()) unit_sampled_ = lin_.gram(lin_.unit_grads(), *sampled_taps()).reshape({Z, N, -1});
    jd.add_(torch::einsum("znm,m->nz", {unit_sampled_, dir.sampled_weights.to(z.options())}));
  }
  return jd.reshape(z.sizes());
}

std::string BatchState::basis_key(const BasisBlock& blk) {
  return fmt::format("basis-taps/{}/{}/{}", blk.layer, static_cast<const void*>(blk.U_in.data_ptr()),
                     static_cast<const void*>(blk.U_out.data_ptr()));
}

at::Tensor BatchState::block_logit_jvp(const std::vector<const BasisBlock*>& blocks,
                                       const std::map<std::string, int64_t>& uses) {
  // (J_z d)_{n,z} = Σ_blocks Σ_t ⟨b_{z,n,t}, D ā_{n,t}⟩, b = ∂z_{n,z}/∂out (output-unit taps),
  // ā the layer input (with a 1 for the bias), D = U_out X U_inᵀ the block of d (thin bases:
  // the rotated route, with their three further terms). Two ways:
  //  rotated: ã = U_inᵀ ā and b̃ = U_outᵀ b once per basis (Z·N·T·rows² + N·T·cols²), then
  //           ⟨b̃, X ã⟩ per direction — no back-rotation of X;
  //  direct:  D = U_out X U_inᵀ per direction (rows·cols·(rows+cols)), then ⟨b, D ā⟩.
  // The cheaper one for the number of directions sharing the basis in this call is used
  // (rotation wins for wide layers and few outputs; back-rotation for many tokens/outputs).
  const auto& z = lin_.logits();
  const int64_t N = num_samples(), Z = z.numel() / N;
  auto jd = torch::zeros({N, Z}, z.options());
  const auto& units = lin_.unit_grads();
  const auto dtype = z.scalar_type();
  for (const auto* blk : blocks) {
    const auto key = basis_key(*blk);
    const auto& abar = memo<at::Tensor>(
        fmt::format("layer-input-with-ones/{}/{}/{}", blk->layer, blk->weight >= 0, blk->bias >= 0), [&] {
      std::vector<at::Tensor> parts;
      const auto out = lin_.layer_output_tokens(blk->layer);
      if (blk->weight >= 0) parts.push_back(lin_.layer_input_tokens(blk->layer));
      if (blk->bias >= 0) parts.push_back(torch::ones({out.size(0), out.size(1), 1}, out.options()));
      return torch::cat(parts, -1);  // [N, T, cols]
    });
    const int64_t T = abar.size(1), rows = blk->rows, cols = blk->cols;
    const int64_t r_out = blk->U_out.size(1), r_in = blk->U_in.size(1);
    const auto it = uses.find(key);
    const int64_t K = it == uses.end() ? 1 : it->second;
    const bool have_rotated = has_memo(key);
    const double rotate_cost = have_rotated ? 0.0 : double(Z) * N * T * rows * r_out + double(N) * T * cols * r_in;
    const double direct_cost = double(K) * rows * r_in * (r_out + cols);
    const auto how = options_.block_products;
    if (blk->thin() || how == BlockProducts::kRotated || (how == BlockProducts::kAuto && rotate_cost <= direct_cost)) {
      // ã [N, T, r_in], and b̃ laid out once as [N, Z, T·r_out], so that each direction's
      // ⟨b̃, X ã⟩ is one batched product without copying the taps again.
      const auto& rotated = memo<std::pair<at::Tensor, at::Tensor>>(key, [&] {
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
        const auto& left = memo<at::Tensor>(fmt::format("left-jvp/{}", key), [&] {
          const auto la = torch::matmul(abar, sp.left.t().to(dtype));  // G_left ā: [N, T, r_out]
          return (rotated.second.reshape({N, Z, T, -1}) * la.unsqueeze(1)).sum(2);
        });
        const auto& right = memo<at::Tensor>(fmt::format("right-jvp/{}", key), [&] {
          return torch::einsum("zntr,ntr->nzr",
                               {torch::matmul(units.per_layer[blk->layer], sp.right.to(dtype)), rotated.first});
        });
        jd.add_(torch::matmul(left, blk->left_scale.to(dtype)) + torch::matmul(right, blk->right_scale.to(dtype)));
        if (blk->perp_coef != 0) {
          const auto& gq = memo<at::Tensor>(
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
      const auto& b = memo<at::Tensor>(fmt::format("units-by-sample/{}", blk->layer), [&] {
        return units.per_layer[blk->layer].permute({1, 0, 2, 3}).reshape({N, Z, -1}).contiguous();  // [N, Z, T·rows]
      });
      jd.add_(torch::bmm(b, v.reshape({N, -1, 1})).squeeze(-1));
    }
  }
  return jd.reshape(z.sizes());
}

at::Tensor BatchState::logit_jvp(const std::vector<Direction>& dirs) {
  const auto& z = lin_.logits();
  const int64_t K = static_cast<int64_t>(dirs.size());
  std::vector<int64_t> shape{K};
  for (auto s : z.sizes()) shape.push_back(s);
  auto out = torch::zeros(shape, z.options());
  const bool units = lin_.unit_grads_affordable();
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
      out[k].copy_(weights_logit_jvp(dir));
    } else if (units && blocks) {
      std::vector<const BasisBlock*> ptrs;
      for (const auto& b : dir.blocks) ptrs.push_back(&b);
      out[k].copy_(block_logit_jvp(ptrs, uses));
      if (dir.remainder.defined()) {
        generic.push_back(k);
        rows.push_back(dir.remainder);
      }
    } else {
      generic.push_back(k);
      rows.push_back(materialise(dir));
    }
  }
  if (!generic.empty()) {
    const auto idx = torch::tensor(generic, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
    out.index_add_(0, idx, lin_.jvp_many(torch::stack(rows)));
  }
  return out;
}

at::Tensor BatchState::fisher_quad(const std::vector<Direction>& dirs) {
  if (dirs.empty()) return torch::zeros({0}, torch::kDouble);
  const auto jd = logit_jvp(dirs);
  const auto hjd = loss_.hessian_vp(lin_.logits(), targets_, jd);
  return (jd * hjd).reshape({jd.size(0), -1}).sum(1).to(torch::kCPU, torch::kDouble);
}

at::Tensor BatchState::fisher_quad(const at::Tensor& D) {
  std::vector<Direction> dirs(D.size(0));
  for (int64_t k = 0; k < D.size(0); ++k) dirs[k].d = D[k];
  return fisher_quad(dirs);
}

at::Tensor near_duplicate_filter(const at::Tensor& gram, double threshold) {
  const auto C = gram.to(torch::kDouble).cpu();
  const int64_t n = C.size(0);
  const auto norms = C.diagonal().clamp_min(0).sqrt();
  const auto order = std::get<1>(norms.sort(/*stable=*/true, 0, /*descending=*/true));
  const auto* ord = order.data_ptr<int64_t>();
  const auto acc = C.accessor<double, 2>();
  const auto nrm = norms.accessor<double, 1>();
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = ord[i];
    if (!(nrm[a] > 0)) continue;
    bool duplicate = false;
    if (threshold > 0) {
      for (const int64_t b : kept) {
        if (std::abs(acc[a][b]) / (nrm[a] * nrm[b]) > threshold) {
          duplicate = true;
          break;
        }
      }
    }
    if (!duplicate) kept.push_back(a);
  }
  std::sort(kept.begin(), kept.end());
  return torch::tensor(kept, torch::kLong);
}

}  // namespace fisheval::solvers
