#include "checkpoints/native_model.h"

#include <fmt/format.h>

#include "checkpoints/error.h"

namespace fisheval {

std::unique_ptr<Model> load_native_model(const std::string& path) {
  throw InputError(fmt::format("'{}' is not a TorchScript archive (zip file)", path));
}

}  // namespace fisheval
