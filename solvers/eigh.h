// The symmetric eigendecomposition behind the curvature factors (solvers/kronecker.h) and the
// sample-space Gram solves (solvers/gram_solve.h).
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>

namespace fisheval::solvers {

// (eigenvalues ascending, orthonormal eigenvectors as columns) of S = (M + Mᵀ)/2, batched
// over leading axes. On the CPU, matrices of at most kSmallMatrix rows are decomposed on
// one thread (solvers/one_thread.h): LAPACK splits an eigendecomposition into many small
// BLAS calls, each of which would wake the other threads.
std::tuple<at::Tensor, at::Tensor> symmetric_eigh(const at::Tensor& M);

}  // namespace fisheval::solvers
