// softmax / log_softmax forward and backward along one dim, float32.
//
// A C-contiguous array reduced along `dim` is seen as (outer, n, inner) with
// n = shape[dim]. Three layouts of the work:
//   inner == 1, 4 < n <= 1024: one warp per row, 4 rows per 128-thread block;
//   inner == 1, n > 1024:      one block per row (256 or 512 threads);
//   otherwise (inner > 1, or rows of at most 4): one thread per (outer, inner)
//                              column, walking the n elements `inner` apart
//                              (adjacent threads read adjacent addresses).
// The forward keeps an online (max, sum of exp(x - max)) pair, so x is read
// twice (statistics, then output) and written once. Every thread touches only
// its own elements in both passes, so out may be x (or y / gy) exactly.
//
// Special values follow the reference (x - max(x), then exp and sum): a NaN or a
// +inf in a row, or a row of -inf only, makes the whole row NaN; -inf elements
// of an otherwise finite row give 0 (softmax) and -inf (log_softmax).
#include <cuda_runtime.h>
#include <math.h>

#include "row_reduce.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

using tg::cuda::grid_for;
using tg::cuda::ms_add;
using tg::cuda::ms_reduce;
using tg::cuda::RowGroup;
using tg::cuda::kWarp;

constexpr int kRowWarpMax = 1024;  // rows up to this long get one warp
constexpr int kThreadRowMax = 4;   // rows up to this long get one thread
constexpr int kWarpBlock = 128;    // 4 warps, 4 rows per block

// The reference turns a row holding +inf into NaN (inf - inf); so do we.
__device__ __forceinline__ float finish_sum(float m, float s) { return m == INFINITY ? NAN : s; }

template <bool kLog>
__device__ __forceinline__ float softmax_out(float v, float m, float s, float log_s) {
  return kLog ? (v - m) - log_s : expf(v - m) / s;
}

template <bool kBlock, bool kLog>
__global__ void softmax_rows(const float* x, float* out, int64_t rows, int64_t n) {
  __shared__ float sm_m[kWarp];
  __shared__ float sm_s[kWarp];
  const RowGroup<kBlock> g;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const float* xr = x + r * n;
    float* orow = out + r * n;
    float m = -INFINITY, s = 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) ms_add(m, s, xr[j]);
    ms_reduce<kBlock>(m, s, sm_m, sm_s);
    s = finish_sum(m, s);
    const float log_s = kLog ? logf(s) : 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) orow[j] = softmax_out<kLog>(xr[j], m, s, log_s);
  }
}

template <bool kLog>
__global__ void softmax_columns(const float* x, float* out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t cols = outer * inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += stride) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    const float* xc = x + base;
    float* oc = out + base;
    float m = -INFINITY, s = 0.0f;
    for (int64_t j = 0; j < n; ++j) ms_add(m, s, xc[j * inner]);
    s = finish_sum(m, s);
    const float log_s = kLog ? logf(s) : 0.0f;
    for (int64_t j = 0; j < n; ++j) oc[j * inner] = softmax_out<kLog>(xc[j * inner], m, s, log_s);
  }
}

// softmax:     out = y * (gy - sum(gy * y))
// log_softmax: out = gy - exp(y) * sum(gy)
template <bool kLog>
__device__ __forceinline__ float backward_term(float y, float gy) { return kLog ? gy : gy * y; }

template <bool kLog>
__device__ __forceinline__ float backward_out(float y, float gy, float total) {
  return kLog ? gy - expf(y) * total : y * (gy - total);
}

template <bool kBlock, bool kLog>
__global__ void softmax_backward_rows(const float* y, const float* gy, float* out, int64_t rows, int64_t n) {
  __shared__ float smem[kWarp];
  const RowGroup<kBlock> g;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const float* yr = y + r * n;
    const float* gr = gy + r * n;
    float* orow = out + r * n;
    float acc = 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) acc += backward_term<kLog>(yr[j], gr[j]);
    const float total = tg::cuda::group_sum<kBlock>(acc, smem);
    for (int64_t j = g.lane; j < n; j += g.width) orow[j] = backward_out<kLog>(yr[j], gr[j], total);
  }
}

template <bool kLog>
__global__ void softmax_backward_columns(const float* y, const float* gy, float* out, int64_t outer,
                                         int64_t n, int64_t inner) {
  const int64_t cols = outer * inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += stride) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    float total = 0.0f;
    for (int64_t j = 0; j < n; ++j) total += backward_term<kLog>(y[base + j * inner], gy[base + j * inner]);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = base + j * inner;
      out[i] = backward_out<kLog>(y[i], gy[i], total);
    }
  }
}

constexpr int kColumnBlock = 256;

int block_threads(int64_t n) { return n >= 8192 ? 512 : 256; }

template <bool kLog>
int launch_forward(const float* x, float* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t s) {
  if (inner == 1 && n > kRowWarpMax) {
    softmax_rows<true, kLog><<<grid_for(outer, 1), block_threads(n), 0, s>>>(x, out, outer, n);
  } else if (inner == 1 && n > kThreadRowMax) {
    softmax_rows<false, kLog><<<grid_for(outer, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(x, out, outer, n);
  } else {
    softmax_columns<kLog><<<grid_for(outer * inner, kColumnBlock), kColumnBlock, 0, s>>>(x, out, outer, n, inner);
  }
  return static_cast<int>(cudaGetLastError());
}

template <bool kLog>
int launch_backward(const float* y, const float* gy, float* out, int64_t outer, int64_t n, int64_t inner,
                    cudaStream_t s) {
  if (inner == 1 && n > kRowWarpMax) {
    softmax_backward_rows<true, kLog><<<grid_for(outer, 1), block_threads(n), 0, s>>>(y, gy, out, outer, n);
  } else if (inner == 1 && n > kThreadRowMax) {
    softmax_backward_rows<false, kLog><<<grid_for(outer, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(
        y, gy, out, outer, n);
  } else {
    softmax_backward_columns<kLog><<<grid_for(outer * inner, kColumnBlock), kColumnBlock, 0, s>>>(
        y, gy, out, outer, n, inner);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int tg_cuda_softmax(const float* x, float* out, int64_t outer, int64_t n, int64_t inner, int log,
                               void* stream) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return log ? launch_forward<true>(x, out, outer, n, inner, s) : launch_forward<false>(x, out, outer, n, inner, s);
}

extern "C" int tg_cuda_softmax_backward(const float* y, const float* gy, float* out, int64_t outer, int64_t n,
                                        int64_t inner, int log, void* stream) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return log ? launch_backward<true>(y, gy, out, outer, n, inner, s)
             : launch_backward<false>(y, gy, out, outer, n, inner, s);
}
