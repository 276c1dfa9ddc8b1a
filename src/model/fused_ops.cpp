// Reference paths of the fused element-wise steps, and the dispatch to the CUDA kernels.
#include "model/fused_ops.h"

#include "model/linear.h"
#include "util/error.h"

#include <ATen/core/grad_mode.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef C3_HAVE_CUDA_KERNELS
#include "io/torch_compat.h"
#include "model/add_rms_norm_autograd.h"
#include "model/cuda/backward_kernels.h"
#include "model/cuda/fused_kernels.h"
#include "model/rms_norm_autograd.h"
#include "model/rotary_autograd.h"
#include "model/silu_mul_autograd.h"
#endif

namespace c3::model::fused {

namespace {
// On unless the environment variable is "0".
bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::strcmp(v, "0") == 0);
}
std::atomic<bool>& kernels_switch() {
  static std::atomic<bool> on{env_on("C3_FUSED_KERNELS")};
  return on;
}
std::atomic<int>& train_kernels_mask() {
  static std::atomic<int> mask{parse_train_kernels(std::getenv("C3_TRAIN_KERNELS"))};
  return mask;
}
}  // namespace

bool kernels_enabled() {
#ifdef C3_HAVE_CUDA_KERNELS
  return kernels_switch().load(std::memory_order_relaxed);
#else
  return false;
#endif
}

void set_kernels_enabled(bool on) { kernels_switch().store(on, std::memory_order_relaxed); }

int parse_train_kernels(const char* value) {
  if (!value || std::strcmp(value, "1") == 0) return kDefaultTrainKernels;
  if (std::strcmp(value, "0") == 0) return 0;
  if (std::strcmp(value, "all") == 0) return kAllTrainKernels;
  int mask = 0;
  std::string list(value);
  size_t b = 0;
  while (b <= list.size()) {
    size_t e = list.find(',', b);
    if (e == std::string::npos) e = list.size();
    const std::string name = list.substr(b, e - b);
    if (name == "rms_norm") {
      mask |= static_cast<int>(TrainKernel::kRmsNorm);
    } else if (name == "rotary") {
      mask |= static_cast<int>(TrainKernel::kRotary);
    } else if (name == "silu_mul") {
      mask |= static_cast<int>(TrainKernel::kSiluMul);
    } else if (name == "add_rms_norm") {
      mask |= static_cast<int>(TrainKernel::kAddRmsNorm);
    } else if (name == "cross_entropy") {
      mask |= static_cast<int>(TrainKernel::kCrossEntropy);
    } else if (!name.empty()) {
      fail("C3_TRAIN_KERNELS='{}': unknown op '{}'; use 0, 1, all or a comma list of rms_norm, "
           "rotary, silu_mul, add_rms_norm, cross_entropy", list, name);
    }
    b = e + 1;
  }
  return mask;
}

bool train_kernel_enabled(TrainKernel k) {
  return kernels_enabled() &&
         (train_kernels_mask().load(std::memory_order_relaxed) & static_cast<int>(k)) != 0;
}

int train_kernels() { return train_kernels_mask().load(std::memory_order_relaxed); }

void set_train_kernels(int mask) { train_kernels_mask().store(mask, std::memory_order_relaxed); }

#ifdef C3_HAVE_CUDA_KERNELS
namespace {
// A kernel may run: CUDA input, kernels on, and no autograd graph to record (no backward).
bool use_kernel(const at::Tensor& x, const at::Tensor& param = at::Tensor()) {
  if (!x.is_cuda() || !kernels_enabled()) return false;
  if (at::GradMode::is_enabled() && (x.requires_grad() || (param.defined() && param.requires_grad())))
    return false;
  return true;
}
// A kernel's autograd node may run: CUDA input, training kernels on, and autograd recording
// (x or the parameter needs a gradient).
bool use_training_kernel(TrainKernel k, const at::Tensor& x, const at::Tensor& param = at::Tensor()) {
  if (!x.is_cuda() || !train_kernel_enabled(k) || !at::GradMode::is_enabled()) return false;
  return x.requires_grad() || (param.defined() && param.requires_grad());
}
// The decode-step kernels: inference only (autograd off), CUDA, kernels on.
bool inference_kernel(const at::Tensor& x) {
  return !at::GradMode::is_enabled() && x.is_cuda() && kernels_enabled();
}
}  // namespace
#endif

namespace reference {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // The variance is taken in fp32 even for bf16 activations, as HF does.
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  const at::Tensor normed = x32 * at::rsqrt(variance + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
  // A split, not two narrows: under autograd its backward is one cat, not two zero-filled
  // [..., 2I] tensors added together. The values are the same.
  const int64_t I = gate_up.size(-1) / 2;
  const std::vector<at::Tensor> gu = gate_up.split_with_sizes({I, I}, -1);
  return at::silu(gu[0]) * gu[1];
}

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos_t, const at::Tensor& sin_t) {
  const at::Tensor cos = cos_t.to(x.scalar_type()).unsqueeze(1);  // [B, 1, T, D]
  const at::Tensor sin = sin_t.to(x.scalar_type()).unsqueeze(1);  // [B, 1, T, D]
  const int64_t half = x.size(-1) / 2;
  const at::Tensor x1 = x.slice(-1, 0, half), x2 = x.slice(-1, half);
  const at::Tensor rotated = at::cat({-x2, x1}, -1);  // rotate_half: [-x2, x1]
  return x * cos + rotated * sin;
}

std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& delta,
                                               const at::Tensor& weight, double eps) {
  const at::Tensor h = delta.defined() ? x + delta : x;
  return {h, rms_norm(h, weight, eps)};
}

}  // namespace reference

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (use_kernel(x, weight) && cuda::rms_norm_supported(x, weight)) return cuda::rms_norm(x, weight, eps);
  if (use_training_kernel(TrainKernel::kRmsNorm, x, weight) && cuda::rms_norm_backward_supported(x, weight))
    return rms_norm_autograd(x, weight, eps);
#endif
  return reference::rms_norm(x, weight, eps);
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (use_kernel(gate_up) && cuda::silu_mul_supported(gate_up)) return cuda::silu_mul(gate_up);
  if (use_training_kernel(TrainKernel::kSiluMul, gate_up) && cuda::silu_mul_backward_supported(gate_up))
    return silu_mul_autograd(gate_up);
#endif
  return reference::silu_mul(gate_up);
}

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (use_kernel(x) && cuda::rotary_supported(x, cos, sin)) return cuda::rotary(x, cos, sin);
  if (use_training_kernel(TrainKernel::kRotary, x) && cuda::rotary_backward_supported(x, cos, sin))
    return rotary_autograd(x, cos, sin);
#endif
  return reference::rotary(x, cos, sin);
}

namespace {
// add_rms_norm; `before_linear`: normed may come back in autocast's dtype while training.
std::pair<at::Tensor, at::Tensor> add_rms_norm_as(const at::Tensor& x, const at::Tensor& delta,
                                                  const at::Tensor& weight, double eps,
                                                  bool before_linear) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (use_kernel(x, weight) && (!delta.defined() || use_kernel(delta)) &&
      cuda::add_rms_norm_supported(x, delta, weight))
    return cuda::add_rms_norm(x, delta, weight, eps);
  if (delta.defined() && use_training_kernel(TrainKernel::kAddRmsNorm, x, weight)) {
    const at::ScalarType y_dtype = before_linear && compat::autocast_enabled_cuda()
                                       ? compat::autocast_dtype_cuda()
                                       : x.scalar_type();
    if (cuda::add_rms_norm_train_supported(x, delta, weight, y_dtype))
      return add_rms_norm_autograd(x, delta, weight, eps, y_dtype);
  }
#else
  (void)before_linear;
#endif
  const at::Tensor h = delta.defined() ? x + delta : x;
  return {h, rms_norm(h, weight, eps)};
}
}  // namespace

std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& delta,
                                               const at::Tensor& weight, double eps) {
  return add_rms_norm_as(x, delta, weight, eps, /*before_linear=*/false);
}

std::pair<at::Tensor, at::Tensor> add_rms_norm_before_linear(const at::Tensor& x,
                                                             const at::Tensor& delta,
                                                             const at::Tensor& weight, double eps) {
  return add_rms_norm_as(x, delta, weight, eps, /*before_linear=*/true);
}

namespace {
// Rows up to which the GEMV beats cuBLAS (see fused_ops.h).
constexpr int64_t kGemvRowsWorthIt = 1;

int64_t rows_of_input(const at::Tensor& x) {
  return x.dim() >= 1 && x.size(-1) > 0 ? x.numel() / x.size(-1) : 0;
}
}  // namespace

at::Tensor gemv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (inference_kernel(x) && cuda::gemv_supported(x, w, b))
    return cuda::gemv(x, w, b);
#else
  (void)x, (void)w, (void)b;
#endif
  return at::Tensor();
}

at::Tensor gemv_silu_mul(const at::Tensor& x, const at::Tensor& gate_up) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (inference_kernel(x) && cuda::gemv_silu_mul_supported(x, gate_up))
    return cuda::gemv_silu_mul(x, gate_up);
#else
  (void)x, (void)gate_up;
#endif
  return at::Tensor();
}

at::Tensor small_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (rows_of_input(x) > kGemvRowsWorthIt) return at::Tensor();
  return gemv(x, w, b);
}

at::Tensor linear_silu_mul(const at::Tensor& x, const at::Tensor& gate_up) {
  if (rows_of_input(x) <= kGemvRowsWorthIt) {
    const at::Tensor y = gemv_silu_mul(x, gate_up);
    if (y.defined()) return y;
  }
  return silu_mul(apply_linear(x, gate_up));
}

at::Tensor decode_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
                            at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& slot,
                            const at::Tensor& key_valid, int64_t S, int64_t H, int64_t D) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (inference_kernel(qkv) &&
      cuda::decode_attention_supported(qkv, cos, k_cache, v_cache, key_valid, S, H, D))
    return cuda::decode_attention(qkv, cos, sin, k_cache, v_cache, slot, key_valid, S, H, D);
#else
  (void)qkv, (void)cos, (void)sin, (void)k_cache, (void)v_cache, (void)slot, (void)key_valid,
      (void)S, (void)H, (void)D;
#endif
  return at::Tensor();
}

}  // namespace c3::model::fused
