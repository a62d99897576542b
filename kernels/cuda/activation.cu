// Elementwise activations forward and backward, float32, grid-stride loops.
// float4 loads and stores when every pointer is 16-byte aligned (the scalar
// tail is handled in the same launch); scalar otherwise. Each element is read
// before the same thread writes it, so out may be an input exactly.
//
// The formulas follow the reference kernels (pkg/tilegrad/backends/reference*.py)
// with full-precision expf / tanhf / erff (no fast-math intrinsics).
#include <cuda_runtime.h>
#include <math.h>

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

template <int A, bool kVec>
__global__ void __launch_bounds__(kThreads) act_forward_kernel(const float* x, float* out, int64_t n, float p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t start = tid;
  if (kVec) {
    const int64_t n4 = n / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* o4 = reinterpret_cast<float4*>(out);
    for (int64_t i = tid; i < n4; i += stride) {
      float4 v = x4[i];
      v.x = act_forward<A>(v.x, p);
      v.y = act_forward<A>(v.y, p);
      v.z = act_forward<A>(v.z, p);
      v.w = act_forward<A>(v.w, p);
      o4[i] = v;
    }
    start = n4 * 4 + tid;
  }
  for (int64_t i = start; i < n; i += stride) out[i] = act_forward<A>(x[i], p);
}

template <int A, bool kVec>
__global__ void __launch_bounds__(kThreads)
act_backward_kernel(const float* a, const float* gy, float* out, int64_t n, float p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t start = tid;
  if (kVec) {
    const int64_t n4 = n / 4;
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* g4 = reinterpret_cast<const float4*>(gy);
    float4* o4 = reinterpret_cast<float4*>(out);
    for (int64_t i = tid; i < n4; i += stride) {
      const float4 av = a4[i];
      const float4 gv = g4[i];
      float4 r;
      r.x = act_backward<A>(av.x, gv.x, p);
      r.y = act_backward<A>(av.y, gv.y, p);
      r.z = act_backward<A>(av.z, gv.z, p);
      r.w = act_backward<A>(av.w, gv.w, p);
      o4[i] = r;
    }
    start = n4 * 4 + tid;
  }
  for (int64_t i = start; i < n; i += stride) out[i] = act_backward<A>(a[i], gy[i], p);
}

template <int A>
int launch_forward(const float* x, float* out, int64_t n, float p, cudaStream_t s) {
  using tg::cuda::aligned16;
  if (aligned16(x) && aligned16(out) && n >= 4) {
    act_forward_kernel<A, true><<<tg::cuda::grid_for(n / 4, kThreads), kThreads, 0, s>>>(x, out, n, p);
  } else {
    act_forward_kernel<A, false><<<tg::cuda::grid_for(n, kThreads), kThreads, 0, s>>>(x, out, n, p);
  }
  return static_cast<int>(cudaGetLastError());
}

template <int A>
int launch_backward(const float* a, const float* gy, float* out, int64_t n, float p, cudaStream_t s) {
  using tg::cuda::aligned16;
  if (aligned16(a) && aligned16(gy) && aligned16(out) && n >= 4) {
    act_backward_kernel<A, true><<<tg::cuda::grid_for(n / 4, kThreads), kThreads, 0, s>>>(a, gy, out, n, p);
  } else {
    act_backward_kernel<A, false><<<tg::cuda::grid_for(n, kThreads), kThreads, 0, s>>>(a, gy, out, n, p);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int tg_cuda_activation(int act, const float* x, float* out, int64_t n, float param, void* stream) {
  if (n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (act) {
    case TG_ACT_SIGMOID: return launch_forward<TG_ACT_SIGMOID>(x, out, n, param, s);
    case TG_ACT_TANH: return launch_forward<TG_ACT_TANH>(x, out, n, param, s);
    case TG_ACT_GELU: return launch_forward<TG_ACT_GELU>(x, out, n, param, s);
    case TG_ACT_GELU_TANH: return launch_forward<TG_ACT_GELU_TANH>(x, out, n, param, s);
    case TG_ACT_SILU: return launch_forward<TG_ACT_SILU>(x, out, n, param, s);
    case TG_ACT_LEAKY_RELU: return launch_forward<TG_ACT_LEAKY_RELU>(x, out, n, param, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

extern "C" int tg_cuda_activation_backward(int act, const float* a, const float* gy, float* out, int64_t n,
                                           float param, void* stream) {
  if (n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (act) {
    case TG_ACT_SIGMOID: return launch_backward<TG_ACT_SIGMOID>(a, gy, out, n, param, s);
    case TG_ACT_TANH: return launch_backward<TG_ACT_TANH>(a, gy, out, n, param, s);
    case TG_ACT_GELU: return launch_backward<TG_ACT_GELU>(a, gy, out, n, param, s);
    case TG_ACT_GELU_TANH: return launch_backward<TG_ACT_GELU_TANH>(a, gy, out, n, param, s);
    case TG_ACT_SILU: return launch_backward<TG_ACT_SILU>(a, gy, out, n, param, s);
    case TG_ACT_LEAKY_RELU: return launch_backward<TG_ACT_LEAKY_RELU>(a, gy, out, n, param, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}
