// AVX2 + FMA kernels. Every function here carries TG_TARGET_AVX2 so the file
// compiles with the baseline flags and only runs after run-time dispatch.
#include <immintrin.h>

#include "cpu_internal.h"

namespace tg {
namespace cpu {

TG_TARGET_AVX2 void relu_avx2(const float* x, float* out, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    // max(0, x) returns x when x is NaN, so NaN propagates like the generic path.
    __m256 v0 = _mm256_max_ps(zero, _mm256_loadu_ps(x + i));
    __m256 v1 = _mm256_max_ps(zero, _mm256_loadu_ps(x + i + 8));
    __m256 v2 = _mm256_max_ps(zero, _mm256_loadu_ps(x + i + 16));
    __m256 v3 = _mm256_max_ps(zero, _mm256_loadu_ps(x + i + 24));
    _mm256_storeu_ps(out + i, v0);
    _mm256_storeu_ps(out + i + 8, v1);
    _mm256_storeu_ps(out + i + 16, v2);
    _mm256_storeu_ps(out + i + 24, v3);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_max_ps(zero, _mm256_loadu_ps(x + i)));
  for (; i < n; ++i) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

TG_TARGET_AVX2 void relu_backward_avx2(const float* x, const float* gy, float* out, int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 m0 = _mm256_cmp_ps(_mm256_loadu_ps(x + i), zero, _CMP_GT_OQ);
    __m256 m1 = _mm256_cmp_ps(_mm256_loadu_ps(x + i + 8), zero, _CMP_GT_OQ);
    _mm256_storeu_ps(out + i, _mm256_and_ps(m0, _mm256_loadu_ps(gy + i)));
    _mm256_storeu_ps(out + i + 8, _mm256_and_ps(m1, _mm256_loadu_ps(gy + i + 8)));
  }
  for (; i + 8 <= n; i += 8) {
    __m256 m = _mm256_cmp_ps(_mm256_loadu_ps(x + i), zero, _CMP_GT_OQ);
    _mm256_storeu_ps(out + i, _mm256_and_ps(m, _mm256_loadu_ps(gy + i)));
  }
  for (; i < n; ++i) out[i] = x[i] > 0.0f ? gy[i] : 0.0f;
}

namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;

// 6 x 16 register tile: 12 accumulators, 2 B vectors, 1 broadcast = 15 of 16 ymm.
TG_TARGET_AVX2 void gemm_6x16(int64_t kc, const float* ap, const float* bp, float* c,
                              int64_t ldc, int m, int n, bool accumulate) {
  __m256 acc[kMr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm256_setzero_ps();
    acc[i][1] = _mm256_setzero_ps();
  }
  for (int i = 0; i < kMr && i < m; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(bp);
    const __m256 b1 = _mm256_loadu_ps(bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
    ap += kMr;
    bp += kNr;
  }
  if (m == kMr && n == kNr) {
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      float* row = c + i * ldc;
      if (accumulate) {
        acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(row));
        acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(row + 8));
      }
      _mm256_storeu_ps(row, acc[i][0]);
      _mm256_storeu_ps(row + 8, acc[i][1]);
    }
    return;
  }
  alignas(32) float tile[kMr * kNr];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    _mm256_store_ps(tile + i * kNr, acc[i][0]);
    _mm256_store_ps(tile + i * kNr + 8, acc[i][1]);
  }
  store_tile(tile, kNr, c, ldc, m, n, accumulate);
}

}  // namespace

GemmKernel gemm_kernel_avx2() { return GemmKernel{kMr, kNr, gemm_6x16}; }

}  // namespace cpu
}  // namespace tg
