#include <torch/torch.h>

#include "checkpoints/dataset.h"

namespace fisheval {

Batch Batch::to(c10::Device device, c10::ScalarType float_dtype) const {
  Batch out;
  out.inputs = inputs.to(device, float_dtype);
  out.targets = targets.is_floating_point() ? targets.to(device, float_dtype) : targets.to(device);
  out.indices = indices;
  return out;
}

}  // namespace fisheval
