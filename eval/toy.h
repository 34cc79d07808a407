// The toy least-squares problem of the paper's Figure 1, solved with fisheval's own
// update methods:
//
//   f(x; θ) = θ₀ + θ₁x,   data (x, y) = (0, 0) and (1, 0),   L(θ) = ½ Σ_n (f(x_n) − y_n)²
//
// so the residuals are r₁ = θ₀ and r₂ = θ₀ + θ₁, the global minimum is θ = (0, 0) and
// each sample's zero-loss set is a line (θ₀ = 0 and θ₀ + θ₁ = 0). On this problem the
// exact natural gradient moves both residuals by the same factor (r ← (1 − η) r),
// iEF at λ = 0 equals it, and EF moves each residual by −η/r_n: a nearly fitted sample
// gets the largest step (the "inversely-scaled projection").
//
// run_toy evaluates the descent direction d(θ) of every method on a grid of θ (the
// update vector field; the update is Δθ = −η d) and trains from several starting
// points with θ ← θ − η d; write_toy_file stores both for scripts/plot_results.py.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fisheval {

struct ToyOptions {
  std::vector<std::string> methods{"sgd", "ief", "ef", "ng-dense"};
  // λ for every damped method (absolute): small enough that iEF ≈ NGD except within
  // |r_n| ≲ √λ of the minimum, large enough to bound EF's step near a fitted sample.
  double damping = 1e-3;
  double learning_rate = 0.015;  // η of the trajectories (NGD: r ← (1 − η) r per update)
  int64_t steps = 250;           // trajectory length (updates)
  int64_t grid = 17;             // grid points per axis of the vector field
  double theta0_min = -2.0, theta0_max = 2.0, theta1_min = -2.0, theta1_max = 2.0;
  std::vector<std::array<double, 2>> starts{{1.8, 1.5}, {-1.6, 1.8}, {1.5, -1.9}, {-1.8, -0.6}, {0.6, 1.9}};
};

struct ToyResult {
  ToyOptions options;
  std::array<double, 2> data_x{0.0, 1.0}, data_y{0.0, 0.0};
  std::vector<double> theta0, theta1;          // grid axes [G0], [G1]
  std::vector<double> loss;                    // [G1, G0]: row = θ₁, column = θ₀
  std::vector<double> field;                   // [M, G1, G0, 2]: d(θ) (descent direction)
  std::vector<double> field_status;            // [M, G1, G0]: solve status of each direction
  std::vector<double> trajectory;              // [M, S, T+1, 2]: θ after each update
  std::vector<double> trajectory_loss;         // [M, S, T+1]
};

// The toy loss L(θ) = ½ θ₀² + ½ (θ₀ + θ₁)².
double toy_loss(double theta0, double theta1);

// The direction of `method` (any name make_method knows) at θ with damping λ,
// computed by the method itself on the toy model: {d₀, d₁}.
std::array<double, 2> toy_direction(const std::string& method, double theta0, double theta1, double damping);

ToyResult run_toy(const ToyOptions& options);

// Writes the result as HDF5 (atomically): root attribute fisheval_kind = "toy".
void write_toy_file(const std::string& path, const ToyResult& result, const std::map<std::string, std::string>& metadata);

}  // namespace fisheval
