// The one place where LibTorch 1.13 (Debian, CPU) and 2.x (CUDA) APIs differ.
#pragma once
#include <ATen/ATen.h>
#include <torch/version.h>

namespace c3::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

// Scaled dot-product attention. q [B,H,T,D], k/v [B,H,S,D]; mask: bool [B,1,T,S] (true = attend)
// or undefined with is_causal. LibTorch 2.x dispatches to flash / memory-efficient kernels; 1.13
// computes softmax(q k^T / sqrt(D) + bias) v in the input dtype with an fp32 softmax.
inline at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const at::Tensor& mask, bool is_causal) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask)
                                                                  : c10::nullopt,
                                          0.0, is_causal && !mask.defined());
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).mul_(scale).to(at::kFloat);
  if (mask.defined()) {
    scores.masked_fill_(mask.logical_not(), -std::numeric_limits<float>::infinity());
  } else if (is_causal) {
    const int64_t T = q.size(-2), S = k.size(-2);
    at::Tensor causal = at::ones({T, S}, q.options().dtype(at::kBool)).tril(S - T);
    scores.masked_fill_(causal.logical_not(), -std::numeric_limits<float>::infinity());
  }
  return at::matmul(at::softmax(scores, -1).to(q.scalar_type()), v);
#endif
}

inline bool cuda_available() {
#if defined(C3_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

}  // namespace c3::compat
