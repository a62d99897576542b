// softmax / log_softmax forward and backward along one dim, float32 or float16 (computed in
// float32: statistics, sums and outputs; a float16 result is rounded once on the store).
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

#include "elem.cuh"
#include "row_reduce.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

using tg::cuda::from_float;
using tg::cuda::grid_for;
using tg::cuda::ms_add;
using tg::cuda::ms_reduce;
using tg::cuda::RowGroup;
using tg::cuda::to_float;
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

template <typename T, bool kBlock, bool kLog>
__global__ void softmax_rows(const T* x, T* out, int64_t rows, int64_t n) {
  __shared__ float sm_m[kWarp];
  __shared__ float sm_s[kWarp];
  const RowGroup<kBlock> g;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* xr = x + r * n;
    T* orow = out + r * n;
    float m = -INFINITY, s = 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) ms_add(m, s, to_float(xr[j]));
    ms_reduce<kBlock>(m, s, sm_m, sm_s);
    s = finish_sum(m, s);
    const float log_s = kLog ? logf(s) : 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) {
      orow[j] = from_float<T>(softmax_out<kLog>(to_float(xr[j]), m, s, log_s));
    }
  }
}

template <typename T, bool kLog>
__global__ void softmax_columns(const T* x, T* out, int64_t outer, int64_t n, int64_t inner) {
  const int64_t cols = outer * inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += stride) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    const T* xc = x + base;
    T* oc = out + base;
    float m = -INFINITY, s = 0.0f;
    for (int64_t j = 0; j < n; ++j) ms_add(m, s, to_float(xc[j * inner]));
    s = finish_sum(m, s);
    const float log_s = kLog ? logf(s) : 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      oc[j * inner] = from_float<T>(softmax_out<kLog>(to_float(xc[j * inner]), m, s, log_s));
    }
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

template <typename T, bool kBlock, bool kLog>
__global__ void softmax_backward_rows(const T* y, const T* gy, T* out, int64_t rows, int64_t n) {
  __shared__ float smem[kWarp];
  const RowGroup<kBlock> g;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* yr = y + r * n;
    const T* gr = gy + r * n;
    T* orow = out + r * n;
    float acc = 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) acc += backward_term<kLog>(to_float(yr[j]), to_float(gr[j]));
    const float total = tg::cuda::group_sum<kBlock>(acc, smem);
    for (int64_t j = g.lane; j < n; j += g.width) {
      orow[j] = from_float<T>(backward_out<kLog>(to_float(yr[j]), to_float(gr[j]), total));
    }
  }
}

template <typename T, bool kLog>
__global__ void softmax_backward_columns(const T* y, const T* gy, T* out, int64_t outer, int64_t n,
                                         int64_t inner) {
  const int64_t cols = outer * inner;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols; c += stride) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    float total = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      total += backward_term<kLog>(to_float(y[base + j * inner]), to_float(gy[base + j * inner]));
    }
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = base + j * inner;
      out[i] = from_float<T>(backward_out<kLog>(to_float(y[i]), to_float(gy[i]), total));
    }
  }
}

constexpr int kColumnBlock = 256;

int block_threads(int64_t n) { return n >= 8192 ? 512 : 256; }

template <typename T, bool kLog>
int launch_forward(const void* xv, void* outv, int64_t outer, int64_t n, int64_t inner, cudaStream_t s) {
  const T* x = static_cast<const T*>(xv);
  T* out = static_cast<T*>(outv);
  if (inner == 1 && n > kRowWarpMax) {
    softmax_rows<T, true, kLog><<<grid_for(outer, 1), block_threads(n), 0, s>>>(x, out, outer, n);
  } else if (inner == 1 && n > kThreadRowMax) {
    softmax_rows<T, false, kLog><<<grid_for(outer, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(x, out, outer, n);
  } else {
    softmax_columns<T, kLog><<<grid_for(outer * inner, kColumnBlock), kColumnBlock, 0, s>>>(x, out, outer, n,
                                                                                              inner);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T, bool kLog>
int launch_backward(const void* yv, const void* gyv, void* outv, int64_t outer, int64_t n, int64_t inner,
                    cudaStream_t s) {
  const T* y = static_cast<const T*>(yv);
  const T* gy = static_cast<const T*>(gyv);
  T* out = static_cast<T*>(outv);
  if (inner == 1 && n > kRowWarpMax) {
    softmax_backward_rows<T, true, kLog><<<grid_for(outer, 1), block_threads(n), 0, s>>>(y, gy, out, outer, n);
  } else if (inner == 1 && n > kThreadRowMax) {
    softmax_backward_rows<T, false, kLog><<<grid_for(outer, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(
        y, gy, out, outer, n);
  } else {
    softmax_backward_columns<T, kLog><<<grid_for(outer * inner, kColumnBlock), kColumnBlock, 0, s>>>(
        y, gy, out, outer, n, inner);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int forward_of(const void* x, void* out, int64_t outer, int64_t n, int64_t inner, int log, cudaStream_t s) {
  return log ? launch_forward<T, true>(x, out, outer, n, inner, s) : launch_forward<T, false>(x, out, outer, n, inner, s);
}

template <typename T>
int backward_of(const void* y, const void* gy, void* out, int64_t outer, int64_t n, int64_t inner, int log,
                cudaStream_t s) {
  return log ? launch_backward<T, true>(y, gy, out, outer, n, inner, s)
             : launch_backward<T, false>(y, gy, out, outer, n, inner, s);
}

}  // namespace

extern "C" int tg_cuda_softmax(int dtype, const void* x, void* out, int64_t outer, int64_t n, int64_t inner, int log,
                               void* stream) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == TG_DTYPE_F32) return forward_of<float>(x, out, outer, n, inner, log, s);
  if (dtype == TG_DTYPE_F16) return forward_of<tg::cuda::f16>(x, out, outer, n, inner, log, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

extern "C" int tg_cuda_softmax_backward(int dtype, const void* y, const void* gy, void* out, int64_t outer, int64_t n,
                                        int64_t inner, int log, void* stream) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == TG_DTYPE_F32) return backward_of<float>(y, gy, out, outer, n, inner, log, s);
  if (dtype == TG_DTYPE_F16) return backward_of<tg::cuda::f16>(y, gy, out, outer, n, inner, log, s);
  return static_cast<int>(cudaErrorInvalidValue);
}
