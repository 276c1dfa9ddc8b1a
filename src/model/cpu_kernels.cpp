// Direct fp32 kernels for the small products of one decode step on the CPU.
#include "model/cpu_kernels.h"

#define C3_CPU_TARGETS __attribute__((target_clones("avx512f", "avx2,fma", "default")))

namespace c3::model::cpu {

namespace {

constexpr int64_t kLanes = 16;  // partial sums per dot product: one AVX-512 register

// out[r] = dot(x, w[r]) for R weight rows at once: R independent chains keep the FMA units busy.
// Each row's sum has the same order whatever R is.
template <int R>
inline __attribute__((always_inline)) void dot_rows(const float* x, const float* w, int64_t ldw,
                                                    int64_t K, float* out) {
  float acc[R][kLanes] = {};
  const int64_t body = K / kLanes * kLanes;
  for (int64_t k = 0; k < body; k += kLanes) {
    for (int r = 0; r < R; ++r) {
      for (int64_t l = 0; l < kLanes; ++l) acc[r][l] += x[k + l] * w[r * ldw + k + l];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int64_t k = body; k < K; ++k) acc[r][k - body] += x[k] * w[r * ldw + k];
    for (int64_t width = kLanes / 2; width > 0; width /= 2) {
      for (int64_t l = 0; l < width; ++l) acc[r][l] += acc[r][l + width];
    }
    out[r] = acc[r][0];
  }
}

}  // namespace

C3_CPU_TARGETS void rows_dot_rows(const float* x, int64_t ldx, int64_t M, const float* w,
                                  int64_t ldw, int64_t N, int64_t K, const float* b, float* y,
                                  int64_t ldy) {
  constexpr int R = 4;
  float out[R];
  int64_t n = 0;
  // Weight rows outside, x rows inside: each weight row is read from memory once.
  for (; n + R <= N; n += R) {
    for (int64_t m = 0; m < M; ++m) {
      dot_rows<R>(x + m * ldx, w + n * ldw, ldw, K, out);
      for (int r = 0; r < R; ++r) y[m * ldy + n + r] = b ? out[r] + b[n + r] : out[r];
    }
  }
  for (; n < N; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      dot_rows<1>(x + m * ldx, w + n * ldw, ldw, K, out);
      y[m * ldy + n] = b ? out[0] + b[n] : out[0];
    }
  }
}

C3_CPU_TARGETS void rows_times_matrix(const float* p, int64_t M, int64_t S, const float* v,
                                      int64_t ldv, int64_t D, float* __restrict__ y) {
  for (int64_t i = 0; i < M * D; ++i) y[i] = 0.0f;
  for (int64_t s = 0; s < S; ++s) {
    const float* vs = v + s * ldv;
    for (int64_t m = 0; m < M; ++m) {
      const float ps = p[m * S + s];
      float* ym = y + m * D;
      for (int64_t d = 0; d < D; ++d) ym[d] += ps * vs[d];
    }
  }
}

}  // namespace c3::model::cpu
