// Internal interface between the CPU drivers (generic C++) and the
// ISA-specific kernels (compiled with GCC/Clang target attributes, so one
// build runs on any x86-64 and picks a path at run time).
#pragma once

#include <cstddef>
#include <cstdint>

#define TG_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TG_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))

namespace tg {
namespace cpu {

// Elementwise bodies: one contiguous chunk, called from an OpenMP loop.
void relu_generic(const float* x, float* out, int64_t n);
void relu_avx2(const float* x, float* out, int64_t n);
void relu_avx512(const float* x, float* out, int64_t n);
void relu_backward_generic(const float* x, const float* gy, float* out, int64_t n);
void relu_backward_avx2(const float* x, const float* gy, float* out, int64_t n);
void relu_backward_avx512(const float* x, const float* gy, float* out, int64_t n);

// GEMM micro-kernel: C[0:m, 0:n] (=|+=) Ap * Bp, where Ap is a packed
// MR x kc sliver (column k holds MR consecutive floats) and Bp a packed
// kc x NR sliver (row k holds NR consecutive floats), both zero-padded.
// m <= MR and n <= NR give the valid corner; accumulate selects +=.
using MicroKernel = void (*)(int64_t kc, const float* ap, const float* bp, float* c,
                             int64_t ldc, int m, int n, bool accumulate);

struct GemmKernel {
  int mr;
  int nr;
  MicroKernel fn;
};

GemmKernel gemm_kernel_generic();
GemmKernel gemm_kernel_avx2();
GemmKernel gemm_kernel_avx512();

// Writes a full MR x NR register tile held in tile[] (row-major, NR wide)
// into C, or only its m x n corner.
inline void store_tile(const float* tile, int nr, float* c, int64_t ldc, int m, int n,
                       bool accumulate) {
  for (int i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    const float* t = tile + i * nr;
    if (accumulate) {
      for (int j = 0; j < n; ++j) row[j] += t[j];
    } else {
      for (int j = 0; j < n; ++j) row[j] = t[j];
    }
  }
}

}  // namespace cpu
}  // namespace tg
