// Direct fp32 kernels for the small products of one decode step on the CPU.
//
// Debian's OpenBLAS 0.3.21 does not know recent Xeons and falls back to its generic Prescott
// kernels, and its sgemm packs the whole weight on every call: a [1, 256] x [256, 256] product
// took 25-30 us and an attention product over 1,000 cached keys ~50 us, several times the cost
// of the arithmetic. These loops are vectorised by the compiler for AVX-512, AVX2 or SSE2
// (picked at load time) and read each weight once. They sum in another order than BLAS: results
// agree to fp32 rounding, not bit for bit; each output row is computed alone (so a row's result
// does not depend on the batch it is in), in a fixed order for a given CPU.
#pragma once
#include <cstdint>

namespace c3::model::cpu {

// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n] when b is not null), for m < M, n < N.
// Row m of x starts at x + m * ldx, row n of w at w + n * ldw, row m of y at y + m * ldy.
void rows_dot_rows(const float* x, int64_t ldx, int64_t M, const float* w, int64_t ldw, int64_t N,
                   int64_t K, const float* b, float* y, int64_t ldy);

// y[m, :] = sum_s p[m, s] * v[s, :] over s < S (in order), for m < M: p [M, S] contiguous,
// row s of v at v + s * ldv, y [M, D] contiguous.
void rows_times_matrix(const float* p, int64_t M, int64_t S, const float* v, int64_t ldv,
                       int64_t D, float* y);

}  // namespace c3::model::cpu
