// AVX-512F kernels. Every function here carries TG_TARGET_AVX512 so the file
// compiles with the baseline flags and only runs after run-time dispatch.
#include <immintrin.h>

// GCC 12 warns about the intentionally undefined pass-through operand inside
// its own AVX-512 intrinsics (_mm512_undefined_ps); the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "cpu_internal.h"

namespace tg {
namespace cpu {

TG_TARGET_AVX512 void relu_avx512(const float* x, float* out, int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512 v0 = _mm512_max_ps(zero, _mm512_loadu_ps(x + i));
    __m512 v1 = _mm512_max_ps(zero, _mm512_loadu_ps(x + i + 16));
    __m512 v2 = _mm512_max_ps(zero, _mm512_loadu_ps(x + i + 32));
    __m512 v3 = _mm512_max_ps(zero, _mm512_loadu_ps(x + i + 48));
    _mm512_storeu_ps(out + i, v0);
    _mm512_storeu_ps(out + i + 16, v1);
    _mm512_storeu_ps(out + i + 32, v2);
    _mm512_storeu_ps(out + i + 48, v3);
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_max_ps(zero, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(out + i, tail, _mm512_max_ps(zero, _mm512_maskz_loadu_ps(tail, x + i)));
  }
}

TG_TARGET_AVX512 void relu_backward_avx512(const float* x, const float* gy, float* out, int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), zero, _CMP_GT_OQ);
    __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i + 16), zero, _CMP_GT_OQ);
    _mm512_storeu_ps(out + i, _mm512_maskz_loadu_ps(m0, gy + i));
    _mm512_storeu_ps(out + i + 16, _mm512_maskz_loadu_ps(m1, gy + i + 16));
  }
  for (; i + 16 <= n; i += 16) {
    __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), zero, _CMP_GT_OQ);
    _mm512_storeu_ps(out + i, _mm512_maskz_loadu_ps(m, gy + i));
  }
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    __mmask16 m = _mm512_mask_cmp_ps_mask(tail, _mm512_maskz_loadu_ps(tail, x + i), zero, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(out + i, tail, _mm512_maskz_loadu_ps(m, gy + i));
  }
}

namespace {

constexpr int kMr = 12;
constexpr int kNr = 32;

// 12 x 32 register tile: 24 accumulators, 2 B vectors, 1 broadcast of 32 zmm.
TG_TARGET_AVX512 void gemm_12x32(int64_t kc, const float* ap, const float* bp, float* c,
                                 int64_t ldc, int m, int n, bool accumulate) {
  __m512 acc[kMr][2];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(bp);
    const __m512 b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
    }
    ap += kMr;
    bp += kNr;
  }
  if (m == kMr && n == kNr) {
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i) {
      float* row = c + i * ldc;
      if (accumulate) {
        acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(row));
        acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(row + 16));
      }
      _mm512_storeu_ps(row, acc[i][0]);
      _mm512_storeu_ps(row + 16, acc[i][1]);
    }
    return;
  }
  alignas(64) float tile[kMr * kNr];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i) {
    _mm512_store_ps(tile + i * kNr, acc[i][0]);
    _mm512_store_ps(tile + i * kNr + 16, acc[i][1]);
  }
  store_tile(tile, kNr, c, ldc, m, n, accumulate);
}

}  // namespace

GemmKernel gemm_kernel_avx512() { return GemmKernel{kMr, kNr, gemm_12x32}; }

}  // namespace cpu
}  // namespace tg
