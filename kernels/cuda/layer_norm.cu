// Layer norm forward and backward over rows of n elements, float32 or float16 (x, weight, bias,
// y, gy, gx, gweight, gbias of one type; statistics, mean / rstd and every sum in float32, as
// the reference does in float32; a float16 result is rounded once when stored).
//
// Rows: one warp per row for n <= 1024 (4 rows per 128-thread block), one block
// per row above (256 or 512 threads). The forward makes two passes for the
// statistics (mean, then the centred variance, like the reference) and one to
// write y; the backward one pass for sum(g) and sum(g * xhat), one to write gx.
// gweight / gbias are column sums over all rows: a separate kernel gives each
// 32-column tile and chunk of rows to one block of 32 x 16 threads (16 row
// lanes); with a workspace the chunks' partial sums are then added in chunk
// order by a second kernel (without one, one chunk of all rows: fewer blocks).
// Everything is summed in a fixed order, so results are bit-identical run to run.
#include <cuda_runtime.h>
#include <math.h>

#include "elem.cuh"
#include "row_reduce.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

using tg::cuda::from_float;
using tg::cuda::grid_for;
using tg::cuda::RowGroup;
using tg::cuda::to_float;
using tg::cuda::group_sum;
using tg::cuda::kWarp;

constexpr int kRowWarpMax = 1024;
constexpr int kWarpBlock = 128;
constexpr int kColTile = 32;
constexpr int kColRows = 16;

template <typename T, bool kBlock>
__global__ void layer_norm_rows(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, int64_t rows,
                                int64_t n, float eps) {
  __shared__ float smem[kWarp];
  const RowGroup<kBlock> g;
  const float inv_n = 1.0f / static_cast<float>(n);  // n == 0: inf, and 0 * inf gives NaN statistics
  for (int64_t r = g.first; r < rows; r += g.step) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    float acc = 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) acc += to_float(xr[j]);
    const float mu = group_sum<kBlock>(acc, smem) * inv_n;
    acc = 0.0f;
    for (int64_t j = g.lane; j < n; j += g.width) {
      const float c = to_float(xr[j]) - mu;
      acc += c * c;
    }
    const float var = group_sum<kBlock>(acc, smem) * inv_n;
    const float rs = 1.0f / sqrtf(var + eps);
    if (g.lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    for (int64_t j = g.lane; j < n; j += g.width) {
      float v = (to_float(xr[j]) - mu) * rs;
      if (w != nullptr) v *= to_float(w[j]);
      if (b != nullptr) v += to_float(b[j]);
      yr[j] = from_float<T>(v);
    }
  }
}

// gx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gy * weight (or gy).
template <typename T, bool kBlock>
__global__ void layer_norm_backward_rows(const T* __restrict__ x, const T* __restrict__ w,
                                         const float* __restrict__ mean, const float* __restrict__ rstd,
                                         const T* __restrict__ gy, T* __restrict__ gx, int64_t rows, int64_t n) {
  __shared__ float smem[kWarp];
  const RowGroup<kBlock> grp;
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int64_t r = grp.first; r < rows; r += grp.step) {
    const T* xr = x + r * n;
    const T* gr = gy + r * n;
    T* out = gx + r * n;
    const float mu = mean[r];
    const float rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t j = grp.lane; j < n; j += grp.width) {
      const float g = w != nullptr ? to_float(gr[j]) * to_float(w[j]) : to_float(gr[j]);
      sg += g;
      sgx += g * ((to_float(xr[j]) - mu) * rs);
    }
    const float mg = group_sum<kBlock>(sg, smem) * inv_n;
    const float mgx = group_sum<kBlock>(sgx, smem) * inv_n;
    for (int64_t j = grp.lane; j < n; j += grp.width) {
      const float g = w != nullptr ? to_float(gr[j]) * to_float(w[j]) : to_float(gr[j]);
      const float xhat = (to_float(xr[j]) - mu) * rs;
      out[j] = from_float<T>(rs * (g - mg - xhat * mgx));
    }
  }
}

// gweight[j] = sum_r gy[r, j] * xhat[r, j], gbias[j] = sum_r gy[r, j] over the rows of chunk
// blockIdx.y ([chunk * rows_per_chunk, +rows_per_chunk) clipped to rows; rows may be 0), written
// to gw / gb + chunk * chunk_stride. Each 32-column tile is summed by 16 row lanes, then in a
// fixed order, so the result depends only on the data and the chunking.
// TOut: T when the sums are the final gweight / gbias, float for a workspace's partial sums.
template <typename T, typename TOut>
__global__ void __launch_bounds__(kColTile * kColRows)
layer_norm_param_grads(const T* __restrict__ x, const float* __restrict__ mean, const float* __restrict__ rstd,
                       const T* __restrict__ gy, TOut* __restrict__ gw, TOut* __restrict__ gb, int64_t chunk_stride,
                       int64_t rows, int64_t n, int64_t rows_per_chunk) {
  __shared__ float sw[kColRows][kColTile + 1];
  __shared__ float sb[kColRows][kColTile + 1];
  const int tx = threadIdx.x % kColTile;
  const int ty = threadIdx.x / kColTile;
  const int64_t chunk = blockIdx.y;
  const int64_t r0 = chunk * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  gw += chunk * chunk_stride;
  gb += chunk * chunk_stride;
  for (int64_t tile = blockIdx.x; tile * kColTile < n; tile += gridDim.x) {
    const int64_t col = tile * kColTile + tx;
    float aw = 0.0f, ab = 0.0f;
    if (col < n) {
      for (int64_t r = r0 + ty; r < r1; r += kColRows) {
        const float g = to_float(gy[r * n + col]);
        aw += g * ((to_float(x[r * n + col]) - mean[r]) * rstd[r]);
        ab += g;
      }
    }
    sw[ty][tx] = aw;
    sb[ty][tx] = ab;
    __syncthreads();
    if (ty == 0 && col < n) {
      float tw = 0.0f, tb = 0.0f;
#pragma unroll
      for (int i = 0; i < kColRows; ++i) {
        tw += sw[i][tx];
        tb += sb[i][tx];
      }
      gw[col] = from_float<TOut>(tw);
      gb[col] = from_float<TOut>(tb);
    }
    __syncthreads();  // before the next tile overwrites sw / sb
  }
}

// Second stage: gweight / gbias = sums of the chunks' partials (part: chunks x [gw (n), gb (n)]),
// in chunk order.
template <typename T>
__global__ void layer_norm_param_sum(const float* __restrict__ part, T* __restrict__ gw, T* __restrict__ gb,
                                     int64_t chunks, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += stride) {
    float tw = 0.0f, tb = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {
      tw += part[c * 2 * n + j];
      tb += part[c * 2 * n + n + j];
    }
    gw[j] = from_float<T>(tw);
    gb[j] = from_float<T>(tb);
  }
}

// How many row chunks the parameter gradients are split into: enough blocks (column tiles x
// chunks) to cover the GPU, chunks of at least kMinChunkRows rows. A function of (rows, n) only.
constexpr int64_t kMinChunkRows = 64;
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMaxChunks = 1024;

int64_t param_chunks(int64_t rows, int64_t n) {
  const int64_t tiles = (n + kColTile - 1) / kColTile;
  int64_t chunks = kTargetBlocks / (tiles > 0 ? tiles : 1);
  const int64_t by_rows = (rows + kMinChunkRows - 1) / kMinChunkRows;
  if (chunks > by_rows) chunks = by_rows;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  return chunks < 1 ? 1 : chunks;
}

int block_threads(int64_t n) { return n >= 8192 ? 512 : 256; }

template <typename T>
int forward_of(const void* xv, const void* wv, const void* bv, void* yv, float* mean, float* rstd, int64_t rows,
               int64_t n, float eps, cudaStream_t s) {
  const T* x = static_cast<const T*>(xv);
  const T* w = static_cast<const T*>(wv);
  const T* b = static_cast<const T*>(bv);
  T* y = static_cast<T*>(yv);
  if (n > kRowWarpMax) {
    layer_norm_rows<T, true><<<grid_for(rows, 1), block_threads(n), 0, s>>>(x, w, b, y, mean, rstd, rows, n, eps);
  } else {
    layer_norm_rows<T, false><<<grid_for(rows, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(x, w, b, y, mean, rstd,
                                                                                        rows, n, eps);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int backward_of(const void* xv, const void* wv, const float* mean, const float* rstd, const void* gyv, void* gxv,
                void* gwv, void* gbv, float* workspace, int64_t rows, int64_t n, cudaStream_t s) {
  const T* x = static_cast<const T*>(xv);
  const T* w = static_cast<const T*>(wv);
  const T* gy = static_cast<const T*>(gyv);
  T* gx = static_cast<T*>(gxv);
  T* gw = static_cast<T*>(gwv);
  T* gb = static_cast<T*>(gbv);
  if (rows > 0) {
    if (n > kRowWarpMax) {
      layer_norm_backward_rows<T, true><<<grid_for(rows, 1), block_threads(n), 0, s>>>(x, w, mean, rstd, gy, gx,
                                                                                       rows, n);
    } else {
      layer_norm_backward_rows<T, false><<<grid_for(rows, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(
          x, w, mean, rstd, gy, gx, rows, n);
    }
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }
  const int64_t chunks = param_chunks(rows, n);
  if (chunks == 1 || workspace == nullptr) {
    layer_norm_param_grads<T, T><<<grid_for(n, kColTile), kColTile * kColRows, 0, s>>>(x, mean, rstd, gy, gw, gb, 0,
                                                                                       rows, n, rows);
    return static_cast<int>(cudaGetLastError());
  }
  const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
  const dim3 grid(grid_for(n, kColTile), static_cast<unsigned int>(chunks));
  layer_norm_param_grads<T, float><<<grid, kColTile * kColRows, 0, s>>>(x, mean, rstd, gy, workspace, workspace + n,
                                                                        2 * n, rows, n, rows_per_chunk);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);
  layer_norm_param_sum<T><<<grid_for(n, 256), 256, 0, s>>>(workspace, gw, gb, chunks, n);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int tg_cuda_layer_norm(int dtype, const void* x, const void* weight, const void* bias, void* y,
                                  float* mean, float* rstd, int64_t rows, int64_t n, float eps, void* stream) {
  if (rows <= 0 || n < 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == TG_DTYPE_F32) return forward_of<float>(x, weight, bias, y, mean, rstd, rows, n, eps, s);
  if (dtype == TG_DTYPE_F16) return forward_of<tg::cuda::f16>(x, weight, bias, y, mean, rstd, rows, n, eps, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

extern "C" int tg_cuda_layer_norm_backward(int dtype, const void* x, const void* weight, const float* mean,
                                           const float* rstd, const void* gy, void* gx, void* gweight, void* gbias,
                                           float* workspace, int64_t rows, int64_t n, void* stream) {
  if (n <= 0 || rows < 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == TG_DTYPE_F32) {
    return backward_of<float>(x, weight, mean, rstd, gy, gx, gweight, gbias, workspace, rows, n, s);
  }
  if (dtype == TG_DTYPE_F16) {
    return backward_of<tg::cuda::f16>(x, weight, mean, rstd, gy, gx, gweight, gbias, workspace, rows, n, s);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

extern "C" int64_t tg_cuda_layer_norm_backward_workspace(int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0) return 0;
  const int64_t chunks = param_chunks(rows, n);
  return chunks == 1 ? 0 : 2 * chunks * n;
}
