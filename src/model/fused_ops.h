// Element-wise steps of the Qwen2 layer that a GPU would rather run as one kernel each.
//
// Each function has a reference path in plain ATen ops (fused::reference), in HF's op order and
// with HF's roundings, so CPU results match HF bit for bit. CUDA builds with a CUDA compiler
// (C3_HAVE_CUDA_KERNELS) route CUDA tensors to one hand-written kernel per call that rounds at
// the same points; RMSNorm's fp32 sum of squares may add in another order. C3_FUSED_KERNELS=0
// turns the kernels off. With autograd recording (training), RMSNorm, RoPE and SiLU-and-multiply
// run as autograd nodes with kernels both ways (rms_norm_autograd.h, rotary_autograd.h,
// silu_mul_autograd.h) where the kernels are built, unless C3_TRAIN_KERNELS=0; elsewhere the
// reference ops run under autograd.
#pragma once
#include <ATen/ATen.h>

#include <utility>

namespace c3::model::fused {

// HF Qwen2RMSNorm: weight * (x32 * rsqrt(mean(x32^2) + eps)).to(x.dtype). [..., C] -> [..., C].
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// SwiGLU's middle: gate_up [..., 2I] holds gate then up; returns silu(gate) * up [..., I],
// each op rounded to the input dtype as HF's two separate ops round.
at::Tensor silu_mul(const at::Tensor& gate_up);

// RoPE on x [B, H, T, D] with fp32 tables cos/sin [B, T, D]: x * cos + rotate_half(x) * sin,
// cos/sin cast to x's dtype first (HF).
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// h = x + delta, then RMSNorm(h): the residual add and the next layer norm in one pass.
// Returns {h, normed}; an undefined delta means h = x. While training on CUDA (and delta defined)
// both run as one autograd node (add_rms_norm_autograd.h).
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& delta,
                                               const at::Tensor& weight, double eps);
// The same for a norm that only linear layers read (the two inside each decoder layer): while
// training on CUDA under autocast, normed comes back already in autocast's dtype, the cast those
// layers make anyway (the same values; one kernel fewer each way).
std::pair<at::Tensor, at::Tensor> add_rms_norm_before_linear(const at::Tensor& x,
                                                             const at::Tensor& delta,
                                                             const at::Tensor& weight, double eps);

// y = x w^T (+ b) by the decode GEMV kernel where it beats cuBLAS: one row (a batch-1 decode
// step), bf16 / fp16, CUDA, no autograd. Undefined elsewhere (the caller then runs at::linear).
// Measured on an H200 (bench/cuda/decode_kernels.cpp): 1.1-2.5x cuBLAS at one row, slower at
// 4 and 8 rows, where cuBLAS's tensor-core kernels win.
at::Tensor small_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

// The GEMV kernels themselves, for up to 8 rows (tests and benchmarks); undefined where they do
// not apply. gemv_silu_mul takes stacked gate/up weights [2I, K], as linear_silu_mul.
at::Tensor gemv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
at::Tensor gemv_silu_mul(const at::Tensor& x, const at::Tensor& gate_up);

// SwiGLU's first half with stacked weights gate_up [2I, C]: silu(x gate^T) * (x up^T). One row
// on CUDA takes one GEMV kernel with the SiLU-and-multiply in its epilogue.
at::Tensor linear_silu_mul(const at::Tensor& x, const at::Tensor& gate_up);

// Attention of one static-cache decode step (KVCache::static_mode) in one kernel: RoPE on q and
// the new k, the cache write at `slot`, scores over the valid slots up to `slot`, softmax, and
// the values. qkv [B, 1, (H + 2 Hkv) D] straight from the fused projection. Returns
// [B, 1, H D], or undefined where the kernel does not apply (the caller runs the ATen ops).
at::Tensor decode_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
                            at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& slot,
                            const at::Tensor& key_valid, int64_t S, int64_t H, int64_t D);

// Whether the hand-written kernels are compiled in and switched on (C3_FUSED_KERNELS != 0).
bool kernels_enabled();
// Switches them on or off for this process (tests compare both paths).
void set_kernels_enabled(bool on);
// Whether training (autograd recording) takes a kernel's autograd node: the kernels enabled, and
// the op chosen by C3_TRAIN_KERNELS: unset or "1" = the default set, "0" = none, "all", or a
// comma list of rms_norm, rotary, silu_mul, add_rms_norm, cross_entropy (to find a wrong kernel
// by leaving the others on). The default set is all but cross_entropy, whose kernel (one pass
// over each chunk's logits for loss and gradient) has not yet been checked on a GPU.
enum class TrainKernel {
  kRmsNorm = 1,
  kRotary = 2,
  kSiluMul = 4,
  kAddRmsNorm = 8,
  kCrossEntropy = 16
};
constexpr int kAllTrainKernels = 31;
constexpr int kDefaultTrainKernels =
    kAllTrainKernels & ~static_cast<int>(TrainKernel::kCrossEntropy);
bool train_kernel_enabled(TrainKernel k);
// The chosen ops as a mask of TrainKernel bits, and a new choice for this process (tests compare
// the paths).
int train_kernels();
void set_train_kernels(int mask);
// The ops of a C3_TRAIN_KERNELS value as a mask of TrainKernel bits; fails naming a bad entry.
int parse_train_kernels(const char* value);

namespace reference {
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor silu_mul(const at::Tensor& gate_up);
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& delta,
                                               const at::Tensor& weight, double eps);
}  // namespace reference

}  // namespace c3::model::fused
