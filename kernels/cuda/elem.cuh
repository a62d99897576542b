// Element types of the memory-bound kernels (activations, softmax): float32, or float16 kept as
// raw bits (tg::cuda::f16). The kernels compute in float32 and round once, to nearest even,
// when they store a float16 result, as PyTorch's half kernels do. CUDA code: include only from
// .cu files (also built by the CPU test emulation, where _Float16 does the conversions).
#pragma once

#include <stdint.h>

#ifndef TG_CUDA_EMULATION
#include <cuda_fp16.h>
#else
#include <cstring>
#endif

namespace tg {
namespace cuda {

struct f16 {
  uint16_t bits;
};
static_assert(sizeof(f16) == 2, "f16 is two bytes");

__device__ __forceinline__ float to_float(float v) { return v; }

template <typename T>
__device__ __forceinline__ T from_float(float v);

template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}

#ifndef TG_CUDA_EMULATION

__device__ __forceinline__ float to_float(f16 v) { return __half2float(__ushort_as_half(v.bits)); }

template <>
__device__ __forceinline__ f16 from_float<f16>(float v) {
  return f16{__half_as_ushort(__float2half_rn(v))};
}

#else  // TG_CUDA_EMULATION

inline float to_float(f16 v) {
  _Float16 h;
  std::memcpy(&h, &v.bits, 2);
  return static_cast<float>(h);
}

template <>
inline f16 from_float<f16>(float v) {
  const _Float16 h = static_cast<_Float16>(v);  // IEEE round to nearest even
  f16 out;
  std::memcpy(&out.bits, &h, 2);
  return out;
}

#endif  // TG_CUDA_EMULATION

// 16 bytes of T, moved as one vector load or store (the pointer must be 16-byte aligned).
template <typename T>
struct Pack16 {
  static constexpr int kCount = 16 / static_cast<int>(sizeof(T));
  alignas(16) T v[kCount];

  __device__ __forceinline__ void load(const T* p) { *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(p); }
  __device__ __forceinline__ void store(T* p) const { *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(v); }
};

}  // namespace cuda
}  // namespace tg
