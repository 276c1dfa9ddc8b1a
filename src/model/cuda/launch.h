// Plain launchers of the fused kernels (fused_kernels.cu), free of torch headers so that nvcc
// never compiles ATen. Each returns the launch's cudaError_t.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace c3::model::fused::cuda {

enum class DType { kFloat, kBFloat16, kHalf };

// x, out [N, C] contiguous; w [C].
cudaError_t launch_rms_norm(DType t, const void* x, const void* w, void* out, int64_t N,
                            int64_t C, float eps, cudaStream_t stream);
// gate_up [N, 2I] contiguous -> out [N, I].
cudaError_t launch_silu_mul(DType t, const void* gate_up, void* out, int64_t N, int64_t I,
                            cudaStream_t stream);
// x [B, H, S, D] with strides sx[4] -> out [B, H, S, D] with strides (so[0], so[1], so[2], 1);
// cos/sin fp32 [B, S, D] with strides (cb, ct, 1).
cudaError_t launch_rotary(DType t, const void* x, const float* cos, const float* sin, void* out,
                          int64_t B, int64_t H, int64_t S, int64_t D, const int64_t sx[4],
                          const int64_t so[3], int64_t cb, int64_t ct, cudaStream_t stream);

// ---- decode_kernels.cu (bf16 / fp16 only) ----
constexpr int64_t kGemvMaxRows = 8;
// y[m, :ldy] rows m < rows: x [rows, K] (row stride ldx) times w [n_rows, K] transposed, where
// n_rows = n_out, or 2 n_out with silu_mul (gate rows then up rows; y = silu(gate) * up).
// bias [n_out] or null. K, ldx and both base pointers must be multiples of 8 elements / 16 B.
cudaError_t launch_gemv(DType t, const void* x, int64_t ldx, int64_t rows, const void* w,
                        int64_t n_out, int64_t K, const void* bias, bool silu_mul, void* y,
                        int64_t ldy, cudaStream_t stream);
// h = x + delta (skipped when delta is null: then h is not written), out = RMSNorm(h) * w; all
// [N, C] contiguous.
cudaError_t launch_add_rms_norm(DType t, const void* x, const void* delta, const void* w, void* h,
                                void* out, int64_t N, int64_t C, float eps, cudaStream_t stream);
// One decode step of attention over a static cache; see decode_kernels.cu.
struct DecodeAttentionArgs {
  const void* qkv;       // [B, (H + 2 Hkv) D] (row stride ld_qkv): q, k, v before RoPE
  int64_t ld_qkv;
  const float* cos;      // [B, D] (row stride ld_rope), fp32
  const float* sin;
  int64_t ld_rope;
  void* k_cache;         // [B, Hkv, t_max, D] contiguous
  void* v_cache;
  int64_t t_max;
  const int64_t* slot;   // [1] on the device: the step's cache slot
  const bool* key_valid; // [B, *] (row stride ld_valid)
  int64_t ld_valid;
  int B, S, H, Hkv, D;   // S: slots the step may attend (the window), <= t_max
  void* out;             // [B, H D] (row stride ld_out)
  int64_t ld_out;
};
cudaError_t launch_decode_attention(DType t, const DecodeAttentionArgs& a, cudaStream_t stream);
// The head sizes the decode attention kernel is built for.
inline bool decode_attention_head_dim_ok(int64_t D) { return D == 64 || D == 128 || D == 256; }

// ---- backward kernels of training (rms_norm_backward.cu, rotary_backward.cu,
// silu_mul_backward.cu); fp32, bf16 and fp16 ----
// RMSNorm's backward for y = w * (x r).to(T), r = rsqrt(mean(x^2) + eps): g, x, gx [N, C]
// contiguous and w [C], all of type t. Each of grid_blocks blocks sums its rows' share of the
// weight's gradient in fp32 into gw_part[block, 0:C]; the caller adds up the blocks.
cudaError_t launch_rms_norm_backward(DType t, const void* g, const void* x, const void* w, void* gx,
                                     float* gw_part, int64_t N, int64_t C, float eps,
                                     int grid_blocks, cudaStream_t stream);
// The widest row it takes: its fp32 accumulator of the weight's gradient lives in shared memory.
constexpr int64_t kRmsNormBackwardMaxC = 8192;  // 32 KB, under the 48 KB default
// RoPE's backward: g [B, H, S, D] with strides sg[4] -> gx with strides sx[4]; cos/sin as
// launch_rotary (fp32 [B, S, D], strides (cb, ct, 1)).
cudaError_t launch_rotary_backward(DType t, const void* g, const float* cos, const float* sin,
                                   void* gx, int64_t B, int64_t H, int64_t S, int64_t D,
                                   const int64_t sg[4], const int64_t sx[4], int64_t cb, int64_t ct,
                                   cudaStream_t stream);
// Training's residual add and RMSNorm (add_rms_norm_train.cu), both ways: h = x + delta in h's
// type tx, y = RMSNorm(h) * w rounded to tx and then to ty (autocast's cast before the next GEMM).
// x, delta, h, y [N, C] contiguous, w [C] of type tx; C a multiple of 4 up to the maximum, and
// every pointer aligned to 4 elements. Types: tx fp32 with any td and ty, or all three alike.
constexpr int64_t kAddRmsNormTrainMaxC = 8192;
bool add_rms_norm_train_types_ok(DType tx, DType td, DType ty);
cudaError_t launch_add_rms_norm_train(DType tx, DType td, DType ty, const void* x,
                                      const void* delta, const void* w, void* h, void* y,
                                      int64_t N, int64_t C, float eps, cudaStream_t stream);
// Its backward from gy (type ty) and gh (the residual's own gradient, type tx; null: none):
// gx = gh + the norm's gradient of h (type tx; null: not written), gdelta the same in td (null:
// not written), and grad_w's partial sums, one fp32 row of C per block in gw_part[grid_blocks, C].
// The grid its backward takes: as many blocks as the current device keeps resident at once (at
// most N). Short rows make small blocks (64 threads at C = 256), so a grid of a few blocks per
// streaming multiprocessor left most of it idle: the backward took 3x its forward (H100,
// 2026-12-06).
int add_rms_norm_train_backward_grid(DType tx, DType td, DType ty, int64_t N, int64_t C);
cudaError_t launch_add_rms_norm_train_backward(DType tx, DType td, DType ty, const void* gy,
                                               const void* gh, const void* h, const void* w,
                                               void* gx, void* gdelta, float* gw_part, int64_t N,
                                               int64_t C, float eps, int grid_blocks,
                                               cudaStream_t stream);
// Cross-entropy over rows of logits [n, V] contiguous (cross_entropy_rows.cu), one block a row:
// row_loss[i] = -log_softmax(logits[i])[target[i]] in fp32 and row_hit[i] = 1 where the row's first
// largest logit is the target's (both 0 where the target is negative: an ignored row). With scale
// (a device fp32 scalar; null: no gradient) the logits are overwritten by their gradient for an
// NLL gradient of -scale at the target, in the logits' own type (0 on ignored rows).
constexpr int64_t kCrossEntropyMaxRows = 2147483647;  // the grid's x limit
cudaError_t launch_cross_entropy_rows(DType t, void* logits, const int64_t* target, int64_t n,
                                      int64_t V, const float* scale, float* row_loss,
                                      int32_t* row_hit, cudaStream_t stream);
// silu(gate) * up's backward: gate_up [N, 2I] and grad [N, I] contiguous -> grad_gate_up [N, 2I].
cudaError_t launch_silu_mul_backward(DType t, const void* gate_up, const void* grad,
                                     void* grad_gate_up, int64_t N, int64_t I, cudaStream_t stream);

}  // namespace c3::model::fused::cuda
