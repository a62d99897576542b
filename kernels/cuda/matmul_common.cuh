// Shared by the float32 matmul kernels (matmul.cu, matmul_v2.cu, matmul_tf32.cu): the problem
// each block sees, the host loop that splits a product into launches within the grid limits,
// and the SIMT kernels' K-slice staging. CUDA code: include only from .cu files.
//
// Operands are read in place in either layout. A is (M, K) row-major, or stored (K, M) when
// transposed; B is (K, N), or stored (N, K). Seen from the tile loads, each operand is a set of
// "rows" (A's M rows, B's N columns) by a depth K, stored either depth-contiguous (A plain,
// B transposed: element (r, kk) at p[r * ld + kk]) or row-contiguous (A transposed, B plain:
// element at p[kk * ld + r]). The loads keep the contiguous index across a warp's lanes in
// both cases, so they stay coalesced.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "epilogue.cuh"
#include "tg_cuda.h"

namespace tg {
namespace cuda {
namespace gemm {

// One launch's problem: batch entry blockIdx.z of each array starts stride_* elements after the
// previous one; lda / ldb are the stored row lengths (K or M for a, N or K for b); out is
// (m, n) row-major. bias: null or n floats; act: a TG_EPILOGUE_* code.
struct Args {
  const float* a;
  const float* b;
  const float* bias;
  float* c;
  int64_t m, n, k;
  int64_t lda, ldb;
  int64_t stride_a, stride_b, stride_c;
  int act;
};

constexpr int64_t kMaxGridYZ = 65535;

// Runs launch(grid, args) for every chunk of batches and rows that fits gridDim.y and .z
// (65535 each; a block covers bm rows and bn columns). Returns the first launch error.
template <typename Launch>
int launch_chunks(const float* a, const float* b, const float* bias, float* out, int64_t batch, int64_t m,
                  int64_t n, int64_t k, int trans_a, int trans_b, int act, int bm, int bn, Launch launch) {
  if (act != TG_EPILOGUE_NONE && act != TG_EPILOGUE_RELU) return static_cast<int>(cudaErrorInvalidValue);
  if (batch <= 0 || m <= 0 || n <= 0) return 0;
  const int64_t col_tiles = (n + bn - 1) / bn;
  const int64_t rows_per_launch = kMaxGridYZ * bm;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    const int64_t nb = batch - b0 < kMaxGridYZ ? batch - b0 : kMaxGridYZ;
    for (int64_t r0 = 0; r0 < m; r0 += rows_per_launch) {
      Args g;
      g.m = m - r0 < rows_per_launch ? m - r0 : rows_per_launch;
      g.n = n;
      g.k = k;
      g.lda = trans_a ? m : k;
      g.ldb = trans_b ? k : n;
      g.stride_a = m * k;
      g.stride_b = k * n;
      g.stride_c = m * n;
      // A chunk of rows starts r0 rows down a plain A, r0 columns across a transposed one.
      g.a = a + b0 * g.stride_a + (trans_a ? r0 : r0 * k);
      g.b = b + b0 * g.stride_b;
      g.c = out + b0 * g.stride_c + r0 * n;
      g.bias = bias;
      g.act = act;
      dim3 grid(static_cast<unsigned int>(col_tiles), static_cast<unsigned int>((g.m + bm - 1) / bm),
                static_cast<unsigned int>(nb));
      launch(grid, g);
      const cudaError_t err = cudaGetLastError();
      if (err != cudaSuccess) return static_cast<int>(err);
    }
  }
  return 0;
}

// Calls launch(ta, tb) with the flags as std::bool_constant arguments, so a generic lambda can
// pass decltype(ta)::value on as a template argument.
template <typename Launch>
void dispatch_trans(int trans_a, int trans_b, Launch launch) {
  using T = std::true_type;
  using F = std::false_type;
  if (trans_a) {
    if (trans_b) launch(T{}, T{}); else launch(T{}, F{});
  } else {
    if (trans_b) launch(F{}, T{}); else launch(F{}, F{});
  }
}

// Stages rows [r0, r0 + kRows) by depth [k0, k0 + kDepth) of one operand into s[kk][r] (the
// layout the SIMT inner loops read: a thread's rows are adjacent words), zeros outside the
// (rows, k) matrix. Depth-contiguous sources are read with lanes along K and stored transposed
// (the caller pads s's rows so those stores do not conflict); row-contiguous ones are copied
// straight. Construct once per block (p: the operand's batch entry, ld: its stored row length),
// then stage(k0) for each K slice; each thread keeps one pointer and advances it.
template <int kRows, int kDepth, int kThreads, bool kDepthContiguous, int kLd>
struct KMajorStager {
  static_assert((kRows * kDepth) % kThreads == 0, "tile loads must divide evenly");
  static_assert(kThreads % (kDepthContiguous ? kDepth : kRows) == 0, "load mapping");
  static constexpr int kLoads = (kRows * kDepth) / kThreads;
  // Lanes run along the stored contiguous index: `fast` of kFast, `slow` advancing by kStep per load.
  static constexpr int kFast = kDepthContiguous ? kDepth : kRows;
  static constexpr int kStep = kThreads / kFast;

  const float* ptr;  // this thread's first element of the current slice
  int64_t ld;
  int fast, slow;
  int rows_left;     // rows of the tile inside the matrix (from r0), at most kRows
  int64_t k_left;    // depth of the matrix from the current slice's start

  __device__ __forceinline__ KMajorStager(const float* p, int64_t ld_, int64_t r0, int64_t rows, int64_t k, int tid)
      : ld(ld_), fast(tid % kFast), slow(tid / kFast), k_left(k) {
    rows_left = static_cast<int>(rows - r0 < kRows ? rows - r0 : kRows);
    ptr = kDepthContiguous ? p + (r0 + slow) * ld + fast : p + static_cast<int64_t>(slow) * ld + r0 + fast;
  }

  // Stages the next slice into s and moves on by kDepth.
  __device__ __forceinline__ void stage(float (*s)[kLd]) {
    if (kDepthContiguous) {
      const bool k_ok = fast < k_left;
#pragma unroll
      for (int l = 0; l < kLoads; ++l) {
        const int r = slow + l * kStep;
        s[fast][r] = (k_ok && r < rows_left) ? ptr[static_cast<int64_t>(l) * kStep * ld] : 0.0f;
      }
      ptr += kDepth;
    } else {
      const bool r_ok = fast < rows_left;
#pragma unroll
      for (int l = 0; l < kLoads; ++l) {
        const int kk = slow + l * kStep;
        s[kk][fast] = (r_ok && kk < k_left) ? ptr[static_cast<int64_t>(l) * kStep * ld] : 0.0f;
      }
      ptr += kDepth * ld;
    }
    k_left -= kDepth;
  }
};

// The epilogue of one output element: act(acc + bias[col]) (no bias: act(acc)).
__device__ __forceinline__ float finish(float acc, const float* __restrict__ bias, int64_t col, int act) {
  return epilogue::apply(acc, bias != nullptr ? bias[col] : 0.0f, act);
}

}  // namespace gemm
}  // namespace cuda
}  // namespace tg
