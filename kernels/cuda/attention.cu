// Scaled dot-product attention entry points (tg_cuda.h) and the backward's first pass,
// delta = rowsum(gout * out). The kernels themselves: attention_simple.cu (v1, a warp per
// row) and attention_tiled.cu (v2, the float32 default, FlashAttention-2's tiling) for float32,
// attention_mma.cu and attention_mma_bwd.cu (v3, tensor cores) and attention_mma_fwd.cu (v4, the
// pipelined forward, with v3's backward) for float16 / bfloat16.
#include <cuda_runtime.h>
#include <math.h>

#include "attention.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace tg {
namespace cuda {
namespace attn {
namespace {

constexpr int kDeltaBlock = 128;  // a warp per row, 4 rows per block

// delta[r] = sum_d gout[r, d] * out[r, d]; 0 for dead rows (lse == -inf), whose out is NaN.
__global__ void __launch_bounds__(kDeltaBlock)
delta_rows(const float* __restrict__ out, const float* __restrict__ gout, const float* __restrict__ lse,
           float* __restrict__ delta, int64_t rows, int64_t n) {
  const int warps = blockDim.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * warps + threadIdx.x / kWarp; r < rows;
       r += static_cast<int64_t>(gridDim.x) * warps) {
    const bool dead = lse[r] == -INFINITY;
    float acc = 0.0f;
    for (int64_t d = lane; !dead && d < n; d += kWarp) acc = fmaf(gout[r * n + d], out[r * n + d], acc);
    acc = warp_sum(acc);
    if (lane == 0) delta[r] = acc;
  }
}

// float32: versions 1 and 2; float16 / bfloat16: versions 3 and 4, with E == Ev == 64 or 128.
bool supported(const TgSdpa* a, int version) {
  if (a == nullptr || a->batch < 0 || a->q_len < 0 || a->kv_len < 0 || a->head_dim < 0 || a->v_dim < 0 ||
      a->head_dim > TG_SDPA_MAX_HEAD_DIM || a->v_dim > TG_SDPA_MAX_HEAD_DIM || a->mask_kind < TG_MASK_NONE ||
      a->mask_kind > TG_MASK_ADD) {
    return false;
  }
  if (a->dtype == TG_DTYPE_F32) return version == 1 || version == 2;
  const bool half = a->dtype == TG_DTYPE_F16 || a->dtype == TG_DTYPE_BF16;
  return half && (version == 3 || version == 4) && a->head_dim == a->v_dim && (a->head_dim == 64 || a->head_dim == 128);
}

}  // namespace

int sdpa_delta(const TgSdpa& a, cudaStream_t s) {
  const int64_t rows = a.batch * a.q_len;
  if (rows == 0) return 0;
  delta_rows<<<grid_for(rows, kDeltaBlock / kWarp), kDeltaBlock, 0, s>>>(
      static_cast<const float*>(a.out), static_cast<const float*>(a.gout), a.lse, a.delta, rows, a.v_dim);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace attn
}  // namespace cuda
}  // namespace tg

using namespace tg::cuda::attn;

extern "C" int tg_cuda_sdpa_forward(const TgSdpa* a, int version, void* stream) {
  if (!supported(a, version)) return static_cast<int>(cudaErrorInvalidValue);
  if (a->batch == 0 || a->q_len == 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (version == 4) return sdpa_forward_v4(*a, s);
  if (version == 3) return sdpa_forward_v3(*a, s);
  return version == 1 ? sdpa_forward_v1(*a, s) : sdpa_forward_v2(*a, s);
}

extern "C" int tg_cuda_sdpa_backward(const TgSdpa* a, int version, void* stream) {
  if (!supported(a, version)) return static_cast<int>(cudaErrorInvalidValue);
  if (a->batch == 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (version == 3 || version == 4) return sdpa_backward_v3(*a, s);  // v4 shares v3's backward
  int err = sdpa_delta(*a, s);
  if (err != 0) return err;
  return version == 1 ? sdpa_backward_v1(*a, s) : sdpa_backward_v2(*a, s);
}
