// The toy problem of the paper's Figure 1 (eval/toy.h): f(x) = θ₀ + θ₁x, data (0, 0) and
// (1, 0), squared error. fisheval's own methods against closed forms written out by hand
// in float64 (no torch): residuals r = (θ₀, θ₀ + θ₁), logit Jacobian J_z = [[1, 0], [1, 1]],
// per-sample gradients ∇l_n = r_n J_z[n], Fisher F = J_zᵀJ_z, s_n = r_n².
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "eval/toy.h"

namespace fisheval::test {
namespace {

using V2 = std::array<double, 2>;
using M2 = std::array<std::array<double, 2>, 2>;

V2 solve2(const M2& A, const V2& b) {
  const double det = A[0][0] * A[1][1] - A[0][1] * A[1][0];
  return {(A[1][1] * b[0] - A[0][1] * b[1]) / det, (A[0][0] * b[1] - A[1][0] * b[0]) / det};
}

struct Toy {
  V2 r;
  M2 J;  // rows: per-sample gradients ∇θ l_n = r_n (1, x_n)
  V2 g;
  explicit Toy(double t0, double t1) : r{t0, t0 + t1} {
    J = {{{r[0] * 1.0, r[0] * 0.0}, {r[1] * 1.0, r[1] * 1.0}}};
    g = {J[0][0] + J[1][0], J[0][1] + J[1][1]};
  }
  // (F + λI)⁻¹ g with F = J_zᵀ J_z = [[2, 1], [1, 1]].
  V2 ng(double lambda) const { return solve2({{{2 + lambda, 1}, {1, 1 + lambda}}}, g); }
  // EF: (JᵀJ + λI)⁻¹ g.
  V2 ef(double lambda) const {
    M2 A{};
    for (int a = 0; a < 2; ++a) {
      for (int b = 0; b < 2; ++b) A[a][b] = J[0][a] * J[0][b] + J[1][a] * J[1][b] + (a == b ? lambda : 0.0);
    }
    return solve2(A, g);
  }
  // iEF: Jᵀ (JJᵀ + λI)⁻¹ s, s_n = r_n².
  V2 ief(double lambda) const {
    M2 C{};
    for (int n = 0; n < 2; ++n) {
      for (int m = 0; m < 2; ++m) C[n][m] = J[n][0] * J[m][0] + J[n][1] * J[m][1] + (n == m ? lambda : 0.0);
    }
    const V2 y = solve2(C, {r[0] * r[0], r[1] * r[1]});
    return {J[0][0] * y[0] + J[1][0] * y[1], J[0][1] * y[0] + J[1][1] * y[1]};
  }
};

double err(const V2& a, const V2& b) {
  return std::hypot(a[0] - b[0], a[1] - b[1]) / std::max(std::hypot(b[0], b[1]), 1e-300);
}

const V2 kPoints[] = {{0.7, -1.2}, {-1.5, 0.4}, {0.05, 1.9}, {1.3, -1.25}, {-0.3, -0.2}};

TEST(Toy, DirectionsMatchClosedForms) {
  for (const auto& p : kPoints) {
    const Toy t(p[0], p[1]);
    for (double lambda : {0.0, 1e-3, 0.5}) {
      EXPECT_LT(err(toy_direction("sgd", p[0], p[1], lambda), t.g), 1e-12);
      EXPECT_LT(err(toy_direction("ng-dense", p[0], p[1], lambda), t.ng(lambda)), 1e-10) << lambda;
      EXPECT_LT(err(toy_direction("ef", p[0], p[1], lambda), t.ef(lambda)), 1e-9) << lambda;
      EXPECT_LT(err(toy_direction("ief", p[0], p[1], lambda), t.ief(lambda)), 1e-9) << lambda;
    }
  }
}

// The paper's point: at λ = 0, iEF is the natural gradient; EF reduces every sample's loss
// by the same amount (∇l_nᵀ d = 1: inversely scaled in r_n), iEF by s_n = r_n².
TEST(Toy, IefIsTheNaturalGradientAndEfIsInverselyScaled) {
  for (const auto& p : kPoints) {
    const Toy t(p[0], p[1]);
    const auto ief = toy_direction("ief", p[0], p[1], 0.0);
    EXPECT_LT(err(ief, t.ng(0.0)), 1e-9);
    const auto ef = toy_direction("ef", p[0], p[1], 0.0);
    for (int n = 0; n < 2; ++n) {
      EXPECT_NEAR(t.J[n][0] * ef[0] + t.J[n][1] * ef[1], 1.0, 1e-9);
      EXPECT_NEAR(t.J[n][0] * ief[0] + t.J[n][1] * ief[1], t.r[n] * t.r[n], 1e-9 * (1 + t.r[n] * t.r[n]));
    }
  }
}

TEST(Toy, FieldsLossAndTrajectoriesFollowTheirDefinitions) {
  ToyOptions o;
  o.damping = 0.0;
  o.grid = 5;
  o.steps = 8;
  o.learning_rate = 0.05;                 // small enough that no EF residual crosses 0 in 8 steps
  o.starts = {{1.5, 0.9}, {-1.3, -0.5}};
  const auto r = run_toy(o);
  const int64_t G = 5, M = 4, S = 2, T = 8;
  ASSERT_EQ(r.loss.size(), size_t(G * G));
  ASSERT_EQ(r.field.size(), size_t(M * G * G * 2));
  ASSERT_EQ(r.trajectory.size(), size_t(M * S * (T + 1) * 2));
  for (int64_t i = 0; i < G; ++i) {
    for (int64_t j = 0; j < G; ++j) {
      const double t0 = r.theta0[j], t1 = r.theta1[i];
      EXPECT_NEAR(r.loss[i * G + j], 0.5 * t0 * t0 + 0.5 * (t0 + t1) * (t0 + t1), 1e-14);
      const Toy t(t0, t1);
      const auto at = [&](int64_t m) {
        const int64_t k = ((m * G + i) * G + j) * 2;
        return V2{r.field[k], r.field[k + 1]};
      };
      EXPECT_LT(err(at(0), t.g), 1e-12);  // methods: sgd, ief, ef, ng-dense
      if (t.r[0] != 0 && t.r[1] != 0) {
        EXPECT_LT(err(at(1), t.ng(0.0)), 1e-9);
        EXPECT_LT(err(at(3), t.ng(0.0)), 1e-9);
        EXPECT_LT(err(at(2), t.ef(0.0)), 1e-9);
      }
    }
  }
  // Trajectories in residual space: NGD (and iEF) r ← (1 − η) r, so θ ← (1 − η) θ (J_z is
  // invertible); EF r_n ← r_n − η / r_n; SGD θ ← θ − η F θ.
  for (int64_t s = 0; s < S; ++s) {
    V2 sgd = o.starts[s], ng = o.starts[s], ef_r = {o.starts[s][0], o.starts[s][0] + o.starts[s][1]};
    for (int64_t t = 0; t <= T; ++t) {
      const auto traj = [&](int64_t m) {
        const int64_t at = ((m * S + s) * (T + 1) + t) * 2;
        return V2{r.trajectory[at], r.trajectory[at + 1]};
      };
      EXPECT_LT(err(traj(0), sgd), 1e-12) << t;
      EXPECT_LT(err(traj(1), ng), 1e-9) << t;
      EXPECT_LT(err(traj(3), ng), 1e-9) << t;
      const auto ef = traj(2);
      EXPECT_LT(err({ef[0], ef[0] + ef[1]}, ef_r), 1e-8) << t;
      EXPECT_NEAR(r.trajectory_loss[(2 * S + s) * (T + 1) + t], 0.5 * (ef_r[0] * ef_r[0] + ef_r[1] * ef_r[1]),
                  1e-8 * (1 + ef_r[0] * ef_r[0] + ef_r[1] * ef_r[1]));
      const V2 Fs{2 * sgd[0] + sgd[1], sgd[0] + sgd[1]};
      sgd = {sgd[0] - o.learning_rate * Fs[0], sgd[1] - o.learning_rate * Fs[1]};
      ng = {(1 - o.learning_rate) * ng[0], (1 - o.learning_rate) * ng[1]};
      ef_r = {ef_r[0] - o.learning_rate / ef_r[0], ef_r[1] - o.learning_rate / ef_r[1]};
    }
  }
}

TEST(Toy, RefusesBadOptions) {
  ToyOptions o;
  o.learning_rate = -1;
  EXPECT_ANY_THROW(run_toy(o));
  o = ToyOptions{};
  o.grid = 1;
  EXPECT_ANY_THROW(run_toy(o));
  o = ToyOptions{};
  o.methods = {"no-such-method"};
  EXPECT_ANY_THROW(run_toy(o));
}

}  // namespace
}  // namespace fisheval::test
