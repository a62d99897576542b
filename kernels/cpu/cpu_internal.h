// Internal interface between the CPU drivers (generic C++) and the
// ISA-specific kernels (compiled with GCC/Clang target attributes, so one
// build runs on any x86-64 and picks a path at run time).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tg_cpu.h"

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

// Serial bodies of the softmax, activation and layer-norm kernels, one table
// per ISA (nn_body.h compiled in nn_generic.cpp, nn_avx2.cpp, nn_avx512.cpp);
// the drivers in nn.cpp split the work across threads.
struct NnKernels {
  // rows x n, row-major.
  void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t n, bool log);
  // n rows of `cols` floats, row r at x + r * stride: softmax down each column.
  void (*softmax_cols)(const float* x, float* y, int64_t n, int64_t stride, int64_t cols, bool log);
  void (*softmax_backward_rows)(const float* y, const float* gy, float* gx, int64_t rows, int64_t n,
                                bool log);
  void (*softmax_backward_cols)(const float* y, const float* gy, float* gx, int64_t n,
                                int64_t stride, int64_t cols, bool log);
  void (*activation)(Act act, const float* x, float* out, int64_t n, float param);
  void (*activation_backward)(Act act, const float* a, const float* gy, float* out, int64_t n,
                              float param);
  void (*layer_norm_rows)(const float* x, const float* w, const float* b, float* y, float* mean,
                          float* rstd, int64_t rows, int64_t n, float eps);
  // Adds this block's sums of gy * xhat and gy into gw_acc and gb_acc (n each).
  void (*layer_norm_backward_rows)(const float* x, const float* w, const float* mean,
                                   const float* rstd, const float* gy, float* gx, float* gw_acc,
                                   float* gb_acc, int64_t rows, int64_t n);
};

NnKernels nn_kernels_generic();
NnKernels nn_kernels_avx2();
NnKernels nn_kernels_avx512();

// C = A @ B (row-major, densely packed) on the calling thread only, for
// callers that parallelize outside (conv2d over images); scratch is per thread.
void matmul_single_thread(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k);

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
