// Fused cross-entropy with class-index targets, float32: log_softmax, the pick of the target,
// the class weight and label smoothing in one pass over each row of logits (rows, classes).
//
// Rows of up to 1024 classes get one warp (4 rows per 128-thread block); longer rows one block
// (256 threads, 512 from 8192 classes). The forward keeps, per thread, an online
// (max, sum of exp(x - max)) pair and, with label smoothing, sum w[c] * (x[c] - x0) with x0 the
// row's first logit (0 if that is not finite); the pairs are merged across the row, so the
// logits are read once. The shift keeps that weighted sum small when all logits are large, and
//   sum_c w[c] * log_softmax(x)[c] = sum_c w[c] * (x[c] - x0) - (lse - x0) * sum_c w[c].
// sum_c w[c] (classes when weight is null) is summed once per warp / block, before its rows.
// The backward reads lse, so it is one pass too. Every sum runs in a fixed order: results are
// bit-identical run to run.
//
// Targets are checked before use: one outside [0, classes) that is not ignore_index never
// indexes the logits or the weight; its loss (forward) or gradient row (backward) is NaN and
// the forward sets *error.
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
using tg::cuda::group_sum;
using tg::cuda::kWarp;

constexpr int kRowWarpMax = 1024;  // rows up to this long get one warp
constexpr int kWarpBlock = 128;    // 4 warps, 4 rows per block

// sum_c weight[c] (classes when weight is null), the same in every thread of the group.
template <bool kBlock>
__device__ __forceinline__ float weight_total(const float* weight, int64_t classes, int lane, int width,
                                              float* smem) {
  if (weight == nullptr) return static_cast<float>(classes);
  float acc = 0.0f;
  for (int64_t j = lane; j < classes; j += width) acc += weight[j];
  return group_sum<kBlock>(acc, smem);
}

template <bool kBlock>
__global__ void ce_forward_rows(const float* __restrict__ logits, const int64_t* __restrict__ target,
                                const float* __restrict__ weight, float* __restrict__ loss, float* __restrict__ lse,
                                int* __restrict__ error, int64_t rows, int64_t classes, int64_t ignore_index,
                                float smoothing) {
  __shared__ float sm_m[kWarp];
  __shared__ float sm_s[kWarp];
  __shared__ float sm_sum[kWarp];
  const RowGroup<kBlock> g;
  const bool smooth = smoothing > 0.0f;  // PyTorch adds the smoothing term only then
  const float wsum = smooth ? weight_total<kBlock>(weight, classes, g.lane, g.width, sm_sum) : 0.0f;
  for (int64_t r = g.first; r < rows; r += g.step) {
    const float* x = logits + r * classes;
    const float pivot = isfinite(x[0]) ? x[0] : 0.0f;  // -inf logits must sum to -inf, not NaN
    float m = -INFINITY, s = 0.0f, swx = 0.0f;
    for (int64_t j = g.lane; j < classes; j += g.width) {
      const float xj = x[j];
      ms_add(m, s, xj);
      if (smooth) swx = fmaf(weight == nullptr ? 1.0f : weight[j], xj - pivot, swx);
    }
    ms_reduce<kBlock>(m, s, sm_m, sm_s);
    if (smooth) swx = group_sum<kBlock>(swx, sm_sum);
    if (g.lane != 0) continue;
    // The materialised log_softmax gives NaN for a row holding +inf (inf - inf); so does lse.
    const float lse_r = m == INFINITY ? NAN : m + logf(s);
    lse[r] = lse_r;
    const int64_t t = target[r];
    float value;
    if (t == ignore_index) {
      value = 0.0f;
    } else if (t < 0 || t >= classes) {
      value = NAN;
      if (error != nullptr) atomicOr(error, 1);
    } else {
      value = -(weight == nullptr ? 1.0f : weight[t]) * (x[t] - lse_r);
      if (smooth) {
        const float smooth_loss = -(swx - (lse_r - pivot) * wsum);
        value = (1.0f - smoothing) * value + (smoothing / static_cast<float>(classes)) * smooth_loss;
      }
    }
    loss[r] = value;
  }
}

template <bool kBlock>
__global__ void ce_backward_rows(const float* __restrict__ logits, const float* __restrict__ lse,
                                 const int64_t* __restrict__ target, const float* __restrict__ weight,
                                 const float* __restrict__ grow, float* __restrict__ glogits, int64_t rows,
                                 int64_t classes, int64_t ignore_index, float smoothing) {
  __shared__ float sm_sum[kWarp];
  const RowGroup<kBlock> g;
  const bool smooth = smoothing > 0.0f;
  const float wsum = smooth ? weight_total<kBlock>(weight, classes, g.lane, g.width, sm_sum) : 0.0f;
  const float per_class = smoothing / static_cast<float>(classes);
  for (int64_t r = g.first; r < rows; r += g.step) {
    const float* x = logits + r * classes;
    float* gx = glogits + r * classes;
    const int64_t t = target[r];
    if (t == ignore_index || t < 0 || t >= classes) {
      const float fill = t == ignore_index ? 0.0f : NAN;
      for (int64_t j = g.lane; j < classes; j += g.width) gx[j] = fill;
      continue;
    }
    const float lse_r = lse[r];
    const float gr = grow[r];
    const float nll_w = (1.0f - smoothing) * (weight == nullptr ? 1.0f : weight[t]);
    for (int64_t j = g.lane; j < classes; j += g.width) {
      const float p = expf(x[j] - lse_r);
      float d = nll_w * (j == t ? p - 1.0f : p);
      if (smooth) d += per_class * (wsum * p - (weight == nullptr ? 1.0f : weight[j]));
      gx[j] = gr * d;
    }
  }
}

int block_threads(int64_t classes) { return classes >= 8192 ? 512 : 256; }

}  // namespace

extern "C" int tg_cuda_cross_entropy(const float* logits, const int64_t* target, const float* weight, float* loss,
                                     float* lse, int* error, int64_t rows, int64_t classes, int64_t ignore_index,
                                     float label_smoothing, void* stream) {
  if (rows <= 0) return 0;
  if (classes <= 0) return static_cast<int>(cudaErrorInvalidValue);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (classes > kRowWarpMax) {
    ce_forward_rows<true><<<grid_for(rows, 1), block_threads(classes), 0, s>>>(
        logits, target, weight, loss, lse, error, rows, classes, ignore_index, label_smoothing);
  } else {
    ce_forward_rows<false><<<grid_for(rows, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(
        logits, target, weight, loss, lse, error, rows, classes, ignore_index, label_smoothing);
  }
  return static_cast<int>(cudaGetLastError());
}

extern "C" int tg_cuda_cross_entropy_backward(const float* logits, const float* lse, const int64_t* target,
                                              const float* weight, const float* grow, float* glogits, int64_t rows,
                                              int64_t classes, int64_t ignore_index, float label_smoothing,
                                              void* stream) {
  if (rows <= 0 || classes <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (classes > kRowWarpMax) {
    ce_backward_rows<true><<<grid_for(rows, 1), block_threads(classes), 0, s>>>(
        logits, lse, target, weight, grow, glogits, rows, classes, ignore_index, label_smoothing);
  } else {
    ce_backward_rows<false><<<grid_for(rows, kWarpBlock / kWarp), kWarpBlock, 0, s>>>(
        logits, lse, target, weight, grow, glogits, rows, classes, ignore_index, label_smoothing);
  }
  return static_cast<int>(cudaGetLastError());
}
