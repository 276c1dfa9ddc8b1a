// Tensor helpers that several test files share (see test_util.h for why they live here).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace c3::test {

// The values of an integer tensor, as int64.
inline std::vector<int64_t> ids_of(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Largest absolute difference, compared in fp32 on the CPU.
inline double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kFloat) - b.to(at::kCPU, at::kFloat)).abs().max().item<double>();
}

}  // namespace c3::test
