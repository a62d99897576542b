// ReLU forward and backward, float32, grid-stride loops.
#include <cuda_runtime.h>

#include "tg_cuda.h"

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

__global__ void relu_kernel(const float* x, float* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = x[i];
    out[i] = v < 0.0f ? 0.0f : v;  // NaN propagates, like numpy.maximum(x, 0)
  }
}

__global__ void relu_backward_kernel(const float* x, const float* gy, float* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = x[i] > 0.0f ? gy[i] : 0.0f;
  }
}

unsigned int blocks_for(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

}  // namespace

// No __restrict__: the caller may pass out == x (or gy) for in-place use; each
// element is read before the same thread writes it.
extern "C" int tg_cuda_relu(const float* x, float* out, int64_t n, void* stream) {
  if (n <= 0) return 0;
  relu_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, out, n);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int tg_cuda_relu_backward(const float* x, const float* gy, float* out, int64_t n,
                                     void* stream) {
  if (n <= 0) return 0;
  relu_backward_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, gy, out, n);
  return static_cast<int>(cudaGetLastError());
}
