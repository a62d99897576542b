// Row reductions shared by the row-wise kernels (softmax.cu, cross_entropy.cu, layer_norm.cu):
// which rows a warp or a block takes, and the online (max, sum of exp) pair of a softmax row.
// CUDA code: include only from .cu files (also built by the CPU test emulation).
#pragma once

#include <math.h>
#include <stdint.h>

#include "tg_cuda_device.h"

namespace tg {
namespace cuda {

// Row-group coordinates: a warp per row (kBlock false: lane 0..31, several rows per block), or
// the whole block per row; first row and the grid-stride step between this group's rows.
template <bool kBlock>
struct RowGroup {
  int lane, width;
  int64_t first, step;
  __device__ RowGroup() {
    if (kBlock) {
      lane = threadIdx.x;
      width = blockDim.x;
      first = blockIdx.x;
      step = gridDim.x;
    } else {
      const int warps = blockDim.x / kWarp;
      lane = threadIdx.x % kWarp;
      width = kWarp;
      first = static_cast<int64_t>(blockIdx.x) * warps + threadIdx.x / kWarp;
      step = static_cast<int64_t>(gridDim.x) * warps;
    }
  }
};

// Adds v to the running (max m, sum s of exp(x - m)); a NaN v makes s NaN.
__device__ __forceinline__ void ms_add(float& m, float& s, float v) {
  if (v > m) {
    s = s * expf(m - v) + 1.0f;  // m == -inf at first: expf(-inf) == 0
    m = v;
  } else if (v != -INFINITY) {
    s += expf(v - m);
  }
}

// Merges (m2, s2) into (m, s); symmetric, so every lane ends with the same pair.
__device__ __forceinline__ void ms_merge(float& m, float& s, float m2, float s2) {
  const float big = fmaxf(m, m2);
  // Both parts empty or -inf only: the sums just add (0, or NaN after a NaN).
  s = big == -INFINITY ? s + s2 : s * expf(m - big) + s2 * expf(m2 - big);
  m = big;
}

__device__ __forceinline__ void ms_warp(float& m, float& s) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    ms_merge(m, s, m2, s2);
  }
}

// Reduces (m, s) over a warp or the whole block (sm_m, sm_s: 32 floats of shared memory each);
// every thread gets the result. Every thread of the group must call it.
template <bool kBlock>
__device__ __forceinline__ void ms_reduce(float& m, float& s, float* sm_m, float* sm_s) {
  ms_warp(m, s);
  if (!kBlock) return;
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  __syncthreads();  // readers of the previous row's values are done
  if (lane == 0) {
    sm_m[warp] = m;
    sm_s[warp] = s;
  }
  __syncthreads();
  const bool have = lane < static_cast<int>(blockDim.x / kWarp);
  m = have ? sm_m[lane] : -INFINITY;
  s = have ? sm_s[lane] : 0.0f;
  ms_warp(m, s);
}

}  // namespace cuda
}  // namespace tg
