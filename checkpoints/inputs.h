// The inputs of one forward pass: one tensor per named argument of the model's forward
// (Hugging Face models take input_ids, attention_mask, pixel_values, ...), each with the
// batch on its first axis. A model with one unnamed input gets one tensor named "inputs",
// passed positionally. Data files hold the same (docs/FORMAT.md).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

namespace fisheval {

class Inputs {
 public:
  static constexpr const char* kSingle = "inputs";

  Inputs() = default;
  // One input named "inputs" (implicit: a tensor is the common case of a single input).
  Inputs(at::Tensor single);  // NOLINT(google-explicit-constructor)
  // Several named inputs, all with the same first dimension (InputError otherwise).
  Inputs(std::vector<std::string> names, std::vector<at::Tensor> values);

  const std::vector<std::string>& names() const { return names_; }
  const std::vector<at::Tensor>& values() const { return values_; }
  size_t count() const { return values_.size(); }
  bool defined() const { return !values_.empty(); }
  // The one input "inputs" (positional).
  bool is_single() const { return names_.size() == 1 && names_[0] == kSingle; }
  // The input of this name, or the first one for "" (throws InputError if absent).
  const at::Tensor& get(const std::string& name = "") const;

  // N, the shared first dimension. size(0) reads like a tensor's; other axes are refused.
  int64_t batch_size() const;
  int64_t size(int64_t dim) const;

  // Samples [start, start + length) / the samples `index` of every input.
  Inputs narrow(int64_t dim, int64_t start, int64_t length) const;
  Inputs index_select(int64_t dim, const at::Tensor& index) const;
  // To a device; floating-point inputs also to `float_dtype` (token ids and masks keep theirs).
  Inputs to(c10::Device device, c10::ScalarType float_dtype) const;
  Inputs to(c10::Device device) const;

  // "input_ids 32x128 Long, attention_mask 32x128 Long" (for messages).
  std::string describe() const;

 private:
  std::vector<std::string> names_;
  std::vector<at::Tensor> values_;
};

}  // namespace fisheval
