// Device-side helpers shared by the kernels of kernels/cuda/*.cu (CUDA code:
// include only from .cu files, never from csrc/).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace tg {
namespace cuda {

constexpr int kWarp = 32;
// Grid-stride kernels never need more blocks than this to fill any current GPU;
// the loops cover the rest.
constexpr int64_t kMaxBlocks = 65535;

inline unsigned int grid_for(int64_t work, int per_block) {
  const int64_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks));
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024), returned
// to every thread. `smem` holds 32 floats. Every thread of the block must call
// it; it may be called repeatedly (it synchronises before reusing smem).
__device__ __forceinline__ float block_sum(float v, float* smem) {
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // earlier readers of smem are done
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < warps ? smem[lane] : 0.0f;
  return warp_sum(v);
}

// A row reduction done by one warp (kBlock = false) or by the whole block.
template <bool kBlock>
__device__ __forceinline__ float group_sum(float v, float* smem) {
  if (kBlock) return block_sum(v, smem);
  return warp_sum(v);
}

}  // namespace cuda
}  // namespace tg
