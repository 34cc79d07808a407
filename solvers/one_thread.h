// Small work on one thread. LibTorch splits an operation over its intra-op threads, and
// for small matrices waking them costs more than the work: on the LoRA ViT of
// docs/BENCHMARKS.md (64×64 factors, 10 output units) the methods of a unit ran 15 %
// faster on one thread than on two, and a 64×64 eigendecomposition three times faster.
#pragma once
#include <ATen/Parallel.h>

#include <cstdint>

namespace fisheval::solvers {

// The largest matrix side that counts as small (curvature factors, layer blocks).
inline constexpr int64_t kSmallMatrix = 128;

// Sets LibTorch's intra-op threads to one for its lifetime (when `on` and more are set),
// then back to what they were.
class OneThread {
 public:
  explicit OneThread(bool on) : threads_(on ? at::get_num_threads() : 1) {
    if (threads_ > 1) at::set_num_threads(1);
  }
  ~OneThread() {
    if (threads_ > 1) at::set_num_threads(threads_);
  }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int threads_;
};

}  // namespace fisheval::solvers
