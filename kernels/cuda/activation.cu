// Elementwise activations forward and backward, float32 or float16 (computed in float32, rounded
// once on the store), grid-stride loops. 16-byte vector loads and stores when every pointer is
// 16-byte aligned (the scalar tail is handled in the same launch); scalar otherwise. Each element
// is read before the same thread writes it, so out may be an input exactly.
//
// The formulas follow the reference kernels (pkg/tilegrad/backends/reference*.py)
// with full-precision expf / tanhf / erff (no fast-math intrinsics).
#include <cuda_runtime.h>
#include <math.h>

#include "elem.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

constexpr int kThreads = 256;
constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kInvSqrt2 = 0.7071067811865476f;     // 1 / sqrt(2)
constexpr float kInvSqrt2Pi = 0.3989422804014327f;   // 1 / sqrt(2 pi)
constexpr float kGeluC = 0.044715f;

// sigmoid split by sign so that exp never overflows (as the reference).
__device__ __forceinline__ float sigmoidf_(float x) {
  const float e = expf(-fabsf(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

template <int A>
__device__ __forceinline__ float act_forward(float x, float p) {
  switch (A) {
    case TG_ACT_SIGMOID: return sigmoidf_(x);
    case TG_ACT_TANH: return tanhf(x);
    case TG_ACT_GELU: return 0.5f * x * (1.0f + erff(x * kInvSqrt2));
    case TG_ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kGeluC * x * x * x)));
    case TG_ACT_SILU: return x * sigmoidf_(x);
    case TG_ACT_LEAKY_RELU: return x > 0.0f ? x : x * p;
    default: return x;
  }
}

// a is y = f(x) for sigmoid and tanh, x for the others.
template <int A>
__device__ __forceinline__ float act_backward(float a, float gy, float p) {
  switch (A) {
    case TG_ACT_SIGMOID: return gy * a * (1.0f - a);
    case TG_ACT_TANH: return gy * (1.0f - a * a);
    case TG_ACT_GELU: {
      const float cdf = 0.5f * (1.0f + erff(a * kInvSqrt2));
      const float pdf = expf(-0.5f * a * a) * kInvSqrt2Pi;
      return gy * (cdf + a * pdf);
    }
    case TG_ACT_GELU_TANH: {
      const float t = tanhf(kSqrt2OverPi * (a + kGeluC * a * a * a));
      return gy * (0.5f * (1.0f + t) +
                   0.5f * a * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kGeluC * a * a));
    }
    case TG_ACT_SILU: {
      const float s = sigmoidf_(a);
      return gy * s * (1.0f + a * (1.0f - s));
    }
    case TG_ACT_LEAKY_RELU: return a > 0.0f ? gy : gy * p;
    default: return gy;
  }
}

// 16-byte vector loads and stores (4 float32 or 8 float16 values) when kVec, then the scalar
// tail in the same launch.
template <typename T, int A, bool kVec>
__global__ void __launch_bounds__(kThreads) act_forward_kernel(const T* x, T* out, int64_t n, float p) {
  using tg::cuda::from_float;
  using tg::cuda::to_float;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t start = tid;
  if (kVec) {
    using Pack = tg::cuda::Pack16<T>;
    const int64_t packs = n / Pack::kCount;
    for (int64_t i = tid; i < packs; i += stride) {
      Pack v;
      v.load(x + i * Pack::kCount);
#pragma unroll
      for (int j = 0; j < Pack::kCount; ++j) v.v[j] = from_float<T>(act_forward<A>(to_float(v.v[j]), p));
      v.store(out + i * Pack::kCount);
    }
    start = packs * Pack::kCount + tid;
  }
  for (int64_t i = start; i < n; i += stride) out[i] = from_float<T>(act_forward<A>(to_float(x[i]), p));
}

template <typename T, int A, bool kVec>
__global__ void __launch_bounds__(kThreads) act_backward_kernel(const T* a, const T* gy, T* out, int64_t n, float p) {
  using tg::cuda::from_float;
  using tg::cuda::to_float;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t start = tid;
  if (kVec) {
    using Pack = tg::cuda::Pack16<T>;
    const int64_t packs = n / Pack::kCount;
    for (int64_t i = tid; i < packs; i += stride) {
      Pack av, gv;
      av.load(a + i * Pack::kCount);
      gv.load(gy + i * Pack::kCount);
#pragma unroll
      for (int j = 0; j < Pack::kCount; ++j) {
        av.v[j] = from_float<T>(act_backward<A>(to_float(av.v[j]), to_float(gv.v[j]), p));
      }
      av.store(out + i * Pack::kCount);
    }
    start = packs * Pack::kCount + tid;
  }
  for (int64_t i = start; i < n; i += stride) {
    out[i] = from_float<T>(act_backward<A>(to_float(a[i]), to_float(gy[i]), p));
  }
}

template <typename T, int A>
int launch_forward(const void* xv, void* outv, int64_t n, float p, cudaStream_t s) {
  using tg::cuda::aligned16;
  const T* x = static_cast<const T*>(xv);
  T* out = static_cast<T*>(outv);
  constexpr int kCount = tg::cuda::Pack16<T>::kCount;
  if (aligned16(x) && aligned16(out) && n >= kCount) {
    act_forward_kernel<T, A, true><<<tg::cuda::grid_for(n / kCount, kThreads), kThreads, 0, s>>>(x, out, n, p);
  } else {
    act_forward_kernel<T, A, false><<<tg::cuda::grid_for(n, kThreads), kThreads, 0, s>>>(x, out, n, p);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T, int A>
int launch_backward(const void* av, const void* gyv, void* outv, int64_t n, float p, cudaStream_t s) {
  using tg::cuda::aligned16;
  const T* a = static_cast<const T*>(av);
  const T* gy = static_cast<const T*>(gyv);
  T* out = static_cast<T*>(outv);
  constexpr int kCount = tg::cuda::Pack16<T>::kCount;
  if (aligned16(a) && aligned16(gy) && aligned16(out) && n >= kCount) {
    act_backward_kernel<T, A, true><<<tg::cuda::grid_for(n / kCount, kThreads), kThreads, 0, s>>>(a, gy, out, n, p);
  } else {
    act_backward_kernel<T, A, false><<<tg::cuda::grid_for(n, kThreads), kThreads, 0, s>>>(a, gy, out, n, p);
  }
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int forward_of(int act, const void* x, void* out, int64_t n, float param, cudaStream_t s) {
  switch (act) {
    case TG_ACT_SIGMOID: return launch_forward<T, TG_ACT_SIGMOID>(x, out, n, param, s);
    case TG_ACT_TANH: return launch_forward<T, TG_ACT_TANH>(x, out, n, param, s);
    case TG_ACT_GELU: return launch_forward<T, TG_ACT_GELU>(x, out, n, param, s);
    case TG_ACT_GELU_TANH: return launch_forward<T, TG_ACT_GELU_TANH>(x, out, n, param, s);
    case TG_ACT_SILU: return launch_forward<T, TG_ACT_SILU>(x, out, n, param, s);
    case TG_ACT_LEAKY_RELU: return launch_forward<T, TG_ACT_LEAKY_RELU>(x, out, n, param, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

template <typename T>
int backward_of(int act, const void* a, const void* gy, void* out, int64_t n, float param, cudaStream_t s) {
  switch (act) {
    case TG_ACT_SIGMOID: return launch_backward<T, TG_ACT_SIGMOID>(a, gy, out, n, param, s);
    case TG_ACT_TANH: return launch_backward<T, TG_ACT_TANH>(a, gy, out, n, param, s);
    case TG_ACT_GELU: return launch_backward<T, TG_ACT_GELU>(a, gy, out, n, param, s);
    case TG_ACT_GELU_TANH: return launch_backward<T, TG_ACT_GELU_TANH>(a, gy, out, n, param, s);
    case TG_ACT_SILU: return launch_backward<T, TG_ACT_SILU>(a, gy, out, n, param, s);
    case TG_ACT_LEAKY_RELU: return launch_backward<T, TG_ACT_LEAKY_RELU>(a, gy, out, n, param, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace

extern "C" int tg_cuda_activation(int act, int dtype, const void* x, void* out, int64_t n, float param,
                                  void* stream) {
  if (n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == TG_DTYPE_F32) return forward_of<float>(act, x, out, n, param, s);
  if (dtype == TG_DTYPE_F16) return forward_of<tg::cuda::f16>(act, x, out, n, param, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

extern "C" int tg_cuda_activation_backward(int act, int dtype, const void* a, const void* gy, void* out, int64_t n,
                                           float param, void* stream) {
  if (n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (dtype == TG_DTYPE_F32) return backward_of<float>(act, a, gy, out, n, param, s);
  if (dtype == TG_DTYPE_F16) return backward_of<tg::cuda::f16>(act, a, gy, out, n, param, s);
  return static_cast<int>(cudaErrorInvalidValue);
}
