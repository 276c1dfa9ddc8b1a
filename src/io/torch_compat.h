// The one place where LibTorch 1.13 (Debian, CPU) and 2.x (CUDA) APIs differ.
#pragma once
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cstdlib>
#include <string>

namespace c3::compat {

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;
// SDPA's enable_gqa (flash attention reading one k/v head per group of query heads): 2.5+.
#define C3_TORCH_SDPA_GQA (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5))
constexpr bool kSdpaGqa = C3_TORCH_SDPA_GQA;

// The index of the allocator's all-pools figure in DeviceStats' arrays: StatType::AGGREGATE,
// whose namespace differs between 1.13 (CUDACachingAllocator) and 2.x (CachingDeviceAllocator).
constexpr size_t kAllPoolsStat = 0;

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

// Grouped-query attention without copying k/v per query head: q [B,H,T,D], k/v [B,Hkv,S,D]
// with H a multiple of Hkv. LibTorch 2.5+ lets flash attention read each k/v head for its group
// of query heads (enable_gqa); other backends would repeat k/v internally or fall back to the
// math path, so this returns an undefined tensor unless flash takes the call (the caller then
// repeats k/v itself). A trace of c3 train (medium, 16 / 4 heads) showed the repeat's copies and
// its backward's sums at ~3% of the step. C3_SDPA_GQA=0 turns it off.
inline at::Tensor sdpa_grouped_flash(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& mask, bool is_causal) {
#if C3_TORCH_SDPA_GQA
  static const bool on = [] {
    const char* e = std::getenv("C3_SDPA_GQA");
    return !(e && std::string(e) == "0");
  }();
  if (!on || !q.is_cuda() || q.size(1) == k.size(1)) return {};
  const c10::optional<at::Tensor> m =
      mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
  const bool causal = is_causal && !mask.defined();
  constexpr int64_t kFlash = 1;  // sdp::SDPBackend::flash_attention
  if (at::_fused_sdp_choice(q, k, v, m, 0.0, causal, c10::nullopt, /*enable_gqa=*/true) != kFlash)
    return {};
  return at::scaled_dot_product_attention(q, k, v, m, 0.0, causal, c10::nullopt,
                                          /*enable_gqa=*/true);
#else
  (void)q, (void)k, (void)v, (void)mask, (void)is_causal;
  return {};
#endif
}

// LibTorch 2.5+ prefers cuDNN's attention on Hopper. cuDNN builds an execution plan on the host
// for every new shape: a Kineto trace of c3 train (H200, hidden 1024, variable-length batches)
// showed 2.4 ms of host time per forward call and 2.8 ms per backward, which left the GPU idle
// 70% of each step. Flash / memory-efficient attention have no per-shape setup. Called by the
// trainer and the CLI at start; C3_SDPA_CUDNN=1 keeps cuDNN.
inline void prefer_flash_attention() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
  const char* keep = std::getenv("C3_SDPA_CUDNN");
  if (!(keep && std::string(keep) == "1")) at::globalContext().setSDPUseCuDNN(false);
#endif
}

inline bool autocast_enabled_cuda() {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

// The dtype CUDA autocast casts matrix products to (bf16 under AutocastGuard).
inline at::ScalarType autocast_dtype_cuda() {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

// Turns autocast's weight-cast cache off for a scope. A CUDA graph captured while the cache is on
// reads the cached bf16 copies of the weights, which are freed when the autocast region ends:
// replayed in a later region, it would read stale (or freed) memory. With the cache off, the
// casts are captured as kernels that read the live fp32 weights.
class AutocastCacheOff {
 public:
  AutocastCacheOff() : prev_(at::autocast::is_autocast_cache_enabled()) {
    at::autocast::set_autocast_cache_enabled(false);
  }
  ~AutocastCacheOff() { at::autocast::set_autocast_cache_enabled(prev_); }
  AutocastCacheOff(const AutocastCacheOff&) = delete;
  AutocastCacheOff& operator=(const AutocastCacheOff&) = delete;

 private:
  bool prev_;
};

// bf16 autocast on CUDA for a scope (fp32 master weights, bf16 matmuls). A no-op elsewhere.
class AutocastGuard {
 public:
  AutocastGuard(bool enabled, at::Device device) : enabled_(enabled && device.is_cuda()) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR >= 2
    prev_ = at::autocast::is_autocast_enabled(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
    prev_ = at::autocast::is_enabled();
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR >= 2
    at::autocast::set_autocast_enabled(at::kCUDA, prev_);
#else
    at::autocast::set_enabled(prev_);
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
  bool prev_ = false;
};

// AdamW over whole lists in one fused CUDA kernel (LibTorch >= 2.1). Grads are divided by
// `grad_scale` first when it is defined (used to clip without a host sync). Returns false where
// the kernel does not exist (1.13, CPU tensors); the caller then uses its multi-tensor path.
inline bool fused_adamw_(at::TensorList params, at::TensorList grads, at::TensorList exp_avg,
                         at::TensorList exp_avg_sq, at::TensorList steps, double lr, double beta1,
                         double beta2, double weight_decay, double eps, const at::Tensor& grad_scale) {
#if TORCH_VERSION_MAJOR >= 2
  if (params.empty() || !params[0].is_cuda()) return false;
  at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, {}, steps, lr, beta1, beta2, weight_decay,
                    eps, /*amsgrad=*/false, /*maximize=*/false,
                    grad_scale.defined() ? c10::optional<at::Tensor>(grad_scale) : c10::nullopt,
                    c10::nullopt);
  return true;
#else
  (void)params, (void)grads, (void)exp_avg, (void)exp_avg_sq, (void)steps, (void)lr, (void)beta1;
  (void)beta2, (void)weight_decay, (void)eps, (void)grad_scale;
  return false;
#endif
}

}  // namespace c3::compat
