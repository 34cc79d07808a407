// Scoring a Direction (solvers/direction.h) on one batch, from whichever form it was given
// in, using the batch's cached statistics (solvers/batch_state.h): d itself, dᵀg and ‖d‖²,
// J_z d, and dᵀFd — from the Gram matrices or the block bases when d is not formed.
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "solvers/batch_state.h"
#include "solvers/direction.h"

namespace fisheval::solvers {

// The direction as a P-sized vector, from whichever form it was given in.
at::Tensor materialise(BatchState& state, const Direction& dir);
// The same direction with d formed and the other forms dropped (what direction()
// returns for a method whose weights_only() gives weights or blocks).
Direction materialised(BatchState& state, Direction dir);
// dᵀg and ‖d‖², from the Gram matrices or the block bases when d is not formed.
std::pair<double, double> products(BatchState& state, const Direction& dir);
// J_z d for each direction, [K, *z]: sample-space weights and basis blocks from the
// output-unit taps (no pass through the network), other directions by jvp_many.
at::Tensor logit_jvp(BatchState& state, const std::vector<Direction>& dirs);
// dᵀFd = Σ_n (J_z d)_nᵀ H_n (J_z d)_n for each direction, [K] float64 (mvp::Fisher::quad_of_jvp).
at::Tensor fisher_quad(BatchState& state, const std::vector<Direction>& dirs);
// The same for the rows of D [K, P].
at::Tensor fisher_quad(BatchState& state, const at::Tensor& D);
// Ĵ g [KN], float64: (Ĵ g)_{kn} = r̂_knᵀ (J_{z_n} g), memoised per batch.
const at::Tensor& sampled_times_grad(BatchState& state);

}  // namespace fisheval::solvers
